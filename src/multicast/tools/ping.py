"""``multicast ping``: probe a group and time the unicast replies of every pong on it.

With ``--unicast ADDRESS`` it also probes one pong by unicast, at the same time and with
its own sequence numbers, and reports both side by side: a path that answers unicast but
not multicast points at multicast (snooping, routing, a firewall), one that answers neither
at the path itself.

Round-trip times come from this host's monotonic clock and a table of send times: nothing a
reply claims about time is trusted. Hops come from the TTL each pong saw on the probe.

:class:`Prober` keeps that bookkeeping without a socket or a clock; :func:`run_ping` is the
loop that sends its probes and gives it the replies.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from multicast.cliargs import source_type
from multicast.core import (
    Group,
    InterfaceSpec,
    IPAddress,
    Sender,
    check_payload_size,
    family_of,
    parse_address,
    parse_group,
    receive_batch,
    send_to,
    set_busy_poll,
)
from multicast.core.constants import MAX_DATAGRAM
from multicast.core.datagram import SocketAddress
from multicast.core.io import destination
from multicast.exceptions import OptionError, UsageError
from multicast.tools.common import DRAIN_LIMIT, check_limits, rejection_counts, send_if_room
from multicast.tools.framing import (
    HEADER_SIZE,
    REPLY_PAYLOAD_SIZE,
    TIME_WINDOW,
    Flag,
    FrameReader,
    FrameWriter,
    Rejection,
    frame_context,
    frame_size,
    parse_header,
)
from multicast.tools.options import (
    add_busy_poll,
    add_json,
    add_key,
    add_sending,
    add_time_window,
    emit,
    key_of,
    live,
    positive_type,
    seconds_type,
    sending_channels,
)
from multicast.tools.pacing import Pacer
from multicast.tools.stats import Summary, summarize

__all__ = [
    "MAX_RESPONDERS",
    "TOOL",
    "PingReport",
    "PingTool",
    "Prober",
    "Reply",
    "ResponderReport",
    "minimum_probe_size",
    "run_ping",
]


MAX_RESPONDERS = 1024
"""Responders a ping run keeps apart at most; replies from more are counted as ``untracked``
(without a key anyone can forge replies from any number of addresses)."""


def minimum_probe_size(*, tagged: bool) -> int:
    """The smallest probe a pong answers: a probe is never smaller than its reply."""
    return frame_size(REPLY_PAYLOAD_SIZE, tagged=tagged)


class Reply(NamedTuple):
    """One reply, as the live output shows it. (A named tuple: one is made per reply, and a
    frozen dataclass costs several times more.)"""

    address: str
    responder: int
    sequence: int
    size: int
    rtt_ms: float
    hops: int | None
    duplicate: bool

    def __str__(self) -> str:
        hops = "?" if self.hops is None else self.hops
        duplicate = " (DUP!)" if self.duplicate else ""
        return (
            f"{self.size} bytes from {self.address}: seq={self.sequence} hops={hops} "
            f"time={self.rtt_ms:.3f} ms{duplicate}"
        )


@dataclass(slots=True)
class _Responder:
    address: str
    responder: int
    rtts: dict[int, float] = field(default_factory=dict)  # sequence -> round trip, ms
    duplicates: int = 0
    hops: int | None = None


@dataclass(frozen=True, slots=True)
class ResponderReport:
    """Replies of one pong: loss, duplicates, round-trip distribution and hop count."""

    address: str
    responder: int
    replies: int
    lost: int
    duplicates: int
    hops: int | None
    rtt: Summary | None

    @property
    def loss(self) -> float:
        total = self.replies + self.lost
        return self.lost / total if total else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "responder": f"{self.responder:016x}",
            "replies": self.replies,
            "lost": self.lost,
            "loss_percent": round(100 * self.loss, 3),
            "duplicates": self.duplicates,
            "hops": self.hops,
            "rtt_ms": {k: round(v, 6) for k, v in self.rtt.as_dict().items()} if self.rtt else None,
        }

    def __str__(self) -> str:
        rtt = self.rtt
        times = (
            f"rtt min/avg/max/stddev = {rtt.min:.3f}/{rtt.avg:.3f}/{rtt.max:.3f}/"
            f"{rtt.stddev:.3f} ms, p50/p90/p99 = {rtt.p50:.3f}/{rtt.p90:.3f}/{rtt.p99:.3f} ms"
            if rtt
            else "no round-trip times"
        )
        hops = "?" if self.hops is None else self.hops
        return (
            f"{self.address} (responder {self.responder:016x}): {self.replies} replies, "
            f"{self.lost} lost ({self.loss:.1%}), {self.duplicates} duplicates, hops {hops}, "
            f"{times}"
        )


@dataclass(frozen=True, slots=True)
class PingReport:
    """A ping run: probes sent, replies received, one report per responder."""

    group: str
    port: int
    prober: int
    sent: int
    send_errors: int  # probes the kernel had no room for (counted in sent, never answered)
    responders: tuple[ResponderReport, ...]
    unmatched: int  # authentic replies to some other prober, or to no probe sent
    rejected: dict[str, int]
    seconds: float
    interrupted: bool = False
    unicast: PingReport | None = None  # the unicast probes of --unicast, side by side
    untracked: int = 0  # replies from responders beyond MAX_RESPONDERS

    @property
    def received(self) -> int:
        return sum(responder.replies for responder in self.responders)

    @property
    def verdict(self) -> str | None:
        """With unicast probes: what the two together say of the path."""
        if self.unicast is None:
            return None
        if self.received and self.unicast.received:
            return "unicast and multicast both answered"
        if self.unicast.received:
            return "unicast answered, multicast did not: multicast is broken on the way"
        if self.received:
            return "multicast answered, unicast did not: unicast is filtered on the way"
        return "neither answered: the path (or the pong) is down"

    def as_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "port": self.port,
            "prober": f"{self.prober:016x}",
            "sent": self.sent,
            "send_errors": self.send_errors,
            "received": self.received,
            "unmatched": self.unmatched,
            "untracked": self.untracked,
            **self.rejected,
            "seconds": round(self.seconds, 6),
            "interrupted": self.interrupted,
            "responders": [responder.as_dict() for responder in self.responders],
            "unicast": None if self.unicast is None else self.unicast.as_dict(),
            "verdict": self.verdict,
        }

    def __str__(self) -> str:
        lines = [
            f"{self.sent} probes to {self.group} port {self.port}, {self.received} replies "
            f"from {len(self.responders)} responders in {self.seconds:.3f} s"
            + (" (interrupted)" if self.interrupted else "")
        ]
        lines.extend(f"  {responder}" for responder in self.responders)
        rejected = ", ".join(f"{name} {count}" for name, count in self.rejected.items() if count)
        if rejected or self.unmatched or self.untracked:
            lines.append(
                f"  not counted: unmatched {self.unmatched}; untracked responders' replies "
                f"{self.untracked}; {rejected or 'none'}"
            )
        if self.unicast is not None:
            lines.extend(f"  unicast: {line.strip()}" for line in str(self.unicast).splitlines())
            lines.append(f"  verdict: {self.verdict}")
        return "\n".join(lines)


class Prober:
    """Probe bookkeeping: the probes made and when, and the replies of each responder.

    Pure: the loop sends each probe :meth:`probe` makes, and gives :meth:`take` every
    datagram that comes back with the time it came. Times are seconds on one monotonic clock.
    With a key, probes and replies are tagged for ``group`` and ``port`` (where the probes
    go) and replies must be fresh (``time_window``); at most ``max_responders`` are kept.
    """

    def __init__(
        self,
        *,
        ttl: int,
        size: int,
        key: bytes | None = None,
        prober: int | None = None,
        group: str | IPAddress | Group | None = None,
        port: int = 0,
        time_window: float = TIME_WINDOW,
        max_responders: int = MAX_RESPONDERS,
    ) -> None:
        smallest = minimum_probe_size(tagged=key is not None)
        if size < smallest:
            raise OptionError(f"probe size {size} is below the {smallest}-byte minimum (a reply)")
        self.prober = secrets.randbits(64) if prober is None else prober
        self.ttl = ttl  # the probes' TTL: a responder's hops are this less the TTL it saw
        self.reader = FrameReader(key, time_window=time_window)
        self.context = frame_context(group, port) if key is not None else b""
        self.max_responders = max_responders
        self.untracked = 0
        self.writer = FrameWriter(
            self.prober, size, key=key, context=self.context, flags=Flag.PROBE
        )
        self.sent_at: dict[int, float] = {}  # sequence -> send time
        self.send_errors = 0
        self.responders: dict[tuple[str, int], _Responder] = {}
        self.rejected = rejection_counts()
        self.unmatched = 0

    @property
    def sent(self) -> int:
        """Probes made so far (sent, or refused by the kernel)."""
        return len(self.sent_at)

    def probe(self, now: float, timestamp: int) -> bytes:
        """The next probe, to be sent at ``now``; ``timestamp`` is the send time it carries
        (nanoseconds since the epoch), which pongs echo and nothing here trusts."""
        sequence = len(self.sent_at)
        data = bytes(self.writer.write(sequence, timestamp))
        self.sent_at[sequence] = now
        return data

    def unsent(self) -> None:
        """Count the last probe as refused by the kernel (it stays counted as sent)."""
        self.send_errors += 1

    def take(
        self, payload: bytes, address: str, arrived: float, now: int | None = None
    ) -> Reply | None:
        """Account one datagram from ``address`` that reached the probing socket at
        ``arrived`` (``now`` on the wall clock, nanoseconds; None: read it): the reply it is,
        or None when it answers no probe of ours."""
        reply = self.reader.read_reply(payload, self.context, now)
        if isinstance(reply, Rejection):
            self.rejected[reply.reason.value] += 1
            return None
        sent_at = self.sent_at
        if reply is None or reply[2] != self.prober or reply[1] not in sent_at:
            self.unmatched += 1
            return None
        responder, sequence, _, seen_ttl = reply
        peer = self.responders.get((address, responder))
        if peer is None:
            if len(self.responders) >= self.max_responders:
                self.untracked += 1
                return None
            peer = self.responders[address, responder] = _Responder(address, responder)
        rtt = (arrived - sent_at[sequence]) * 1e3
        duplicate = sequence in peer.rtts
        if duplicate:
            peer.duplicates += 1
        else:
            peer.rtts[sequence] = rtt
        if seen_ttl is not None and seen_ttl <= self.ttl:
            peer.hops = self.ttl - seen_ttl
        return Reply(address, responder, sequence, len(payload), rtt, peer.hops, duplicate)

    def report(
        self, group: Group | IPAddress, port: int, seconds: float, *, interrupted: bool = False
    ) -> PingReport:
        """The report of a run of ``seconds`` probing ``group`` (or a unicast address) on
        ``port``."""
        sent = self.sent
        return PingReport(
            group=str(group),
            port=port,
            prober=self.prober,
            sent=sent,
            send_errors=self.send_errors,
            responders=tuple(
                ResponderReport(
                    address=peer.address,
                    responder=peer.responder,
                    replies=len(peer.rtts),
                    lost=sent - len(peer.rtts),
                    duplicates=peer.duplicates,
                    hops=peer.hops,
                    rtt=summarize(list(peer.rtts.values())) if peer.rtts else None,
                )
                for peer in self.responders.values()
            ),
            unmatched=self.unmatched,
            rejected=dict(self.rejected),
            seconds=seconds,
            interrupted=interrupted,
            untracked=self.untracked,
        )


def run_ping(
    group: str | IPAddress | Group,
    port: int,
    *,
    count: int = 5,
    interval: float = 1.0,
    wait: float = 1.0,
    size: int | None = None,
    ttl: int = 1,
    interface: InterfaceSpec | None = None,
    source: str | IPAddress | None = None,
    loopback: bool = True,
    key: bytes | None = None,
    busy_poll: float = 0.0,
    on_reply: Callable[[Reply], None] | None = None,
    unicast: str | IPAddress | None = None,
    time_window: float = TIME_WINDOW,
) -> PingReport:
    """Send ``count`` probes ``interval`` seconds apart, then wait ``wait`` seconds for replies.

    ``size`` is the probe's UDP payload (default and minimum: the size of a reply). With
    ``unicast`` (a pong's address), each probe to the group goes with one to that address,
    with its own sequence numbers; the report carries both. Ctrl-C ends the run early with
    a report. ``busy_poll`` seconds is the latency mode (0: off): each wait for replies
    first polls that long without sleeping (and the socket asks the kernel for
    ``SO_BUSY_POLL``), so a reply is taken without a wake-up's delay.
    """
    parsed = parse_group(group)
    size = minimum_probe_size(tagged=key is not None) if size is None else size
    check_payload_size(parsed.family, size)
    prober = Prober(ttl=ttl, size=size, key=key, group=parsed, port=port, time_window=time_window)
    direct: Prober | None = None
    if unicast is not None:
        unicast = parse_address(unicast, what="unicast address")
        if unicast.is_multicast or family_of(unicast) != parsed.family:
            raise OptionError(
                f"--unicast {unicast} must be a unicast address of the group's family"
            )
        # Unicast probes leave with the system's unicast TTL (64): hops are counted from it.
        # With a key, their tags cover the address they are sent to, as a group's do.
        direct = Prober(
            ttl=_UNICAST_TTL, size=size, key=key, group=unicast, port=port, time_window=time_window
        )
    check_limits(None, count)
    for name, value in (("interval", interval), ("wait", wait), ("busy-poll", busy_poll)):
        if not (value >= 0 and math.isfinite(value)):
            raise OptionError(f"{name} {value} must be a number of seconds, zero or more")
    with Sender(
        parsed.family,
        ttl=ttl,
        interface=interface if interface is not None else parsed.interface,
        loopback=loopback,
        source=source,
    ) as out:
        if busy_poll:
            set_busy_poll(out.sock, round(busy_poll * 1e6))
        # Destinations resolved once: each probe is then one system call from here.
        beside = None
        if direct is not None and unicast is not None:
            beside = (direct, destination(out.sock, unicast, port))
        seconds, interrupted = _exchange(
            out.sock,
            (prober, out.destination(parsed, port)),
            beside,
            Pacer(1 / interval if interval > 0 else None, start=time.monotonic()),
            count=count,
            wait=wait,
            busy_poll=busy_poll,
            on_reply=on_reply,
        )
    report = prober.report(parsed, port, seconds, interrupted=interrupted)
    if direct is None:
        return report
    assert unicast is not None  # set with direct
    return dataclasses.replace(
        report, unicast=direct.report(unicast, port, seconds, interrupted=interrupted)
    )


def _exchange(
    sock: socket.socket,
    probing: tuple[Prober, SocketAddress],
    beside: tuple[Prober, SocketAddress] | None,
    pacer: Pacer,
    *,
    count: int,
    wait: float,
    busy_poll: float,
    on_reply: Callable[[Reply], None] | None,
) -> tuple[float, bool]:
    """Send ``count`` probes as ``pacer`` says (each with one by unicast ``beside``), then
    wait ``wait`` seconds more, giving each datagram that comes to its prober. The seconds
    it took, and whether Ctrl-C ended it. The per-probe path: nothing is resolved or made
    here that a probe does not need."""
    prober, where = probing
    buffer = bytearray(MAX_DATAGRAM)
    keyed = prober.reader.key is not None  # the wall clock judges only keyed replies
    start, deadline, sent = pacer.due, math.inf, 0  # a new pacer's due time is its start
    try:
        while (now := time.monotonic()) < deadline:
            due = pacer.delay(now) if sent < count else deadline - now
            if sent < count and due == 0:
                if not send_if_room(sock, prober.probe(time.monotonic(), time.time_ns()), where):
                    prober.unsent()
                if beside is not None:
                    _send_unicast(sock, *beside)
                pacer.sent(1, now=now)
                sent += 1
                if sent == count:
                    deadline = time.monotonic() + wait
                continue
            replies = receive_batch(
                sock, buffer, DRAIN_LIMIT, due if due < 1 else 1.0, spin=busy_poll
            )
            arrived, now_ns = time.monotonic(), time.time_ns() if keyed else None
            for datagram in replies:
                taker = prober
                if beside is not None and _reply_to(datagram.payload) == beside[0].prober:
                    taker = beside[0]
                reply = taker.take(datagram.payload, datagram.source[0], arrived, now_ns)
                if reply is not None and on_reply is not None:
                    on_reply(reply)
    except KeyboardInterrupt:
        return time.monotonic() - start, True
    return time.monotonic() - start, False


_UNICAST_TTL = 64


def _send_unicast(sock: socket.socket, prober: Prober, where: SocketAddress) -> None:
    """Send ``prober``'s next probe to ``where`` by unicast (counted unsent if refused)."""
    try:
        send_to(sock, prober.probe(time.monotonic(), time.time_ns()), where)
    except OSError:
        prober.unsent()


def _reply_to(payload: bytes) -> int | None:
    """The prober id a reply answers, read without checking it (the prober checks)."""
    header = parse_header(payload)
    if isinstance(header, Rejection) or len(payload) < HEADER_SIZE + REPLY_PAYLOAD_SIZE:
        return None
    return int.from_bytes(payload[HEADER_SIZE : HEADER_SIZE + 8], "big")


def _print_reply(reply: Reply) -> None:
    print(reply, flush=True)


class PingTool:
    """``multicast ping GROUP``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_sending(parser, receivers="pongs", groups_help="one group")
        parser.add_argument(
            "--unicast",
            type=source_type,
            default=None,
            metavar="ADDRESS",
            help="also probe the pong at ADDRESS by unicast, and compare",
        )
        parser.add_argument(
            "--count",
            type=positive_type,
            default=5,
            metavar="N",
            help="probes to send (default %(default)s)",
        )
        parser.add_argument(
            "--interval",
            type=seconds_type,
            default=1.0,
            metavar="SECONDS",
            help="seconds between probes (default %(default)s)",
        )
        parser.add_argument(
            "--wait",
            type=seconds_type,
            default=1.0,
            metavar="SECONDS",
            help="seconds to wait for replies after the last probe (default %(default)s)",
        )
        parser.add_argument(
            "--size",
            type=positive_type,
            default=None,
            metavar="BYTES",
            help="UDP payload of each probe (default and minimum: the size of a reply)",
        )
        add_busy_poll(parser)
        add_key(parser)
        add_time_window(parser)
        add_json(parser)

    def run(self, args: argparse.Namespace) -> int:
        groups, source = sending_channels(args)
        if len(groups) != 1:
            raise UsageError(f"ping probes one group, not {len(groups)}")
        report = run_ping(
            groups[0],
            args.port,
            count=args.count,
            interval=args.interval,
            wait=args.wait,
            size=args.size,
            ttl=args.ttl,
            interface=args.iface,
            source=source,
            loopback=not args.no_loopback,
            key=key_of(args),
            busy_poll=args.busy_poll / 1e6,
            time_window=args.time_window,
            on_reply=_print_reply if live() and not args.json else None,
            unicast=args.unicast,
        )
        emit(report, args)
        return 0 if report.received else 1


TOOL = PingTool()
