"""``multicast stream``: send sequenced frames to a group at a set rate and size.

The receiving side is :mod:`multicast.tools.monitor`, which counts loss, duplicates,
reordering and jitter from the frames' sequence numbers and send times.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import math
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from multicast.core import (
    Group,
    InterfaceSpec,
    IPAddress,
    Sender,
    check_payload_size,
    common_family,
    parse_group,
    set_send_interface,
)
from multicast.exceptions import MulticastError, OptionError, SendError
from multicast.interrupts import deferred
from multicast.tools.common import Progress, check_limits, send_counted
from multicast.tools.framing import FrameWriter, frame_context
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
from multicast.tools.pacing import Pacer, Rate, check_rate, parse_rate

__all__ = ["DEFAULT_SIZE", "TOOL", "StreamReport", "StreamTool", "run_stream"]

DEFAULT_SIZE = 1200
DEFAULT_DURATION = 10.0
# At rate "max" frames go out in batches of this many (one sendmmsg each on Linux).
FULL_SPEED_BATCH = 64
DEFAULT_RATE = "1M"  # iperf2's UDP default (2^20 bit/s): gentle on a shared network
# Longest sleep between looks at the clock and at Ctrl-C, whatever the rate.
_NAP = 0.05

_logger = logging.getLogger(__name__)


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
    error: str | None = None  # the last send error, if any (its interface gone, say)

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
            "error": self.error,
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
            + (f"; last send error: {self.error}" if self.error else "")
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
    go out in batches of ``burst`` spaced to keep ``rate`` on average (see
    :mod:`~multicast.tools.pacing`; a rate above
    :data:`~multicast.tools.pacing.MAX_DATAGRAMS_PER_SECOND` is refused). Several groups take
    a batch each in turn, each with its own sequence numbers (``rate`` and ``count`` are
    for all together). ``on_progress`` is called after each batch with the time (monotonic)
    and the frames sent so far. Ctrl-C (or SIGTERM under the command line) ends the run
    early with a report whose counts are exact: it is acted on between batches, never
    between a send and its count. Once a datagram went out, sends the kernel refuses (the
    interface deleted, say) are counted as errors and the run goes on; a refusal of the
    very first send is raised.
    """
    listed = [group] if isinstance(group, str | IPAddress | Group) else list(group)
    targets = [parse_group(each) for each in listed]
    common_family(targets)
    parsed = targets[0]
    pace = parse_rate(rate) if isinstance(rate, str) else rate
    check_rate(pace, size)
    check_limits(duration, count)
    if burst < 1:
        raise OptionError(f"burst {burst} must be at least 1")
    if count is None and duration is None:
        duration = DEFAULT_DURATION
    check_payload_size(parsed.family, size)
    identity = secrets.randbits(64) if sender is None else sender
    if key is None:  # one buffer serves every group
        writers = [FrameWriter(identity, size)] * len(targets)
    else:  # a tag covers the group and port: one writer for each
        writers = [
            FrameWriter(identity, size, key=key, context=frame_context(target, port))
            for target in targets
        ]

    run = _Progress(sequences=[0] * len(targets))
    interface = interface if interface is not None else parsed.interface
    with Sender(
        parsed.family,
        ttl=ttl,
        interface=interface,
        loopback=loopback,
        source=source,
    ) as out:
        start = time.monotonic()
        per_second = pace.datagrams_per_second(size)
        full_speed = per_second is None and len(targets) == 1
        try:
            _send_frames(
                run,
                out,
                list(zip(writers, targets, strict=True)),
                port,
                Pacer(per_second, start=start),
                batch=max(burst, FULL_SPEED_BATCH) if full_speed else burst,
                count=count,
                deadline=start + duration if duration is not None else math.inf,
                interface=interface,
                on_progress=on_progress,
            )
        except KeyboardInterrupt:  # a handler of the program's own, in the main thread
            run.interrupted = True
        seconds = time.monotonic() - start
    return StreamReport(
        group=str(parsed),
        port=port,
        sender=identity,
        size=size,
        sent=run.sent - run.errors,
        errors=run.errors,
        seconds=seconds,
        interrupted=run.interrupted,
        groups=tuple(str(target) for target in targets),
        error=run.error.strerror if run.error is not None else None,
    )


@dataclass(slots=True)
class _Progress:
    """What a stream run has done so far."""

    sequences: list[int] = field(default_factory=list)  # the next sequence number per group
    sent: int = 0  # frames made, for every group
    errors: int = 0  # of those, frames the kernel did not take
    turn: int = 0  # the group whose turn it is
    interrupted: bool = False
    error: SendError | None = None  # the last send error


def _send_frames(
    run: _Progress,
    out: Sender,
    targets: list[tuple[FrameWriter, Group]],
    port: int,
    pacer: Pacer,
    *,
    batch: int,
    count: int | None,
    deadline: float,
    interface: InterfaceSpec | None = None,
    on_progress: Callable[[float, int], None] | None = None,
) -> None:
    """Send batches of ``batch`` frames as ``pacer`` allows, to each target in turn, until
    ``count`` or ``deadline`` (or a signal: see :func:`~multicast.interrupts.deferred`),
    counting in ``run``. While the ``interface`` sent on is gone (deleted), each refused send
    looks for it again by its name, so that the stream goes on once it is back."""
    with deferred() as stopped:
        while count is None or run.sent < count:
            if stopped():
                run.interrupted = True
                return
            now = time.monotonic()
            if now >= deadline:
                return
            wait = pacer.delay(now)
            if wait > 0:
                time.sleep(min(wait, deadline - now, _NAP))
                continue
            size = batch if count is None else min(batch, count - run.sent)
            writer, target = targets[run.turn]
            first = run.sequences[run.turn]
            # The writer reuses its buffer: a batch of several needs a copy of each frame.
            frames = (
                [writer.write(first)]
                if size == 1
                else [bytes(writer.write(first + n)) for n in range(size)]
            )
            try:
                done = send_counted(out, frames, target, port)
            except SendError as error:
                if run.sent == run.errors:  # nothing ever went out: a set-up problem
                    raise
                if run.error is None or error.errno != run.error.errno:
                    _logger.warning("stream goes on, counting errors: %s", error)
                run.error, done = error, 0
                if error.errno == errno.ENODEV and interface is not None:
                    with contextlib.suppress(MulticastError):  # not back yet
                        set_send_interface(out.sock, interface)
            run.errors += size - done
            run.sequences[run.turn] += size
            run.sent += size
            run.turn = (run.turn + 1) % len(targets)
            pacer.sent(size, now=now)
            if on_progress is not None:
                on_progress(now, run.sent - run.errors)


class StreamTool:
    """``multicast stream GROUP``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_sending(parser, receivers="receivers", groups_help="sent to in turn")
        parser.add_argument(
            "--rate",
            type=rate_type,
            default=parse_rate(DEFAULT_RATE),
            metavar="RATE",
            help="as iperf2's -b: bits per second (10m, 800kbps; k m g are powers of 10, "
            "K M G of 2), datagrams per second with pps (1000pps), bytes per second with Bps "
            f"(1MBps), or max (default {DEFAULT_RATE})",
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
        warning = check_rate(args.rate, args.size)
        if warning is not None:
            _logger.warning("stream: warning: %s", warning)
        shown = sys.stderr is not None and sys.stderr.isatty() and not args.json
        progress = Progress(sys.stderr if shown else None)
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
