"""What the monitor reports: per flow, per group, per interval and for the whole run. Pure.

:class:`FlowReport` is one row (a stream on a group), :class:`ChannelReport` a group's join
and leave latency (from :mod:`multicast.tools.latency`), :class:`MonitorReport` the run,
:class:`IntervalReport` one interval, cut by :class:`Intervals`. Each has ``as_dict`` (the
JSON of ``--json`` and ``--json-lines``, whose ``schema`` is :data:`SCHEMA`) and a text form;
:data:`CSV_FIELDS` are the columns of ``--csv``. Times of day are the receiver's wall clock,
in seconds since the epoch (``at`` in JSON; ISO 8601 in text).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from multicast.exceptions import OptionError
from multicast.tools.framing import Reason
from multicast.tools.latency import ChannelReport, LeaveMeasure, latency_lines
from multicast.tools.payloads import NANOSECONDS, Kind, stream_text
from multicast.tools.stats import DelayHistogram
from multicast.tools.tally import Flow, FlowKey, Tally, Totals

__all__ = [
    "CSV_FIELDS",
    "SCHEMA",
    "ChannelReport",
    "FlowReport",
    "IntervalReport",
    "Intervals",
    "LeaveMeasure",
    "MonitorReport",
    "wall_clock",
]

SCHEMA = "multicast.monitor/1"
"""The ``schema`` of the monitor's JSON objects; fields are only ever added within it."""


def wall_clock(seconds: float) -> str:
    """``seconds`` since the epoch as local ISO 8601 time to the millisecond."""
    whole = math.floor(seconds)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(whole))
    return f"{stamp}.{int((seconds - whole) * 1000):03d}"


def _ms(nanoseconds: float | None) -> float | None:
    return None if nanoseconds is None else round(nanoseconds / 1e6, 6)


def _delays(histogram: DelayHistogram | None) -> dict[str, object] | None:
    if histogram is None or not (histogram.count or histogram.negative):
        return None
    summary: dict[str, object] = {
        "count": histogram.count,
        "negative": histogram.negative,
        "min_ms": _ms(histogram.min_ns),
        "max_ms": _ms(histogram.max_ns),
    }
    if histogram.count:
        summary.update(
            {f"p{n}_ms": histogram.percentile(n / 100) for n in (50, 90, 99)},
            histogram=[
                {"from_ms": low, "to_ms": high, "count": count}
                for low, high, count in histogram.bins()
            ],
        )
    return summary


