"""The monitor's accounting: fed each received datagram and the time it arrived. Pure code.

A :class:`Tally` holds no socket and reads no clock: the receiving loop
(:class:`multicast.tools.monitor.Monitor`) gives it every datagram with its arrival time, and
asks it for interval lines (:class:`Intervals`) and the final report.

What a payload says of its place in a stream comes from a :class:`PayloadReader`: the tally
counts each flow (one stream on one group) from the :class:`Stamp` the reader gives, whatever
the payload. :class:`FrameStamps` reads the tools' frames; readers of other payloads plug in
beside it.

>>> from multicast.core import Datagram
>>> from multicast.tools.framing import encode_frame
>>> tally = Tally(FrameStamps())
>>> for sequence, arrived in ((0, 1_000), (2, 3_000), (1, 4_000), (2, 5_000)):
...     frame = encode_frame(7, sequence, timestamp=0)
...     tally.account(Datagram(frame, ("192.0.2.1", 5000), "239.1.2.3", size=len(frame)), arrived)
>>> (flow,) = tally.senders()
>>> flow.received, flow.lost, flow.reordered, flow.duplicates
(4, 0, 1, 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from multicast.core import Datagram
from multicast.exceptions import OptionError
from multicast.tools.common import rejection_counts
from multicast.tools.framing import (
    TIME_WINDOW,
    FrameReader,
    Header,
    Reason,
    Rejection,
    frame_context,
    parse_header,
)
from multicast.tools.stats import Arrival, JitterEstimator, SequenceTracker

__all__ = [
    "MAX_SENDERS",
    "Flow",
    "FrameStamps",
    "IntervalReport",
    "Intervals",
    "MonitorReport",
    "PayloadReader",
    "SenderReport",
    "Stamp",
    "Tally",
]

# Flows (senders on groups) tracked at most; datagrams of further flows are counted as untracked.
MAX_SENDERS = 1024


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a payload says of its place in a stream."""

    stream: int  # which stream of the group: a frame's sender id
    sequence: int
    sent: int  # send time, nanoseconds on the sender's clock


class PayloadReader(Protocol):
    """Reads a :class:`Stamp` from a datagram: one kind of payload per reader."""

    def read(self, datagram: Datagram, arrived: int) -> Stamp | Rejection | None:
        """The stamp of ``datagram``, which arrived at ``arrived`` (nanoseconds since the
        epoch), the reason the payload is refused, or None when a datagram cut short
        (``truncated``) cannot be read: it is then counted as truncated and nothing more."""
        ...


class FrameStamps:
    """Reads the tools' frames (:mod:`multicast.tools.framing`); with a key, only authentic
    frames sent to their group on ``port``, fresh (within ``time_window`` seconds of the
    arrival time, and after the reader was made) and not seen before."""

    def __init__(
        self, key: bytes | None = None, *, port: int = 0, time_window: float = TIME_WINDOW
    ) -> None:
        self.frames = FrameReader(key, time_window=time_window)
        self.port = port  # the port frames were sent to: their tags cover it

    def read(self, datagram: Datagram, arrived: int) -> Stamp | Rejection | None:
        if datagram.truncated:
            # A cut frame's tag cannot be checked: without a key its header still counts.
            header = parse_header(datagram.payload)
            if self.frames.key is None and isinstance(header, Header):
                return Stamp(header.sender, header.sequence, header.timestamp)
            return None
        context = frame_context(datagram.group, self.port) if self.frames.key else b""
        frame = self.frames.read(datagram.payload, context, arrived)
        if isinstance(frame, Rejection):
            return frame
        return Stamp(frame.sender, frame.sequence, frame.timestamp)


