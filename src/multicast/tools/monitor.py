"""``multicast monitor``: receive groups and count, per sender and group, what arrived.

:class:`Monitor` is the receiving loop: it joins, reads the socket and reads the clock. The
counting is :class:`multicast.tools.tally.Tally`'s, which it feeds every datagram with its
arrival time: each frame's sender id and sequence number feed a sequence tracker, its send
time an RFC 3550 jitter estimate. Datagrams that are not acceptable frames are counted by the
reason :mod:`multicast.tools.framing` gives, and never stop the monitor.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence

from multicast.cliargs import check_sources, distinct_groups
from multicast.core import Group, InterfaceSpec, IPAddress
from multicast.core.constants import MAX_DATAGRAM
from multicast.exceptions import OptionError
from multicast.tools.common import Joined, check_limits
from multicast.tools.framing import HEADER_SIZE, TIME_WINDOW
from multicast.tools.options import (
    add_duration,
    add_json,
    add_key,
    add_limit,
    add_receiving,
    add_time_window,
    emit,
    key_of,
    live,
    positive_type,
    seconds_type,
)
from multicast.tools.tally import (
    MAX_SENDERS,
    FrameStamps,
    IntervalReport,
    Intervals,
    MonitorReport,
    SenderReport,
    Tally,
)

__all__ = [
    "DEFAULT_RECEIVE_BUFFER",
    "MAX_SENDERS",
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


class Monitor(Joined):
    """A joined receiver that feeds its :attr:`tally`: open it (joining), start the senders,
    then :meth:`run` it; :func:`run_monitor` does both for one run."""

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
        time_window: float = TIME_WINDOW,
    ) -> None:
        if not HEADER_SIZE <= max_size <= MAX_DATAGRAM:
            raise OptionError(
                f"max size {max_size} is outside {HEADER_SIZE}-{MAX_DATAGRAM} bytes "
                "(a frame header to a whole datagram)"
            )
        stamps = FrameStamps(key, time_window=time_window)  # checks the key before joining
        tally = Tally(stamps, sent_ttl=sent_ttl)
        super().__init__(
            groups,
            port,
            interfaces=interfaces,
            sources=sources,
            receive_buffer=receive_buffer,
            max_size=max_size,
        )
        stamps.port = self.port  # the port bound (0 asks for any)
        self.tally = tally

    def report(self, seconds: float, *, interrupted: bool = False) -> MonitorReport:
        """The tally's report, with what the socket adds (kernel drops and the like)."""
        return self.tally.report(
            groups=self.groups,
            port=self.port,
            seconds=seconds,
            drops=self.drops,
            wrong_interface=self.receiver.wrong_interface,
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
        """Count until ``duration`` seconds pass or ``count`` datagrams arrive (or Ctrl-C);
        ``on_interval`` is given a report every ``interval`` seconds."""
        tally = self.tally
        start = time.monotonic()
        drops = self.drops if on_interval is not None else 0
        intervals = Intervals(tally, interval, start=start, drops=drops)
        deadline = start + check_limits(duration, count)
        interrupted = False
        try:
            while count is None or tally.datagrams < count:
                now = time.monotonic()
                if now >= deadline:
                    break
                wake = math.inf
                if on_interval is not None:
                    line = intervals.poll(now, lambda: self.drops)
                    if line is not None:
                        on_interval(line)
                    wake = intervals.due
                limit = None if count is None else count - tally.datagrams
                ready = self.ready(min(deadline, wake, now + 1.0) - now, limit)
                arrived = time.time_ns()
                for datagram in ready:
                    tally.account(datagram, arrived)
        except KeyboardInterrupt:
            interrupted = True
        return self.report(time.monotonic() - start, interrupted=interrupted)


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
    time_window: float = TIME_WINDOW,
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
        time_window=time_window,
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
        add_time_window(parser)
        add_json(parser)

    def run(self, args: argparse.Namespace) -> int:
        args.groups = distinct_groups(args.groups)
        check_sources(args.groups, args.sources)
        report = run_monitor(
            args.groups,
            args.port,
            interfaces=[args.iface] if args.iface is not None else None,
            sources=args.sources,
            key=key_of(args),
            time_window=args.time_window,
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
