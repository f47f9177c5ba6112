"""``multicast monitor``: receive groups and count, per flow, what arrived.

:class:`Monitor` is the receiving loop: it joins (any number of groups, timing each join),
reads the socket and reads the clock. The counting is
:class:`multicast.tools.tally.Tally`'s, which it feeds every datagram with its arrival time,
whatever the payload (:mod:`multicast.tools.payloads`); the intervals and the report are
:mod:`multicast.tools.monitor_report`'s; where they go (lines, JSON lines, CSV, a log, the
live view) and the alarms, :mod:`multicast.tools.monitor_output`'s. After a leave, what
still reaches the wire is :mod:`multicast.tools.wire`'s to see.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence

from multicast.core import Channel, Group, InterfaceSpec, IPAddress
from multicast.core.constants import MAX_DATAGRAM
from multicast.exceptions import OptionError
from multicast.interrupts import held
from multicast.tools.common import DRAIN_LIMIT, Joined, check_limits
from multicast.tools.framing import TIME_WINDOW
from multicast.tools.latency import LeaveMeasure
from multicast.tools.monitor_output import (
    Alarms,
    CsvOutput,
    JsonLinesOutput,
    LinesOutput,
    Output,
    clock_note,
    live_view,
    local_addresses,
    open_log,
)
from multicast.tools.monitor_report import (
    ChannelReport,
    FlowReport,
    IntervalReport,
    Intervals,
    MonitorReport,
)
from multicast.tools.options import (
    add_duration,
    add_key,
    add_limit,
    add_receiving,
    add_time_window,
    argument_type,
    channels_of,
    key_of,
    live,
    positive_type,
    seconds_type,
)
from multicast.tools.payloads import NANOSECONDS, FrameStamps, Kind, reader_for
from multicast.tools.tally import MAX_FLOWS, MAX_SENDERS, Tally
from multicast.tools.wire import LeaveTimes, WireWatch, open_watch

__all__ = [
    "DEFAULT_RECEIVE_BUFFER",
    "EXIT_ALARM",
    "MAX_SENDERS",
    "TOOL",
    "FlowReport",
    "IntervalReport",
    "Monitor",
    "MonitorReport",
    "MonitorTool",
    "run_monitor",
]

# Asked of the kernel for the socket; a private network namespace cannot raise rmem_max.
DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024
EXIT_ALARM = 3  # the exit status of a run in which an alarm fired
EXIT_LOG_FAILED = 2  # the system refused to take the log's lines (the run went on)


def _tally(
    payload: Kind | None,
    key: bytes | None,
    rtp_clock: int,
    sent_ttl: int | None,
    groups: int,
    *,
    time_window: float = TIME_WINDOW,
) -> Tally:
    """The tally of ``payload`` (None: detected per flow) on ``groups`` groups; a key means
    frames (checked within ``time_window`` seconds, for the port the monitor binds). It
    tracks at least two flows per group."""
    if key is not None and payload not in (None, Kind.FRAMES):
        raise OptionError(f"a key authenticates frames only, not --payload {payload.value}")
    flows = max(MAX_FLOWS, 2 * groups)
    if key is not None:
        stamps = FrameStamps(key, time_window=time_window)
        return Tally(stamps, sent_ttl=sent_ttl, max_flows=flows)
    reader = None if payload is None else reader_for(payload, rtp_clock=rtp_clock)
    return Tally(reader, sent_ttl=sent_ttl, rtp_clock=rtp_clock, max_flows=flows)


class Monitor(Joined):
    """A joined receiver that feeds its :attr:`tally`: open it (joining), start the senders,
    then :meth:`run` it; :func:`run_monitor` does both for one run."""

    def __init__(
        self,
        groups: Sequence[str | IPAddress | Group | Channel],
        port: int,
        *,
        interfaces: Sequence[InterfaceSpec] | None = None,
        sources: Sequence[str | IPAddress] = (),
        key: bytes | None = None,
        payload: Kind | None = None,
        rtp_clock: int = 90000,
        receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
        max_size: int = MAX_DATAGRAM,
        sent_ttl: int | None = None,
        time_window: float = TIME_WINDOW,
    ) -> None:
        if not 1 <= max_size <= MAX_DATAGRAM:
            raise OptionError(f"max size {max_size} is outside 1-{MAX_DATAGRAM} bytes")
        # The key is checked before joining.
        tally = _tally(payload, key, rtp_clock, sent_ttl, len(groups), time_window=time_window)
        super().__init__(
            groups,
            port,
            interfaces=interfaces,
            sources=sources,
            receive_buffer=receive_buffer,
            max_size=max_size,
        )
        if isinstance(tally.reader, FrameStamps):
            tally.reader.port = self.port  # keyed frames' tags cover the port bound
        self.tally = tally
        self.started = time.time()  # wall clock; run() sets it again when it starts
        self.left_at: dict[str, int] = {}  # ns, per group left by leave_all
        self.leave: LeaveMeasure | None = None  # how the leave latency is being measured
        self.wire: LeaveTimes | None = None  # what reached the wire after the leave

    def channels(self) -> tuple[ChannelReport, ...]:
        """Per channel joined: its join and leave times and latencies."""
        first, last = self.tally.first_by_group, self.tally.last_by_group
        reports: dict[str, ChannelReport] = {}
        for membership, joined in self.joined_at.items():
            name = str(Channel(membership.group, membership.source))
            if name in reports:
                continue
            group = membership.group.address.compressed
            arrived = first.get(group)
            left = self.left_at.get(group)
            ended = last.get(group)
            wire = None if self.wire is None else self.wire.result(group)
            leave_ms = None
            if wire is not None:
                leave_ms = wire.leave_ms
            elif left and ended and ended > left:  # through the socket: what was in this host
                leave_ms = (ended - left) / 1e6
            reports[name] = ChannelReport(
                channel=name,
                group=group,
                joined=joined / NANOSECONDS,
                join_ms=None if arrived is None else max(0, arrived - joined) / 1e6,
                left=None if left is None else left / NANOSECONDS,
                leave_ms=leave_ms,
                after_leave=None if wire is None else wire.after,
                still_arriving=None if wire is None else wire.still_arriving,
            )
        return tuple(reports.values())

    def report(
        self, seconds: float, *, interrupted: bool = False, alarms: Sequence[str] = ()
    ) -> MonitorReport:
        """The tally's report, with what the socket and the loop add."""
        delayed = {flow.source for flow in self.tally.flows.values() if flow.delays is not None}
        return MonitorReport.of(
            self.tally,
            groups=self.groups,
            port=self.port,
            seconds=seconds,
            drops=self.drops,
            wrong_interface=self.receiver.wrong_interface,
            receive_buffer=self.receiver.receive_buffer,
            interrupted=interrupted,
            started=self.started,
            channels=self.channels(),
            not_joined=self.receiver.not_joined,
            alarms=tuple(alarms),
            clock=clock_note(delayed, local_addresses()) if delayed else "no send times",
            leave=self.leave,
        )

    def leave_all(self) -> None:
        """Leave every membership, noting when each group was left."""
        for membership in list(self.receiver.memberships):
            self.left_at.setdefault(membership.group.address.compressed, time.time_ns())
            self.receiver.leave(membership.group, membership.interface or None, membership.source)

    def leave_and_count(self, wait: float) -> None:
        """Leave every group and count for ``wait`` seconds more: what still reaches the wire
        of the interfaces they were joined on (how long the network goes on sending after
        the leave) or, without a packet socket, what still comes through this one."""
        watch, self.leave = open_watch(self.receiver.memberships, self.port, wait)
        try:
            self.leave_all()
            until = time.monotonic() + wait
            if watch is None:
                while (left := until - time.monotonic()) > 0:
                    self._take(left, None)
                return
            waited = round(wait * NANOSECONDS)
            times = self.wire = LeaveTimes(self.left_at, self.tally.last_by_group, waited)
            while (left := until - time.monotonic()) > 0:
                self._take_wire(watch, times)
                watch.wait(left)
            self._take_wire(watch, times)
        finally:
            if watch is not None:
                watch.close()
                self.leave = LeaveMeasure(
                    wait, wire=True, interfaces=watch.interfaces, drops=watch.drops, note=watch.note
                )

    def _take_wire(self, watch: WireWatch, times: LeaveTimes) -> None:
        """Count what the socket and the wire have queued (Ctrl-C waits for the count)."""
        self._take(0.0, None)
        with held():
            for group, arrived in watch.read():
                times.account(group, arrived)

    def _take(self, timeout: float, limit: int | None) -> None:
        """Wait up to ``timeout`` seconds, then read and count what is queued (``limit`` at
        most). Ctrl-C (or SIGTERM) interrupts the wait, but waits for the count of what was
        read: the report never misses a datagram taken from the socket."""
        if not self.receiver.wait(max(0.0, timeout)):
            return
        with held():
            ready = self.receiver.receive_ready(DRAIN_LIMIT if limit is None else limit)
            arrived = time.time_ns()
            account = self.tally.account
            for datagram in ready:
                account(datagram, arrived)

    def run(
        self,
        *,
        duration: float | None = None,
        count: int | None = None,
        interval: float = 1.0,
        on_interval: Callable[[IntervalReport], None] | None = None,
        outputs: Sequence[Output] = (),
        alarms: Alarms | None = None,
        leave_wait: float | None = None,
    ) -> MonitorReport:
        """Count until ``duration`` seconds pass or ``count`` datagrams arrive (or Ctrl-C).

        Every ``interval`` seconds, ``on_interval`` and each of ``outputs`` are given the
        interval's report, with the ``alarms`` it raised. With ``leave_wait``, every group
        is then left and what still arrives counted for that many seconds (leave latency:
        see :meth:`leave_and_count`).
        """
        tally = self.tally
        start = time.monotonic()
        self.started = time.time()
        joined = min(self.joined_at.values(), default=time.time_ns())
        intervals = Intervals(tally, interval, start=start)
        deadline = start + check_limits(duration, count)
        watching = on_interval is not None or bool(outputs) or bool(alarms and alarms.active)
        drops_before = self.drops
        interrupted = False
        try:
            while count is None or tally.datagrams < count:
                now = time.monotonic()
                if now >= deadline:
                    break
                wake = math.inf
                if watching:
                    drops = self.drops
                    line = intervals.poll(now, at=time.time(), drops=drops - drops_before)
                    if line is not None:
                        drops_before = drops
                        if alarms is not None:
                            fired = alarms.check(line, tally, time.time_ns(), joined)
                            line = dataclasses.replace(line, alarms=tuple(fired))
                        for output in outputs:
                            output.interval(line)
                        if on_interval is not None:
                            on_interval(line)
                    wake = intervals.due
                limit = None if count is None else count - tally.datagrams
                self._take(min(deadline, wake, now + 1.0) - now, limit)
            if leave_wait is not None:
                self.leave_and_count(leave_wait)
        except KeyboardInterrupt:
            interrupted = True
        raised = alarms.raised if alarms is not None else ()
        report = self.report(time.monotonic() - start, interrupted=interrupted, alarms=raised)
        for output in outputs:
            output.final(report)
        return report