@dataclass(slots=True)
class Flow:
    """Running counts for one stream on one group."""

    sender: int
    group: str
    source: str  # the address of its first datagram
    tracker: SequenceTracker = field(default_factory=SequenceTracker)
    jitter: JitterEstimator = field(default_factory=JitterEstimator)
    bytes: int = 0
    truncated: int = 0
    ttl_min: int | None = None
    ttl_max: int | None = None

    def count(self, datagram: Datagram, stamp: Stamp, arrived: int) -> None:
        """Count ``datagram``, which ``stamp`` places in this flow, arrived at ``arrived`` (ns)."""
        if self.tracker.observe(stamp.sequence) is not Arrival.DUPLICATE:
            self.jitter.update(stamp.sent, arrived)
        self.bytes += datagram.size
        self.truncated += datagram.truncated
        if datagram.ttl is not None:
            ttl = datagram.ttl
            self.ttl_min = ttl if self.ttl_min is None else min(self.ttl_min, ttl)
            self.ttl_max = ttl if self.ttl_max is None else max(self.ttl_max, ttl)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """Counts for one sender on one group."""

    sender: int
    group: str
    source: str
    received: int
    unique: int
    lost: int
    duplicates: int
    reordered: int
    gaps: int
    truncated: int
    bytes: int
    jitter_ms: float
    ttl_min: int | None
    ttl_max: int | None
    first_sequence: int | None
    last_sequence: int | None
    hops_min: int | None = None  # routers crossed, when the TTL the sender used is known
    hops_max: int | None = None

    @classmethod
    def of(cls, flow: Flow, sent_ttl: int | None = None) -> SenderReport:
        """The report of ``flow``; with ``sent_ttl`` (the senders' TTL), its hop counts too."""
        track = flow.tracker
        hops: tuple[int | None, int | None] = (None, None)
        # A TTL above the one the senders are said to use: that sender uses another, and its
        # hop count is unknown (never negative).
        low, high = flow.ttl_min, flow.ttl_max
        if sent_ttl is not None and low is not None and high is not None and high <= sent_ttl:
            hops = (sent_ttl - high, sent_ttl - low)
        return cls(
            sender=flow.sender,
            group=flow.group,
            source=flow.source,
            received=track.received,
            unique=track.unique,
            lost=track.lost,
            duplicates=track.duplicates,
            reordered=track.reordered,
            gaps=track.gaps,
            truncated=flow.truncated,
            bytes=flow.bytes,
            jitter_ms=flow.jitter.value / 1e6,
            ttl_min=flow.ttl_min,
            ttl_max=flow.ttl_max,
            first_sequence=track.lowest,
            last_sequence=track.highest,
            hops_min=hops[0],
            hops_max=hops[1],
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "sender": f"{self.sender:016x}",
            "group": self.group,
            "source": self.source,
            "received": self.received,
            "unique": self.unique,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "gaps": self.gaps,
            "truncated": self.truncated,
            "bytes": self.bytes,
            "jitter_ms": round(self.jitter_ms, 6),
            "ttl": {"min": self.ttl_min, "max": self.ttl_max},
            "hops": {"min": self.hops_min, "max": self.hops_max},
            "sequence": {"first": self.first_sequence, "last": self.last_sequence},
        }