@dataclass(frozen=True, slots=True)
class FlowReport:
    """Counts for one flow: one stream (or one UDP source) on one group."""

    group: str
    source: str
    port: int
    payload: str  # a payloads.Kind value, or "undecided" (too few datagrams to tell)
    stream: int | None  # a frame's sender id or an RTP SSRC
    datagrams: int
    bytes: int
    seconds: float  # from its first datagram to its last
    first: float | None  # wall clock of its first and last datagram (seconds)
    last: float | None
    arrival_jitter_ms: float
    received: int  # sequence numbers seen (TS packets for mpegts), duplicates included
    unique: int
    lost: int
    duplicates: int
    reordered: int
    gaps: int
    truncated: int
    jitter_ms: float | None  # RFC 3550, from the send times; None without them
    ttl_min: int | None
    ttl_max: int | None
    first_sequence: int | None
    last_sequence: int | None
    streams: dict[int, dict[str, int]]  # mpegts: per PID, its counts
    delays: DelayHistogram | None
    hops_min: int | None = None
    hops_max: int | None = None

    @classmethod
    def of(cls, flow: Flow, *, sent_ttl: int | None = None) -> FlowReport:
        """The report of ``flow``; with ``sent_ttl`` (the senders' TTL), its hop counts."""
        hops: tuple[int | None, int | None] = (None, None)
        # A TTL above the one the senders are said to use: that sender uses another, and its
        # hop count is unknown (never negative, nor a made-up 0).
        low, high = flow.ttl_min, flow.ttl_max
        if sent_ttl is not None and low is not None and high is not None and high <= sent_ttl:
            hops = (sent_ttl - high, sent_ttl - low)
        trackers = [stream.tracker for stream in flow.streams.values()]
        single = trackers[0] if len(trackers) == 1 else None
        first, last = flow.first_arrival, flow.last_arrival
        jitter = flow.jitter_seconds
        return cls(
            group=flow.group,
            source=flow.source,
            port=flow.port,
            payload=flow.kind.value if flow.decided else "undecided",
            stream=flow.stream,
            datagrams=flow.datagrams,
            bytes=flow.bytes,
            seconds=(last - first) / NANOSECONDS if first is not None and last is not None else 0,
            first=None if first is None else first / NANOSECONDS,
            last=None if last is None else last / NANOSECONDS,
            arrival_jitter_ms=flow.arrival_jitter / 1e6,
            received=flow.received,
            unique=flow.total("unique"),
            lost=flow.lost,
            duplicates=flow.duplicates,
            reordered=flow.reordered,
            gaps=flow.total("gaps"),
            truncated=flow.truncated,
            jitter_ms=None if jitter is None else jitter * 1000,
            ttl_min=flow.ttl_min,
            ttl_max=flow.ttl_max,
            first_sequence=None if single is None else single.lowest,
            last_sequence=None if single is None else single.highest,
            streams={
                pid: {
                    "packets": stream.tracker.received,
                    "lost": stream.tracker.lost,
                    "duplicates": stream.tracker.duplicates,
                    "reordered": stream.tracker.reordered,
                }
                for pid, stream in sorted(flow.streams.items())
            }
            if flow.stream is None
            else {},
            delays=flow.delays,
            hops_min=hops[0],
            hops_max=hops[1],
        )

    @property
    def loss(self) -> float:
        """Lost over expected (0 without sequence numbers)."""
        expected = self.unique + self.lost
        return self.lost / expected if expected else 0.0

    @property
    def datagrams_per_second(self) -> float:
        return (self.datagrams - 1) / self.seconds if self.seconds > 0 else 0.0

    @property
    def bits_per_second(self) -> float:
        return self.bytes * 8 * self.datagrams_per_second / self.datagrams if self.datagrams else 0

    @property
    def stream_text(self) -> str | None:
        """The stream id as reports write it (see :func:`payloads.stream_text`)."""
        if self.stream is None or self.payload == "undecided":
            return None
        return stream_text(Kind(self.payload), self.stream)

    @property
    def name(self) -> str:
        """How the text report names the flow."""
        text = self.stream_text
        stream = "" if text is None else f" {self.payload} {text}"
        payload = "" if self.stream is not None else f" {self.payload}"
        return f"{self.source}:{self.port} -> {self.group}{stream}{payload}"

    def as_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "source": self.source,
            "port": self.port,
            "payload": self.payload,
            "stream": self.stream_text,
            "datagrams": self.datagrams,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 6),
            "first": self.first,
            "last": self.last,
            "datagrams_per_second": round(self.datagrams_per_second, 3),
            "bits_per_second": round(self.bits_per_second, 3),
            "arrival_jitter_ms": round(self.arrival_jitter_ms, 6),
            "received": self.received,
            "unique": self.unique,
            "lost": self.lost,
            "loss_percent": round(100 * self.loss, 4),
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "gaps": self.gaps,
            "truncated": self.truncated,
            "jitter_ms": None if self.jitter_ms is None else round(self.jitter_ms, 6),
            "ttl": {"min": self.ttl_min, "max": self.ttl_max},
            "hops": {"min": self.hops_min, "max": self.hops_max},
            "sequence": {"first": self.first_sequence, "last": self.last_sequence},
            "pids": {str(pid): counts for pid, counts in self.streams.items()},
            "delay": _delays(self.delays),
        }

    def __str__(self) -> str:
        ttl = f"ttl {self.ttl_min}-{self.ttl_max}" if self.ttl_min is not None else "ttl ?"
        if self.hops_min is not None:
            ttl += f", hops {self.hops_min}-{self.hops_max}"
        rate = f"{self.bits_per_second / 1e6:.3f} Mbit/s, {self.datagrams_per_second:.1f} pps"
        line = (
            f"{self.name}: {self.datagrams} datagrams, {self.bytes} bytes, {rate}, "
            f"arrival jitter {self.arrival_jitter_ms:.3f} ms, {ttl}"
        )
        if self.payload in ("raw", "undecided"):
            return line
        unit = "TS packets" if self.payload == "mpegts" else "received"
        line += (
            f"; {unit} {self.received}, lost {self.lost} ({self.loss:.2%}), "
            f"duplicates {self.duplicates}, reordered {self.reordered}, gaps {self.gaps}, "
            f"truncated {self.truncated}"
        )
        if self.jitter_ms is not None:
            line += f", jitter {self.jitter_ms:.3f} ms"
        errors = [f"{pid}: {c['lost']} lost" for pid, c in self.streams.items() if c["lost"]]
        if errors:
            line += f"; continuity errors by PID {', '.join(errors)}"
        return line


