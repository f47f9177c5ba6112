"""``multicast stream``: send sequenced frames to a group at a set rate and size.

The receiving side is :mod:`multicast.tools.monitor`, which counts loss, duplicates,
reordering and jitter from the frames' sequence numbers and send times.
"""

from __future__ import annotations

import argparse
import math
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from multicast.core import (
    Group,
    InterfaceSpec,
    IPAddress,
    Sender,
    check_payload_size,
    common_family,
    parse_group,
)
from multicast.exceptions import OptionError
from multicast.tools.common import Progress, check_limits, send_counted
from multicast.tools.framing import FrameWriter
from multicast.tools.options import (
    add_duration,
    add_json,
    add_key,
    add_limit,
    add_sending,
    emit,
    key_of,
    positive_type,
    rate_type,
    sending_channels,
)
from multicast.tools.pacing import Pacer, Rate, parse_rate

__all__ = ["DEFAULT_SIZE", "TOOL", "StreamReport", "StreamTool", "run_stream"]

DEFAULT_SIZE = 1200
DEFAULT_DURATION = 10.0
# At rate "max" frames go out in batches of this many (one sendmmsg each on Linux).
FULL_SPEED_BATCH = 64
DEFAULT_RATE = "1Mbps"  # as iperf's UDP default: gentle on a shared network


@dataclass(frozen=True, slots=True)
class StreamReport:
    """What one stream run sent."""

    group: str  # the first group; every one in `groups`
    port: int
    sender: int
    size: int
    sent: int
    errors: int
    seconds: float
    interrupted: bool = False
    groups: tuple[str, ...] = ()

    @property
    def datagrams_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "groups": list(self.groups),
            "port": self.port,
            "sender": f"{self.sender:016x}",
            "size": self.size,
            "sent": self.sent,
            "bytes": self.sent * self.size,
            "errors": self.errors,
            "seconds": round(self.seconds, 6),
            "datagrams_per_second": round(self.datagrams_per_second, 3),
            "bits_per_second": round(self.datagrams_per_second * self.size * 8, 3),
            "interrupted": self.interrupted,
        }

    def __str__(self) -> str:
        rate = self.datagrams_per_second
        many = f" and {len(self.groups) - 1} more groups" if len(self.groups) > 1 else ""
        return (
            f"sent {self.sent} datagrams of {self.size} bytes to {self.group}{many} "
            f"port {self.port} "
            f"in {self.seconds:.3f} s ({rate:.1f} datagrams/s, {rate * self.size * 8 / 1e6:.3f} "
            f"Mbit/s), {self.errors} send errors, sender {self.sender:016x}"
            + (" (interrupted)" if self.interrupted else "")
        )