# Counters of the whole run, in report order; `received` and the rest sum the senders.
_SENDER_TOTALS = ("received", "unique", "lost", "duplicates", "reordered", "gaps")


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """What a monitor run saw: totals, rejections by reason, and one report per sender."""

    groups: tuple[str, ...]
    port: int
    seconds: float
    datagrams: int  # everything read from the socket
    drops: int  # datagrams the kernel dropped on the socket (receive buffer full)
    truncated: int  # datagrams longer than the receive buffer, framed or not
    rejected: dict[str, int]  # by framing.Reason value
    untracked: int  # frames of senders beyond MAX_SENDERS
    wrong_interface: int  # IPv6 datagrams that arrived where their group was not joined
    senders: tuple[SenderReport, ...]
    receive_buffer: int
    interrupted: bool = False

    def total(self, name: str) -> int:
        """Sum of a per-sender counter (``received``, ``lost``, ...) over every sender."""
        return sum(int(getattr(report, name)) for report in self.senders)

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

    @property
    def foreign(self) -> int:
        return self.rejected[Reason.FOREIGN.value]

    def as_dict(self) -> dict[str, object]:
        summary: dict[str, object] = {name: self.total(name) for name in _SENDER_TOTALS}
        summary.update(self.rejected)
        summary.update(
            datagrams=self.datagrams,
            truncated=self.truncated,
            untracked=self.untracked,
            wrong_interface=self.wrong_interface,
            drops=self.drops,
            seconds=round(self.seconds, 6),
            receive_buffer=self.receive_buffer,
            interrupted=self.interrupted,
        )
        return {
            "groups": list(self.groups),
            "port": self.port,
            "summary": summary,
            "senders": [report.as_dict() for report in self.senders],
        }

    def __str__(self) -> str:
        lines = [
            f"{self.datagrams} datagrams on {', '.join(self.groups)} port {self.port} "
            f"in {self.seconds:.3f} s; kernel drops {self.drops}, truncated {self.truncated}"
            + (" (interrupted)" if self.interrupted else "")
        ]
        for report in self.senders:
            lost = report.lost / (report.unique + report.lost) if report.unique else 0.0
            ttl = (
                f"ttl {report.ttl_min}-{report.ttl_max}" if report.ttl_min is not None else "ttl ?"
            )
            if report.hops_min is not None:
                ttl += f", hops {report.hops_min}-{report.hops_max}"
            lines.append(
                f"  sender {report.sender:016x} from {report.source} to {report.group}: "
                f"received {report.received}, lost {report.lost} ({lost:.2%}), "
                f"duplicates {report.duplicates}, reordered {report.reordered}, "
                f"gaps {report.gaps}, truncated {report.truncated}, "
                f"jitter {report.jitter_ms:.3f} ms, {ttl}"
            )
        rejected = ", ".join(f"{name} {count}" for name, count in self.rejected.items() if count)
        lines.append(
            f"  not counted: {rejected or 'none'}; untracked senders' frames {self.untracked}; "
            f"arrived where not joined {self.wrong_interface}"
        )
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class IntervalReport:
    """Changes over one live interval, for iperf-style progress lines."""

    start: float  # seconds since the monitor started
    end: float
    received: int
    lost: int
    duplicates: int
    reordered: int
    rejected: int
    bytes: int
    jitter_ms: float  # largest of the senders' current estimates
    drops: int = 0  # datagrams the kernel dropped on the socket (receive buffer full)

    def __str__(self) -> str:
        span = self.end - self.start
        rate = self.bytes * 8 / span / 1e6 if span > 0 else 0.0
        return (
            f"[{self.start:6.2f}-{self.end:6.2f} s] received {self.received:7d}  "
            f"lost {self.lost:5d}  kernel drops {self.drops:5d}  dup {self.duplicates:4d}  "
            f"reord {self.reordered:4d}  rejected {self.rejected:4d}  {rate:8.3f} Mbit/s  "
            f"jitter {self.jitter_ms:.3f} ms"
        )