@dataclass(frozen=True, slots=True)
class MonitorReport(Totals):
    """What a monitor run saw: totals, rejections by reason, one report per flow and per
    joined channel, the alarms raised."""

    groups: tuple[str, ...]
    port: int
    seconds: float
    datagrams: int  # everything read from the socket
    drops: int  # datagrams the kernel dropped on the socket (receive buffer full)
    truncated: int  # datagrams longer than the receive buffer
    rejected: dict[str, int]  # by framing.Reason value
    untracked: int  # datagrams of flows beyond the limit
    wrong_interface: int  # IPv6 datagrams that arrived where their group was not joined
    senders: tuple[FlowReport, ...]
    receive_buffer: int
    interrupted: bool = False
    started: float = 0.0  # wall clock, seconds
    channels: tuple[ChannelReport, ...] = ()
    not_joined: int = 0  # datagrams of groups or sources not joined (spread memberships)
    alarms: tuple[str, ...] = ()
    clock: str = "unknown"  # whose clocks the one-way delays compare (see Monitor)
    leave: LeaveMeasure | None = None  # how the leave latency was measured (--leave-wait)

    @classmethod
    def of(
        cls,
        tally: Tally,
        *,
        groups: tuple[str, ...],
        port: int,
        seconds: float,
        drops: int,
        wrong_interface: int,
        receive_buffer: int,
        interrupted: bool = False,
        started: float = 0.0,
        channels: tuple[ChannelReport, ...] = (),
        not_joined: int = 0,
        alarms: tuple[str, ...] = (),
        clock: str = "unknown",
        leave: LeaveMeasure | None = None,
    ) -> MonitorReport:
        """The report of ``tally`` over a run of ``seconds`` on ``groups`` and ``port``, with
        what the receiving socket adds: kernel ``drops``, datagrams that arrived on the
        ``wrong_interface`` or were ``not_joined``, its ``receive_buffer``; and what the
        loop knows: when it ``started``, the ``channels`` joined, the ``alarms`` raised, how
        it measured the ``leave``."""
        return cls(
            groups=groups,
            port=port,
            seconds=seconds,
            datagrams=tally.datagrams,
            drops=drops,
            truncated=tally.truncated,
            rejected=dict(tally.rejected),
            untracked=tally.untracked,
            wrong_interface=wrong_interface,
            senders=tuple(FlowReport.of(flow, sent_ttl=tally.sent_ttl) for flow in tally.rows()),
            receive_buffer=receive_buffer,
            interrupted=interrupted,
            started=started,
            channels=channels,
            not_joined=not_joined,
            alarms=alarms,
            clock=clock,
            leave=leave,
        )

    def total(self, name: str) -> int:
        """Sum of a per-flow counter (``received``, ``lost``, ...) over every flow."""
        return sum(int(getattr(report, name)) for report in self.senders)

    @property
    def foreign(self) -> int:
        return self.rejected[Reason.FOREIGN.value]

    def delays(self) -> DelayHistogram | None:
        """Every flow's one-way delays together (None when no payload carried a send time)."""
        merged: DelayHistogram | None = None
        for report in self.senders:
            if report.delays is not None:
                merged = merged or DelayHistogram()
                merged.merge(report.delays)
        return merged

    def as_dict(self) -> dict[str, object]:
        summary: dict[str, object] = {
            name: self.total(name)
            for name in ("datagrams", "bytes", "received", "unique", "lost", "duplicates")
        }
        summary.update(reordered=self.total("reordered"), gaps=self.total("gaps"))
        summary.update(self.rejected)
        summary.update(
            datagrams=self.datagrams,
            truncated=self.truncated,
            untracked=self.untracked,
            wrong_interface=self.wrong_interface,
            not_joined=self.not_joined,
            drops=self.drops,
            seconds=round(self.seconds, 6),
            receive_buffer=self.receive_buffer,
            interrupted=self.interrupted,
        )
        return {
            "schema": SCHEMA,
            "type": "final",
            "at": round(self.started + self.seconds, 3),
            "started": round(self.started, 3),
            "groups": list(self.groups),
            "port": self.port,
            "summary": summary,
            "clock": self.clock,
            "delay": _delays(self.delays()),
            "alarms": list(self.alarms),
            "leave": None if self.leave is None else self.leave.as_dict(),
            "channels": [channel.as_dict() for channel in self.channels],
            "senders": [report.as_dict() for report in self.senders],
        }

    def __str__(self) -> str:
        shown = ", ".join(self.groups[:4]) + (
            f" and {len(self.groups) - 4} more" if len(self.groups) > 4 else ""
        )
        lines = [
            f"{wall_clock(self.started + self.seconds)} {self.datagrams} datagrams on {shown} "
            f"port {self.port} in {self.seconds:.3f} s; kernel drops {self.drops}, "
            f"truncated {self.truncated}" + (" (interrupted)" if self.interrupted else "")
        ]
        lines.extend(f"  {report}" for report in self.senders)
        lines += latency_lines(self.channels, self.leave)
        delays = self.delays()
        if delays is not None and delays.count:
            percentiles = "/".join(f"{delays.percentile(n / 100):.3f}" for n in (50, 90, 99))
            lines.append(
                f"  one-way delay p50/p90/p99 {percentiles} ms over {delays.count} datagrams "
                f"({self.clock})" + (f"; {delays.negative} negative" if delays.negative else "")
            )
        rejected = ", ".join(f"{name} {count}" for name, count in self.rejected.items() if count)
        lines.append(
            f"  not counted: {rejected or 'none'}; untracked flows' datagrams {self.untracked}; "
            f"arrived where not joined {self.wrong_interface}; not joined {self.not_joined}"
        )
        lines.extend(f"  ALARM {alarm}" for alarm in self.alarms)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class IntervalReport:
    """Changes over one interval: totals and, per flow, what it received."""

    start: float  # seconds since the monitor started
    end: float
    at: float  # wall clock of the end, seconds
    datagrams: int  # read from the socket, refused ones too
    received: int
    lost: int
    duplicates: int
    reordered: int
    rejected: int
    bytes: int
    jitter_ms: float  # largest of the flows' current estimates
    drops: int = 0  # the kernel's, in this interval
    flows: tuple[dict[str, object], ...] = ()
    alarms: tuple[str, ...] = field(default=())

    @property
    def bits_per_second(self) -> float:
        span = self.end - self.start
        return self.bytes * 8 / span if span > 0 else 0.0

    @property
    def datagrams_per_second(self) -> float:
        span = self.end - self.start
        return self.datagrams / span if span > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "type": "interval",
            "at": round(self.at, 3),
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "datagrams": self.datagrams,
            "bytes": self.bytes,
            "datagrams_per_second": round(self.datagrams_per_second, 3),
            "bits_per_second": round(self.bits_per_second, 3),
            "received": self.received,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "rejected": self.rejected,
            "drops": self.drops,
            "jitter_ms": round(self.jitter_ms, 6),
            "alarms": list(self.alarms),
            "flows": list(self.flows),
        }

    def __str__(self) -> str:
        text = (
            f"{wall_clock(self.at)} [{self.start:6.2f}-{self.end:6.2f} s] "
            f"datagrams {self.datagrams:7d}  lost {self.lost:5d}  dup {self.duplicates:4d}  "
            f"reord {self.reordered:4d}  rejected {self.rejected:4d}  drops {self.drops:4d}  "
            f"{self.bits_per_second / 1e6:8.3f} Mbit/s  jitter {self.jitter_ms:.3f} ms"
        )
        return text + "".join(f"  ALARM {alarm}" for alarm in self.alarms)