def run_monitor(
    groups: Sequence[str | IPAddress | Group | Channel],
    port: int,
    *,
    interfaces: Sequence[InterfaceSpec] | None = None,
    sources: Sequence[str | IPAddress] = (),
    key: bytes | None = None,
    payload: Kind | None = None,
    duration: float | None = None,
    count: int | None = None,
    interval: float = 1.0,
    on_interval: Callable[[IntervalReport], None] | None = None,
    receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
    max_size: int = MAX_DATAGRAM,
    sent_ttl: int | None = None,
    time_window: float = TIME_WINDOW,
) -> MonitorReport:
    """Join ``groups`` on ``port`` and count until ``duration``, ``count`` or Ctrl-C.

    ``payload`` None detects each flow's payload; ``sent_ttl``, the TTL the senders use,
    lets the report give each sender's hop count; ``time_window``: with a key, how far a
    frame's send time may be from this host's clock.
    """
    with Monitor(
        groups,
        port,
        interfaces=interfaces,
        sources=sources,
        key=key,
        payload=payload,
        receive_buffer=receive_buffer,
        max_size=max_size,
        sent_ttl=sent_ttl,
        time_window=time_window,
    ) as monitor:
        return monitor.run(
            duration=duration, count=count, interval=interval, on_interval=on_interval
        )


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"{text!r} is not a percentage") from None
    if not 0 <= value < 100:
        raise OptionError(f"{text!r} must be a percentage from 0 to 100")
    return value


