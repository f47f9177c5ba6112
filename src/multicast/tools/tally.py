"""The monitor's accounting: fed each received datagram and the time it arrived. Pure code.

A :class:`Tally` holds no socket and reads no clock: the receiving loop
(:class:`multicast.tools.monitor.Monitor`) gives it every datagram with its arrival time
(nanoseconds of the receiver's wall clock), and asks it for rows (:meth:`Tally.rows`),
intervals (:class:`multicast.tools.monitor_report.Intervals`) and the final report.

Datagrams are counted per *flow*: the datagrams of one stream on one group. Which stream a
datagram belongs to, and where in it, comes from a
:class:`~multicast.tools.payloads.PayloadReader`: a frame's sender id, an RTP SSRC, or else
the UDP source (address and port) of an MPEG-TS, iperf2 or unknown (raw) payload. Without
a reader the tally picks one per UDP source (:class:`~multicast.tools.payloads.Detector`).

>>> from multicast.core import Datagram
>>> from multicast.tools.framing import encode_frame
>>> tally = Tally(FrameStamps())
>>> for sequence, arrived in ((0, 1_000), (2, 3_000), (1, 4_000), (2, 5_000)):
...     frame = encode_frame(7, sequence, timestamp=0)
...     tally.account(Datagram(frame, ("192.0.2.1", 5000), "239.1.2.3", size=len(frame)), arrived)
>>> (flow,) = tally.rows()
>>> flow.received, flow.lost, flow.reordered, flow.duplicates
(4, 0, 1, 1)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field

from multicast.core import Datagram
from multicast.tools.common import rejection_counts
from multicast.tools.framing import Rejection
from multicast.tools.payloads import (
    NANOSECONDS,
    Detector,
    FrameStamps,
    IperfStamps,
    Kind,
    PayloadReader,
    RtpStamps,
    Stamp,
    Stamps,
    TransportStreamStamps,
    unwrap,
)
from multicast.tools.stats import Arrival, DelayHistogram, JitterEstimator, SequenceTracker

__all__ = [
    "HISTORY",
    "MAX_FLOWS",
    "MAX_SENDERS",
    "MAX_STREAMS",
    "Flow",
    "FlowKey",
    "FrameStamps",
    "PayloadReader",
    "Stamp",
    "Stream",
    "Tally",
    "Totals",
]

# Flows tracked at most (and UDP sources whose payload is being detected); datagrams of
# further ones are counted as untracked.
MAX_FLOWS = 1024
MAX_SENDERS = MAX_FLOWS  # the name of the limit when flows were frame senders only
# Streams tracked at most over every flow (a flow of MPEG-TS has one per PID): each keeps at
# most SequenceTracker's 1,024 missing ranges, so all of them fit in about 64 MB whatever
# arrives. Packets of further streams are counted as untracked.
MAX_STREAMS = 4 * MAX_FLOWS
HISTORY = 32  # interval rates each flow keeps, for the live view's sparkline

FlowKey = tuple[str, str, str, int]
"""(group, kind, source address or "" for frames, stream: sender id, SSRC or source port)."""


class Totals(ABC):
    """``received``, ``lost``, ``duplicates`` and ``reordered``, each a :meth:`total`."""

    __slots__ = ()

    @abstractmethod
    def total(self, name: str) -> int:
        """The counter ``name`` (``received``, ``lost``, ...), summed over the parts."""

    @property
    def received(self) -> int:
        return self.total("received")

    @property
    def lost(self) -> int:
        return self.total("lost")

    @property
    def duplicates(self) -> int:
        return self.total("duplicates")

    @property
    def reordered(self) -> int:
        return self.total("reordered")


class Stream:
    """Sequence accounting of one stream (a frame sender, an SSRC, a TS PID)."""

    __slots__ = ("jitter", "sent_high", "shift", "tracker", "wrapped_high")

    def __init__(self) -> None:
        self.tracker = SequenceTracker()
        self.jitter = JitterEstimator()  # RFC 3550, in the stamps' time units
        self.wrapped_high: int | None = None  # highest sequence, unwrapped, before the shift
        self.shift = 0  # added after a restart (a TS discontinuity) to keep counting on
        self.sent_high: int | None = None  # highest send time, unwrapped

    def count(self, stamp: Stamp, arrived: int) -> Arrival:
        """Count one stamp that arrived at ``arrived`` ns; what its sequence number meant."""
        track = self.tracker
        if stamp.restart and track.highest is not None:
            self.shift = track.highest + 1 - stamp.sequence
            self.wrapped_high = stamp.sequence
            number = track.highest + 1
        else:
            extended = unwrap(self.wrapped_high, stamp.sequence, stamp.wrap)
            if self.wrapped_high is None or extended > self.wrapped_high:
                self.wrapped_high = extended
            number = extended + self.shift
        arrival = track.observe(number)
        if stamp.sent is not None and arrival is not Arrival.DUPLICATE:
            sent = unwrap(self.sent_high, stamp.sent, stamp.sent_wrap)
            if self.sent_high is None or sent > self.sent_high:
                self.sent_high = sent
            # RFC 3550 A.8: the arrival time in the units of the send time.
            self.jitter.update(sent, arrived * stamp.rate // NANOSECONDS)
        return arrival


@dataclass(slots=True)
class Flow(Totals):
    """Running counts for one flow: one stream (or one UDP source) on one group."""

    group: str
    kind: Kind
    source: str  # the address of its first datagram
    port: int  # the source port of its first datagram
    stream: int | None  # a frame's sender id or an RTP SSRC; None for a UDP source
    streams: dict[int, Stream] = field(default_factory=dict)  # by stream id (TS: PID)
    datagrams: int = 0
    bytes: int = 0
    truncated: int = 0
    first_arrival: int | None = None  # ns, the receiver's wall clock
    last_arrival: int | None = None
    arrival_jitter: float = 0.0  # ns: RFC 3550's smoothing of the change between gaps
    last_gap: int | None = None
    rate: int = NANOSECONDS  # units per second of the streams' jitter
    ttl_min: int | None = None
    ttl_max: int | None = None
    delays: DelayHistogram | None = None  # one-way delays, for payloads with a send time
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))  # bit/s
    decided: bool = True  # False: too few datagrams yet to tell the payload

    def arrive(self, datagram: Datagram, arrived: int) -> None:
        """Count the datagram itself: size, truncation, TTL, arrival time."""
        self.datagrams += 1
        self.bytes += datagram.size
        self.truncated += datagram.truncated
        last = self.last_arrival
        if last is None:
            self.first_arrival = arrived
        else:
            gap = arrived - last
            if self.last_gap is not None:
                self.arrival_jitter += (abs(gap - self.last_gap) - self.arrival_jitter) / 16
            self.last_gap = gap
        self.last_arrival = arrived
        ttl = datagram.ttl
        if ttl is not None:
            self.ttl_min = ttl if self.ttl_min is None else min(self.ttl_min, ttl)
            self.ttl_max = ttl if self.ttl_max is None else max(self.ttl_max, ttl)

    def count(self, stamp: Stamp, arrived: int) -> None:
        """Count one stamp of this flow's payload."""
        stream = self.streams.get(stamp.stream)
        if stream is None:
            stream = self.streams[stamp.stream] = Stream()
        self.rate = stamp.rate
        arrival = stream.count(stamp, arrived)
        if (
            stamp.sent is not None
            and stamp.rate == NANOSECONDS
            and arrival is not Arrival.DUPLICATE
        ):
            if self.delays is None:
                self.delays = DelayHistogram()
            self.delays.add(arrived - stamp.sent)

    def total(self, name: str) -> int:
        """A sequence counter (``received``, ``lost``, ...) summed over the streams."""
        return sum(int(getattr(stream.tracker, name)) for stream in self.streams.values())

    @property
    def jitter_seconds(self) -> float | None:
        """The largest RFC 3550 jitter of its streams, in seconds; None without send times."""
        values = [s.jitter.value for s in self.streams.values() if s.sent_high is not None]
        return max(values) / self.rate if values else None