class Tally:
    """Counts, per flow, what arrives: loss, duplicates, reordering, jitter, TTLs, bytes.

    Feed it with :meth:`account`; datagrams whose payload the reader refuses are counted by
    reason, and never stop the count.
    """

    def __init__(
        self,
        reader: PayloadReader,
        *,
        sent_ttl: int | None = None,
        max_flows: int = MAX_SENDERS,
    ) -> None:
        self.reader = reader
        self.sent_ttl = sent_ttl  # the TTL the senders use, if known: hop counts from it
        self.max_flows = max_flows
        self.flows: dict[tuple[int, str], Flow] = {}  # by (stream, group)
        self.rejected = rejection_counts()
        self.datagrams = 0
        self.truncated = 0
        self.untracked = 0

    def account(self, datagram: Datagram, arrived: int) -> None:
        """Count one datagram that arrived at ``arrived`` (nanoseconds, the receiver's clock)."""
        self.datagrams += 1
        self.truncated += datagram.truncated
        stamp = self.reader.read(datagram, arrived)
        if isinstance(stamp, Rejection):
            self.rejected[stamp.reason.value] += 1
            return
        if stamp is None:
            return
        group = datagram.group or "?"
        flow = self.flows.get((stamp.stream, group))
        if flow is None:
            if len(self.flows) >= self.max_flows:
                self.untracked += 1
                return
            flow = self.flows[(stamp.stream, group)] = Flow(stamp.stream, group, datagram.source[0])
        flow.count(datagram, stamp, arrived)

    def senders(self) -> tuple[SenderReport, ...]:
        """One report per flow, in the order they first arrived."""
        return tuple(SenderReport.of(flow, self.sent_ttl) for flow in self.flows.values())

    def report(
        self,
        *,
        groups: tuple[str, ...],
        port: int,
        seconds: float,
        drops: int,
        wrong_interface: int,
        receive_buffer: int,
        interrupted: bool = False,
    ) -> MonitorReport:
        """The report of a run of ``seconds`` on ``groups`` and ``port``, with what the
        receiving socket adds: kernel ``drops``, datagrams that arrived on the
        ``wrong_interface``, and its ``receive_buffer``."""
        return MonitorReport(
            groups=groups,
            port=port,
            seconds=seconds,
            datagrams=self.datagrams,
            drops=drops,
            truncated=self.truncated,
            rejected=dict(self.rejected),
            untracked=self.untracked,
            wrong_interface=wrong_interface,
            senders=self.senders(),
            receive_buffer=receive_buffer,
            interrupted=interrupted,
        )


@dataclass(frozen=True, slots=True)
class _Snapshot:
    received: int
    lost: int
    duplicates: int
    reordered: int
    rejected: int
    bytes: int
    jitter_ms: float
    drops: int

    @classmethod
    def of(cls, tally: Tally, drops: int) -> _Snapshot:
        flows = tally.flows.values()
        return cls(
            drops=drops,
            received=sum(flow.tracker.received for flow in flows),
            lost=sum(flow.tracker.lost for flow in flows),
            duplicates=sum(flow.tracker.duplicates for flow in flows),
            reordered=sum(flow.tracker.reordered for flow in flows),
            rejected=sum(tally.rejected.values()) + tally.untracked,
            bytes=sum(flow.bytes for flow in flows),
            jitter_ms=max((flow.jitter.value for flow in flows), default=0.0) / 1e6,
        )

    def since(self, before: _Snapshot, start: float, end: float) -> IntervalReport:
        return IntervalReport(
            start=start,
            end=end,
            received=self.received - before.received,
            lost=self.lost - before.lost,
            duplicates=self.duplicates - before.duplicates,
            reordered=self.reordered - before.reordered,
            rejected=self.rejected - before.rejected,
            bytes=self.bytes - before.bytes,
            jitter_ms=self.jitter_ms,
            drops=self.drops - before.drops,
        )


class Intervals:
    """Cuts a run of ``tally`` into intervals of ``every`` seconds, from ``start`` (seconds on
    the loop's monotonic clock), and says what changed in each, with the kernel's drops on
    the socket (the loop gives their running total, from ``drops`` at the start)."""

    def __init__(self, tally: Tally, every: float, *, start: float, drops: int = 0) -> None:
        if not (every > 0 and math.isfinite(every)):
            raise OptionError(f"interval {every} must be a number of seconds above zero")
        self.tally = tally
        self.every = every
        self.start = start
        self.begun = start  # when the current interval began
        self._before = _Snapshot.of(tally, drops)

    @property
    def due(self) -> float:
        """When the current interval ends."""
        return self.begun + self.every

    def poll(self, now: float, drops: Callable[[], int] | None = None) -> IntervalReport | None:
        """At ``now``: the report of the interval that ended, if it has (it ends at ``now``,
        however late that is), else None. ``drops`` gives the kernel's drops so far; it is
        asked only when an interval ends."""
        if now < self.due:
            return None
        current = _Snapshot.of(self.tally, drops() if drops is not None else self._before.drops)
        report = current.since(self._before, self.begun - self.start, now - self.start)
        self._before, self.begun = current, now
        return report