CSV_FIELDS = (
    "at",
    "type",
    "start",
    "end",
    "group",
    "source",
    "port",
    "payload",
    "stream",
    "datagrams",
    "bytes",
    "bits_per_second",
    "lost",
    "duplicates",
    "reordered",
    "jitter_ms",
)
"""Columns of ``--csv``: one row per flow and interval, then one per flow for the run."""

_Counts = tuple[int, int, int, int, int, int]  # datagrams, received, lost, dup, reord, bytes


def _counts(flow: Flow) -> _Counts:
    return (
        flow.datagrams,
        flow.received,
        flow.lost,
        flow.duplicates,
        flow.reordered,
        flow.bytes,
    )


class Intervals:
    """Cuts a run of ``tally`` into intervals of ``every`` seconds, from ``start`` (seconds on
    the loop's monotonic clock), and says what changed in each, in total and per flow."""

    def __init__(self, tally: Tally, every: float, *, start: float) -> None:
        if not (every > 0 and math.isfinite(every)):
            raise OptionError(f"interval {every} must be a number of seconds above zero")
        self.tally = tally
        self.every = every
        self.start = start
        self.begun = start  # when the current interval began
        self._flows: dict[FlowKey, _Counts] = {}
        self._rejected = self._datagrams = 0

    @property
    def due(self) -> float:
        """When the current interval ends."""
        return self.begun + self.every

    def poll(self, now: float, *, at: float = 0.0, drops: int = 0) -> IntervalReport | None:
        """At ``now``: the report of the interval that ended, if it has (it ends at ``now``,
        however late that is), else None. ``at`` is the wall clock now, ``drops`` the
        kernel's drops in the interval."""
        if now < self.due:
            return None
        span = now - self.begun
        totals = [0] * 6
        flows = []
        for key, flow in self.tally.flows.items():
            counts = _counts(flow)
            before = self._flows.get(key, (0,) * 6)
            change = [after - earlier for after, earlier in zip(counts, before, strict=True)]
            self._flows[key] = counts
            totals = [total + part for total, part in zip(totals, change, strict=True)]
            flow.history.append(change[5] * 8 / span if span > 0 else 0.0)
            if change[0]:
                flows.append(
                    {
                        "group": flow.group,
                        "source": flow.source,
                        "port": flow.port,
                        "payload": flow.kind.value,
                        "stream": stream_text(flow.kind, flow.stream),
                        "datagrams": change[0],
                        "bytes": change[5],
                        "bits_per_second": round(change[5] * 8 / span, 3) if span > 0 else 0,
                        "received": change[1],
                        "lost": change[2],
                        "duplicates": change[3],
                        "reordered": change[4],
                        "jitter_ms": _jitter_ms(flow),
                    }
                )
        rejected = sum(self.tally.rejected.values()) + self.tally.untracked
        report = IntervalReport(
            start=self.begun - self.start,
            end=now - self.start,
            at=at,
            datagrams=self.tally.datagrams - self._datagrams,
            received=totals[1],
            lost=totals[2],
            duplicates=totals[3],
            reordered=totals[4],
            rejected=rejected - self._rejected,
            bytes=totals[5],
            jitter_ms=max(
                (j for flow in self.tally.flows.values() if (j := _jitter_ms(flow)) is not None),
                default=0.0,
            ),
            drops=drops,
            flows=tuple(flows),
        )
        self._rejected, self._datagrams, self.begun = rejected, self.tally.datagrams, now
        return report


def _jitter_ms(flow: Flow) -> float | None:
    seconds = flow.jitter_seconds
    return None if seconds is None else round(seconds * 1000, 6)