@dataclass(slots=True)
class _Pending:
    """A UDP source whose payload is not known yet: its detector and what it held back."""

    detector: Detector
    held: list[tuple[Datagram, int]] = field(default_factory=list)


_UdpKey = tuple[str, str, int]  # (group, source address, source port)


class Tally:
    """Counts, per flow, what arrives: loss, duplicates, reordering, jitter, delay, TTLs.

    Feed it with :meth:`account`. With a ``reader`` every payload is read as its kind;
    without, each UDP source's kind is detected from its first datagrams (``rtp_clock``:
    the clock rate of RTP's dynamic payload types). Refused payloads are counted by reason
    and never stop the count.
    """

    def __init__(
        self,
        reader: PayloadReader | None = None,
        *,
        sent_ttl: int | None = None,
        max_flows: int = MAX_FLOWS,
        rtp_clock: int = 90000,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self.reader = reader
        self.rtp_clock = rtp_clock
        self.sent_ttl = sent_ttl  # the TTL the senders use, if known: hop counts from it
        self.max_flows = max_flows
        self.max_streams = max(max_streams, max_flows)  # one stream per flow, at least
        self.streams = 0  # streams tracked, over every flow
        self.flows: dict[FlowKey, Flow] = {}
        self.rejected = rejection_counts()
        self.datagrams = 0
        self.truncated = 0
        self.untracked = 0
        self.kinds: dict[_UdpKey, PayloadReader] = {}
        self.pending: dict[_UdpKey, _Pending] = {}
        self.first_by_group: dict[str, int] = {}  # ns of the first datagram of each group
        self.last_by_group: dict[str, int] = {}

    def account(self, datagram: Datagram, arrived: int) -> None:
        """Count one datagram that arrived at ``arrived`` (nanoseconds, the receiver's clock)."""
        self.datagrams += 1
        self.truncated += datagram.truncated
        group = datagram.group or "?"
        self.first_by_group.setdefault(group, arrived)
        self.last_by_group[group] = arrived
        reader = self.reader
        if reader is None:
            key = (group, datagram.source[0], datagram.source[1])
            reader = self.kinds.get(key)
            if reader is None:
                self._detect(key, datagram, arrived)
                return
        self._read(reader, datagram, arrived, group)

    def _read(self, reader: PayloadReader, datagram: Datagram, arrived: int, group: str) -> None:
        stamps = reader.read(
            datagram.payload, truncated=datagram.truncated, group=datagram.group, arrived=arrived
        )
        if isinstance(stamps, Rejection):
            self.rejected[stamps.reason.value] += 1
            return
        self._count(reader.kind, datagram, arrived, group, stamps)

    def _count(
        self, kind: Kind, datagram: Datagram, arrived: int, group: str, stamps: Stamps
    ) -> None:
        key: FlowKey
        stream: int | None = None
        if kind is Kind.FRAMES or kind is Kind.RTP:
            if not stamps:  # a cut frame whose header cannot be trusted
                return
            stream = stamps[0].stream
            key = (group, kind.value, "" if kind is Kind.FRAMES else datagram.source[0], stream)
        else:
            key = (group, kind.value, datagram.source[0], datagram.source[1])
        flow = self.flows.get(key)
        if flow is None:
            if len(self.flows) >= self.max_flows:
                self.untracked += 1
                return
            source, port = datagram.source
            flow = self.flows[key] = Flow(group, kind, source, port, stream)
        flow.arrive(datagram, arrived)
        for stamp in stamps:
            if stamp.stream not in flow.streams:
                if self.streams >= self.max_streams:
                    self.untracked += 1
                    continue
                self.streams += 1
            flow.count(stamp, arrived)

    def _detect(self, key: _UdpKey, datagram: Datagram, arrived: int) -> None:
        """Offer a datagram of an undecided UDP source to its detector; count what it held
        once a reader is chosen."""
        pending = self.pending.get(key)
        if pending is None:
            if len(self.pending) + len(self.kinds) >= self.max_flows:
                self.untracked += 1
                return
            candidates = (
                FrameStamps(),
                RtpStamps(self.rtp_clock),
                TransportStreamStamps(),
                IperfStamps(),
            )
            pending = self.pending[key] = _Pending(Detector(candidates))
        # Only the metadata is kept: the detector read the payload already.
        pending.held.append((_without_payload(datagram), arrived))
        chosen = pending.detector.offer(datagram.payload, truncated=datagram.truncated)
        if chosen is None:
            return
        del self.pending[key]
        self.kinds[key] = chosen
        backlog = pending.detector.backlog() or [()] * len(pending.held)
        for (held, when), stamps in zip(pending.held, backlog, strict=True):
            self._count(chosen.kind, held, when, key[0], stamps)

    def rows(self) -> list[Flow]:
        """Every flow, in the order they first arrived, then the UDP sources still undecided
        (as raw flows: too few datagrams to tell their payload)."""
        rows = list(self.flows.values())
        for (group, source, port), pending in self.pending.items():
            flow = Flow(group, Kind.RAW, source, port, None, decided=False)
            for held, when in pending.held:
                flow.arrive(held, when)
            rows.append(flow)
        return rows


def _without_payload(datagram: Datagram) -> Datagram:
    """``datagram``'s metadata, without its payload (what a held datagram needs)."""
    return Datagram(
        b"",
        datagram.source,
        datagram.group,
        datagram.interface,
        datagram.ttl,
        datagram.truncated,
        datagram.size,
        datagram.drops,
    )