argument_percent = argument_type(_percent)


def _histogram_lines(report: MonitorReport) -> list[str]:
    delays = report.delays()
    if delays is None or not delays.count:
        return ["one-way delay: no datagram carried a send time"]
    bins = delays.bins()
    widest = max(count for _, _, count in bins)
    lines = [f"one-way delay ({report.clock}), {delays.count} datagrams:"]
    for low, high, count in bins:
        bar = "#" * round(40 * count / widest)
        lines.append(f"  {low:10.3f} - {high:10.3f} ms {count:9d} {bar}")
    if delays.negative:
        lines.append(f"  {delays.negative} negative: the sender's clock is ahead of this one")
    return lines


class MonitorTool:
    """``multicast monitor GROUP ...``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_receiving(
            parser, ttl_help="the TTL (IPv6 hop limit) the senders use: report each one's hops"
        )
        add_duration(parser, "seconds to run (default: until --count or Ctrl-C)")
        add_limit(parser, "stop after N datagrams, 0 for no limit (default 0)")
        parser.add_argument(
            "--payload",
            choices=["auto", *(kind.value for kind in Kind)],
            default="auto",
            help="how to read payloads: detected per flow from its first datagrams (auto), "
            "the tools' frames, RTP, MPEG-TS, iperf2, or raw (counts only) (default auto)",
        )
        parser.add_argument(
            "--rtp-clock",
            type=positive_type,
            default=90000,
            metavar="HZ",
            help="RTP clock rate of dynamic payload types, for jitter (default %(default)s)",
        )
        parser.add_argument(
            "--interval",
            type=seconds_type,
            default=None,
            metavar="SECONDS",
            help="print a line (or a JSON line, or CSV rows) every SECONDS, terminal or not "
            "(default: the live view on a terminal, 1 s)",
        )
        parser.add_argument(
            "--max-size",
            type=positive_type,
            default=MAX_DATAGRAM,
            metavar="BYTES",
            help="room for one datagram; longer ones count as truncated (default %(default)s)",
        )
        parser.add_argument(
            "--histogram",
            action="store_true",
            help="show the one-way delays as a histogram (send times of frames and iperf2)",
        )
        parser.add_argument(
            "--leave-wait",
            type=seconds_type,
            default=None,
            metavar="SECONDS",
            help="at the end, leave every group and watch SECONDS more what still reaches the "
            "wire (needs CAP_NET_RAW; else what still comes through the socket): leave latency",
        )
        alarms = parser.add_argument_group("unattended runs (exit status 3 if an alarm fired)")
        alarms.add_argument(
            "--alarm-loss",
            type=argument_percent,
            default=None,
            metavar="PERCENT",
            help="alarm when a flow loses more than PERCENT of an interval's datagrams",
        )
        alarms.add_argument(
            "--alarm-silence",
            type=seconds_type,
            default=None,
            metavar="SECONDS",
            help="alarm when a group gets nothing for SECONDS",
        )
        log = alarms.add_mutually_exclusive_group()
        log.add_argument(
            "--syslog",
            nargs="?",
            const="/dev/log",
            default=None,
            metavar="SOCKET",
            help="log a line per interval and each alarm to syslog (socket: /dev/log)",
        )
        log.add_argument(
            "--log-file", metavar="PATH", help="append a line per interval and each alarm"
        )
        add_key(parser)
        add_time_window(parser)
        formats = parser.add_mutually_exclusive_group()
        formats.add_argument("--json", action="store_true", help="print the final report as JSON")
        formats.add_argument(
            "--json-lines",
            action="store_true",
            help="print a JSON object per interval, and the final one, one per line",
        )
        formats.add_argument(
            "--csv", action="store_true", help="print CSV rows: per flow and interval, then final"
        )

    def outputs(self, args: argparse.Namespace, monitor: Monitor) -> list[Output]:
        """Where the intervals go, from the options and whether this is a terminal."""
        outputs: list[Output] = []
        stdout = sys.stdout  # None when closed: nothing shown, the logs still go where asked
        if stdout is not None and args.json_lines:
            outputs.append(JsonLinesOutput(stdout))
        elif stdout is not None and args.csv:
            outputs.append(CsvOutput(stdout))
        elif stdout is not None and args.interval is not None:
            outputs.append(LinesOutput(stdout))
        elif live() and not args.json:
            title = f"{len(monitor.groups)} groups, port {monitor.port}"
            outputs.append(live_view(sys.stdout, title=title, tally=monitor.tally))
        if args.syslog is not None or args.log_file is not None:
            outputs.append(open_log(file=args.log_file, syslog=args.syslog))
        return outputs

    def run(self, args: argparse.Namespace) -> int:
        channels = channels_of(args)
        alarms = Alarms(
            loss_percent=args.alarm_loss,
            silence=args.alarm_silence,
            groups=[channel.group.address.compressed for channel in channels],
        )
        payload = None if args.payload == "auto" else Kind(args.payload)
        with Monitor(
            channels,
            args.port,
            interfaces=[args.iface] if args.iface is not None else None,
            sources=args.sources,
            key=key_of(args),
            payload=payload,
            rtp_clock=args.rtp_clock,
            max_size=args.max_size,
            sent_ttl=args.ttl,
            time_window=args.time_window,
        ) as monitor:
            outputs = self.outputs(args, monitor)
            try:
                report = monitor.run(
                    duration=args.duration,
                    count=args.count or None,
                    interval=args.interval or 1.0,
                    outputs=outputs,
                    alarms=alarms,
                    leave_wait=args.leave_wait,
                )
            finally:
                for output in outputs:
                    output.close()
        if report.leave is not None and not report.leave.wire and sys.stderr is not None:
            print(
                f"multicast monitor: {report.leave.note}; the leave latency is what still came "
                "through the socket: only what was already inside this host",
                file=sys.stderr,
            )
        if args.json:
            print(json.dumps(report.as_dict(), indent=2))
        elif not (args.json_lines or args.csv):
            print(report)
            if args.histogram:
                print("\n".join(_histogram_lines(report)))
        if report.alarms:
            return EXIT_ALARM
        if any(output.failure for output in outputs):
            return EXIT_LOG_FAILED
        return 0 if report.datagrams else 1


TOOL = MonitorTool()
