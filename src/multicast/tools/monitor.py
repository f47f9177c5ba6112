"""``multicast monitor``: receive groups and count, per sender and group, what arrived.

Each frame's sender id and sequence number feed a :class:`SequenceTracker`; its send time
feeds an RFC 3550 jitter estimate. Datagrams that are not acceptable frames are counted by
the reason :mod:`multicast.tools.framing` gives, and never stop the monitor.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from multicast.cliargs import check_sources
from multicast.core import Datagram, Group, InterfaceSpec, IPAddress
from multicast.core.constants import MAX_DATAGRAM
from multicast.exceptions import OptionError
from multicast.tools.common import Joined, check_limits, rejection_counts
from multicast.tools.framing import (
    HEADER_SIZE,
    FrameReader,
    Header,
    Reason,
    Rejection,
    parse_header,
)
from multicast.tools.options import (
    add_duration,
    add_json,
    add_key,
    add_limit,
    add_receiving,
    emit,
    key_of,
    live,
    positive_type,
    seconds_type,
)
from multicast.tools.stats import Arrival, JitterEstimator, SequenceTracker

__all__ = [
    "DEFAULT_RECEIVE_BUFFER",
    "TOOL",
    "IntervalReport",
    "Monitor",
    "MonitorReport",
    "MonitorTool",
    "SenderReport",
    "run_monitor",
]

# Asked of the kernel for the socket; a private network namespace cannot raise rmem_max.
DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024
# Senders tracked at most; frames of further senders are counted as untracked.
MAX_SENDERS = 1024


@dataclass(slots=True)
class _Flow:
    """Running counts for one (sender, group)."""

    sender: int
    group: str
    source: str
    tracker: SequenceTracker = field(default_factory=SequenceTracker)
    jitter: JitterEstimator = field(default_factory=JitterEstimator)
    bytes: int = 0
    truncated: int = 0
    ttl_min: int | None = None
    ttl_max: int | None = None


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
    def of(cls, flow: _Flow, sent_ttl: int | None = None) -> SenderReport:
        """The report of ``flow``; with ``sent_ttl`` (the senders' TTL), its hop counts too."""
        track = flow.tracker
        hops: tuple[int | None, int | None] = (None, None)
        if sent_ttl is not None and flow.ttl_min is not None and flow.ttl_max is not None:
            hops = (sent_ttl - flow.ttl_max, sent_ttl - flow.ttl_min)
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

    def __str__(self) -> str:
        span = self.end - self.start
        rate = self.bytes * 8 / span / 1e6 if span > 0 else 0.0
        return (
            f"[{self.start:6.2f}-{self.end:6.2f} s] received {self.received:7d}  "
            f"lost {self.lost:5d}  dup {self.duplicates:4d}  reord {self.reordered:4d}  "
            f"rejected {self.rejected:4d}  {rate:8.3f} Mbit/s  jitter {self.jitter_ms:.3f} ms"
        )


class Monitor(Joined):
    """A joined receiver that counts frames: open it (joining), start the senders, then
    :meth:`run` it; :func:`run_monitor` does both for one run."""

    def __init__(
        self,
        groups: Sequence[str | IPAddress | Group],
        port: int,
        *,
        interfaces: Sequence[InterfaceSpec] | None = None,
        sources: Sequence[str | IPAddress] = (),
        key: bytes | None = None,
        receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
        max_size: int = MAX_DATAGRAM,
        sent_ttl: int | None = None,
    ) -> None:
        if not HEADER_SIZE <= max_size <= MAX_DATAGRAM:
            raise OptionError(
                f"max size {max_size} is outside {HEADER_SIZE}-{MAX_DATAGRAM} bytes "
                "(a frame header to a whole datagram)"
            )
        super().__init__(
            groups,
            port,
            interfaces=interfaces,
            sources=sources,
            receive_buffer=receive_buffer,
            max_size=max_size,
        )
        self.reader = FrameReader(key)
        self.sent_ttl = sent_ttl  # the TTL the senders use, if known: hop counts from it
        self.flows: dict[tuple[int, str], _Flow] = {}
        self.rejected = rejection_counts()
        self.datagrams = 0
        self.truncated = 0
        self.untracked = 0

    def account(self, datagram: Datagram, arrived: int) -> None:
        """Count one datagram that arrived at ``arrived`` (nanoseconds, this host's clock)."""
        self.datagrams += 1
        if datagram.truncated:
            self.truncated += 1
            # A cut frame's tag cannot be checked: without a key its header is still counted.
            header = parse_header(datagram.payload)
            if self.reader.key is None and isinstance(header, Header):
                self._observe(header.sender, header.sequence, header.timestamp, datagram, arrived)
            return
        result = self.reader.read(datagram.payload)
        if isinstance(result, Rejection):
            self.rejected[result.reason.value] += 1
        else:
            self._observe(result.sender, result.sequence, result.timestamp, datagram, arrived)

    def _observe(
        self, sender: int, sequence: int, sent: int, datagram: Datagram, arrived: int
    ) -> None:
        group = datagram.group or "?"
        flow = self.flows.get((sender, group))
        if flow is None:
            if len(self.flows) >= MAX_SENDERS:
                self.untracked += 1
                return
            flow = self.flows[(sender, group)] = _Flow(sender, group, datagram.source[0])
        if flow.tracker.observe(sequence) is not Arrival.DUPLICATE:
            flow.jitter.update(sent, arrived)
        flow.bytes += datagram.size
        flow.truncated += datagram.truncated
        if datagram.ttl is not None:
            flow.ttl_min = datagram.ttl if flow.ttl_min is None else min(flow.ttl_min, datagram.ttl)
            flow.ttl_max = datagram.ttl if flow.ttl_max is None else max(flow.ttl_max, datagram.ttl)

    def report(self, seconds: float, *, interrupted: bool = False) -> MonitorReport:
        return MonitorReport(
            groups=self.groups,
            port=self.port,
            seconds=seconds,
            datagrams=self.datagrams,
            drops=self.drops,
            truncated=self.truncated,
            rejected=dict(self.rejected),
            untracked=self.untracked,
            wrong_interface=self.receiver.wrong_interface,
            senders=tuple(SenderReport.of(flow, self.sent_ttl) for flow in self.flows.values()),
            receive_buffer=self.receiver.receive_buffer,
            interrupted=interrupted,
        )

    def run(
        self,
        *,
        duration: float | None = None,
        count: int | None = None,
        interval: float = 1.0,
        on_interval: Callable[[IntervalReport], None] | None = None,
    ) -> MonitorReport:
        """Count until ``duration`` seconds pass or ``count`` datagrams arrive (or Ctrl-C)."""
        if not (interval > 0 and math.isfinite(interval)):
            raise OptionError(f"interval {interval} must be a number of seconds above zero")
        start = tick = time.monotonic()
        deadline = start + check_limits(duration, count)
        last = _Snapshot.of(self)
        interrupted = False
        try:
            while count is None or self.datagrams < count:
                now = time.monotonic()
                if now >= deadline:
                    break
                if on_interval is not None and now >= tick + interval:
                    current = _Snapshot.of(self)
                    on_interval(current.since(last, tick - start, now - start))
                    last, tick = current, now
                limit = None if count is None else count - self.datagrams
                ready = self.ready(min(deadline, tick + interval, now + 1.0) - now, limit)
                arrived = time.time_ns()
                for datagram in ready:
                    self.account(datagram, arrived)
        except KeyboardInterrupt:
            interrupted = True
        return self.report(time.monotonic() - start, interrupted=interrupted)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    received: int
    lost: int
    duplicates: int
    reordered: int
    rejected: int
    bytes: int
    jitter_ms: float

    @classmethod
    def of(cls, monitor: Monitor) -> _Snapshot:
        flows = monitor.flows.values()
        return cls(
            received=sum(flow.tracker.received for flow in flows),
            lost=sum(flow.tracker.lost for flow in flows),
            duplicates=sum(flow.tracker.duplicates for flow in flows),
            reordered=sum(flow.tracker.reordered for flow in flows),
            rejected=sum(monitor.rejected.values()) + monitor.untracked,
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
        )


def run_monitor(
    groups: Sequence[str | IPAddress | Group],
    port: int,
    *,
    interfaces: Sequence[InterfaceSpec] | None = None,
    sources: Sequence[str | IPAddress] = (),
    key: bytes | None = None,
    duration: float | None = None,
    count: int | None = None,
    interval: float = 1.0,
    on_interval: Callable[[IntervalReport], None] | None = None,
    receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
    max_size: int = MAX_DATAGRAM,
    sent_ttl: int | None = None,
) -> MonitorReport:
    """Join ``groups`` on ``port`` and count until ``duration``, ``count`` or Ctrl-C.

    ``sent_ttl``, the TTL the senders use, lets the report give each sender's hop count.
    """
    with Monitor(
        groups,
        port,
        interfaces=interfaces,
        sources=sources,
        key=key,
        receive_buffer=receive_buffer,
        max_size=max_size,
        sent_ttl=sent_ttl,
    ) as monitor:
        return monitor.run(
            duration=duration, count=count, interval=interval, on_interval=on_interval
        )


class MonitorTool:
    """``multicast monitor GROUP [GROUP ...]``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_receiving(
            parser, ttl_help="the TTL (IPv6 hop limit) the senders use: report each one's hops"
        )
        add_duration(parser, "seconds to run (default: until --count or Ctrl-C)")
        add_limit(parser, "stop after N datagrams, 0 for no limit (default 0)")
        parser.add_argument(
            "--interval",
            type=seconds_type,
            default=1.0,
            metavar="SECONDS",
            help="seconds between live lines on a terminal (default %(default)s)",
        )
        parser.add_argument(
            "--max-size",
            type=positive_type,
            default=MAX_DATAGRAM,
            metavar="BYTES",
            help="room for one datagram; longer ones count as truncated (default %(default)s)",
        )
        add_key(parser)
        add_json(parser)

    def run(self, args: argparse.Namespace) -> int:
        check_sources(args.groups, args.sources)
        report = run_monitor(
            args.groups,
            args.port,
            interfaces=[args.iface] if args.iface is not None else None,
            sources=args.sources,
            key=key_of(args),
            duration=args.duration,
            count=args.count or None,
            interval=args.interval,
            on_interval=print if live() and not args.json else None,
            max_size=args.max_size,
            sent_ttl=args.ttl,
        )
        emit(report, args)
        return 0 if report.datagrams else 1


TOOL = MonitorTool()