def run_stream(
    group: str | IPAddress | Group | Sequence[str | IPAddress | Group],
    port: int,
    *,
    rate: Rate | str = DEFAULT_RATE,
    size: int = DEFAULT_SIZE,
    count: int | None = None,
    duration: float | None = None,
    burst: int = 1,
    ttl: int = 1,
    interface: InterfaceSpec | None = None,
    source: str | IPAddress | None = None,
    loopback: bool = True,
    key: bytes | None = None,
    sender: int | None = None,
    on_progress: Callable[[float, int], None] | None = None,
) -> StreamReport:
    """Send ``count`` frames, or for ``duration`` seconds (10 s when neither is given).

    ``size`` is the whole UDP payload, frame header (and tag, with ``key``) included. Frames
    go out in batches of ``burst`` spaced to keep ``rate`` on average. Several groups take
    a batch each in turn, each with its own sequence numbers (``rate`` and ``count`` are
    for all together). ``on_progress`` is called after each batch with the time (monotonic)
    and the frames sent so far. Ctrl-C ends the run early with a report.
    """
    listed = [group] if isinstance(group, str | IPAddress | Group) else list(group)
    targets = [parse_group(each) for each in listed]
    common_family(targets)
    parsed = targets[0]
    pace = parse_rate(rate) if isinstance(rate, str) else rate
    check_limits(duration, count)
    if burst < 1:
        raise OptionError(f"burst {burst} must be at least 1")
    if count is None and duration is None:
        duration = DEFAULT_DURATION
    check_payload_size(parsed.family, size)
    identity = secrets.randbits(64) if sender is None else sender
    writer = FrameWriter(identity, size, key=key)

    sequences = [0] * len(targets)  # the next sequence number of each group
    sent = errors = turn = 0
    interrupted = False
    with Sender(
        parsed.family,
        ttl=ttl,
        interface=interface if interface is not None else parsed.interface,
        loopback=loopback,
        source=source,
    ) as out:
        start = time.monotonic()
        deadline = start + duration if duration is not None else math.inf
        pacer = Pacer(pace.datagrams_per_second(size), start=start)
        pace_limited = pace.datagrams_per_second(size) is not None
        try:
            while count is None or sent < count:
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = pacer.delay(now)
                if wait > 0:
                    time.sleep(min(wait, deadline - now))
                    continue
                full_speed = not pace_limited and len(targets) == 1
                batch = max(burst, FULL_SPEED_BATCH) if full_speed else burst
                if count is not None:
                    batch = min(batch, count - sent)
                first = sequences[turn]
                # The writer reuses its buffer: a batch of several needs a copy of each frame.
                frames = (
                    [writer.write(first)]
                    if batch == 1
                    else [bytes(writer.write(first + n)) for n in range(batch)]
                )
                errors += batch - send_counted(out, frames, targets[turn], port)
                sequences[turn] += batch
                sent += batch
                turn = (turn + 1) % len(targets)
                pacer.sent(batch, now=now)
                if on_progress is not None:
                    on_progress(now, sent - errors)
        except KeyboardInterrupt:
            interrupted = True
        seconds = time.monotonic() - start
    return StreamReport(
        group=str(parsed),
        port=port,
        sender=identity,
        size=size,
        sent=sent - errors,
        errors=errors,
        seconds=seconds,
        interrupted=interrupted,
        groups=tuple(str(target) for target in targets),
    )


class StreamTool:
    """``multicast stream GROUP``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_sending(parser, receivers="receivers", groups_help="sent to in turn")
        parser.add_argument(
            "--rate",
            type=rate_type,
            default=parse_rate(DEFAULT_RATE),
            metavar="RATE",
            help="datagrams per second (1000, 2.5k, 1000pps), bits per second (800kbps, "
            f"10Mbps) or max (default {DEFAULT_RATE})",
        )
        parser.add_argument(
            "--size",
            type=positive_type,
            default=DEFAULT_SIZE,
            metavar="BYTES",
            help="UDP payload of each datagram, frame header included (default %(default)s)",
        )
        add_limit(parser, "datagrams to send, 0 for no limit (default 0)")
        add_duration(parser, f"seconds to send (default {DEFAULT_DURATION:g} without --count)")
        parser.add_argument(
            "--burst",
            type=positive_type,
            default=1,
            metavar="N",
            help="send N datagrams back to back, then pause to keep the rate (default 1)",
        )
        add_key(parser)
        add_json(parser)

    def run(self, args: argparse.Namespace) -> int:
        groups, source = sending_channels(args)
        progress = Progress(sys.stderr if sys.stderr.isatty() and not args.json else None)
        start = time.monotonic()

        def show(now: float, sent: int) -> None:
            rate = sent * args.size * 8 / max(now - start, 1e-9) / 1e6
            progress.show(now, lambda: f"sent {sent} datagrams, {rate:.3f} Mbit/s")

        report = run_stream(
            groups,
            args.port,
            rate=args.rate,
            size=args.size,
            count=args.count or None,
            duration=args.duration,
            burst=args.burst,
            ttl=args.ttl,
            interface=args.iface,
            source=source,
            loopback=not args.no_loopback,
            key=key_of(args),
            on_progress=show,
        )
        progress.done()
        emit(report, args)
        return 0 if report.sent else 1


TOOL = StreamTool()
