"""``multicast pong``: a reflector that answers each ping probe on a group, by unicast.

It also answers probes sent to it by unicast (to any address of the host, on its port), so
that ``ping --unicast`` can tell a broken path from broken multicast. A reply is never
larger than the probe it answers, carries the TTL (or hop limit) the probe
arrived with so the prober can count hops, and goes only to the probe's source address.
With a key, only authentic probes not seen before are answered.

:class:`Answerer` decides what to answer and counts it, without a socket; :class:`Pong` is
the loop that receives, asks it, and sends.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import NamedTuple

from multicast.core import (
    Channel,
    Datagram,
    Group,
    InterfaceSpec,
    IPAddress,
    parse_ttl,
    reply_address,
    send_to,
    set_unicast_ttl,
)
from multicast.core.datagram import SocketAddress
from multicast.tools.common import (
    DRAIN_LIMIT,
    Joined,
    Progress,
    check_limits,
    rejection_counts,
)
from multicast.tools.framing import (
    TIME_WINDOW,
    FrameReader,
    Reason,
    Rejection,
    check_sender,
    frame_context,
    reply_frame,
)
from multicast.tools.options import (
    add_busy_poll,
    add_duration,
    add_json,
    add_key,
    add_limit,
    add_receiving,
    add_time_window,
    channels_of,
    emit,
    key_of,
    live,
)

__all__ = ["TOOL", "Answer", "Answerer", "Pong", "PongReport", "PongTool", "run_pong"]

_logger = logging.getLogger(__name__)
_DESTINATIONS_KEPT = 64  # destination addresses of probes an answerer remembers


@dataclass(frozen=True, slots=True)
class PongReport:
    """What a pong run answered and refused."""

    groups: tuple[str, ...]
    port: int
    responder: int
    probes: int  # acceptable probe frames received
    replies: int  # replies sent
    unicast: int  # probes among them sent to this host's address rather than to a group
    oversized: int  # probes smaller than their reply would be, left unanswered
    ignored: int  # acceptable frames that are not probes (stream frames, replies)
    send_errors: int
    rejected: dict[str, int]
    drops: int
    seconds: float
    interrupted: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "groups": list(self.groups),
            "port": self.port,
            "responder": f"{self.responder:016x}",
            "probes": self.probes,
            "unicast": self.unicast,
            "replies": self.replies,
            "oversized": self.oversized,
            "ignored": self.ignored,
            "send_errors": self.send_errors,
            **self.rejected,
            "drops": self.drops,
            "seconds": round(self.seconds, 6),
            "interrupted": self.interrupted,
        }

    def __str__(self) -> str:
        rejected = ", ".join(f"{name} {count}" for name, count in self.rejected.items() if count)
        return (
            f"answered {self.replies} of {self.probes} probes ({self.unicast} by unicast) on "
            f"{', '.join(self.groups)} "
            f"port {self.port} in {self.seconds:.3f} s (responder {self.responder:016x}); "
            f"too small to answer {self.oversized}, not probes {self.ignored}, "
            f"send errors {self.send_errors}, rejected: {rejected or 'none'}, "
            f"kernel drops {self.drops}" + (" (interrupted)" if self.interrupted else "")
        )


class Answer(NamedTuple):
    """A reply to send: ``payload`` to ``destination``, by unicast.

    The destination is the probe's source, with (IPv6) the interface the probe arrived on:
    a link-local prober is answered by that interface's index, never by a name looked up.
    (A named tuple: one is made per probe, and a frozen dataclass costs several times more.)
    """

    payload: bytes
    destination: SocketAddress


class Answerer:
    """Decides, for each datagram received, whether and what to answer; counts it all.

    Pure: it sends nothing. :meth:`answer` gives the reply to send (or None, counting why
    not); the loop that sends it tells :meth:`sent` how that went. With a key, probes are
    checked against the group they arrived on and ``port`` (their tags cover both) and
    must be fresh (see :class:`~multicast.tools.framing.FrameReader`, ``time_window``).
    """

    def __init__(
        self,
        key: bytes | None = None,
        responder: int | None = None,
        *,
        port: int = 0,
        time_window: float = TIME_WINDOW,
    ) -> None:
        self.reader = FrameReader(key, time_window=time_window)
        self.responder = secrets.randbits(64) if responder is None else check_sender(responder)
        # Per destination a probe arrived at: the tag context and whether it is no group.
        self._destinations: dict[str | None, tuple[bytes, bool]] = {}
        self.port = port
        self.probes = self.replies = self.oversized = self.ignored = self.send_errors = 0
        self.unicast = 0
        self.rejected = rejection_counts()

    @property
    def port(self) -> int:
        """The port probes were sent to (their tags cover it)."""
        return self._port

    @port.setter
    def port(self, port: int) -> None:
        self._port = port
        self._destinations.clear()

    def answer(self, datagram: Datagram, now: int | None = None) -> Answer | None:
        """The reply ``datagram`` calls for, if it is an acceptable probe; else None.

        ``now`` is when it arrived (nanoseconds since the epoch; None: read the clock).
        """
        if datagram.truncated:  # a cut probe cannot be checked
            self.rejected[Reason.MALFORMED.value] += 1
            return None
        key = self.reader.key
        found = self._destinations.get(datagram.group)
        context, unicast = found if found is not None else self._destination(datagram.group)
        probe = self.reader.read_probe(datagram.payload, context if key else b"", now)
        if probe is None:
            self.ignored += 1
            return None
        if isinstance(probe, Rejection):
            self.rejected[probe.reason.value] += 1
            return None
        self.probes += 1
        if unicast:
            self.unicast += 1
        sender, sequence, stamp = probe
        reply = reply_frame(
            self.responder, sender, sequence, stamp, datagram.ttl, key=key, context=context
        )
        if len(reply) > datagram.size:
            self.oversized += 1
            return None
        return Answer(reply, reply_address(datagram))

    def _destination(self, group: str | None) -> tuple[bytes, bool]:
        """The tag context of a probe that arrived at ``group`` (its destination address), and
        whether that is this host's own address rather than a group; remembered."""
        if len(self._destinations) >= _DESTINATIONS_KEPT:
            self._destinations.clear()
        unicast = group is not None and not ip_address(group).is_multicast
        found = self._destinations[group] = (frame_context(group, self.port), unicast)
        return found

    def sent(self, delivered: bool) -> None:
        """Count the outcome of sending an answer: given to the kernel, or refused by it."""
        if delivered:
            self.replies += 1
        else:
            self.send_errors += 1

    def report(
        self,
        *,
        groups: tuple[str, ...],
        port: int,
        drops: int,
        seconds: float,
        interrupted: bool = False,
    ) -> PongReport:
        """The report of a run of ``seconds`` on ``groups`` and ``port``, with the kernel's
        ``drops`` on the socket."""
        return PongReport(
            groups=groups,
            port=port,
            responder=self.responder,
            probes=self.probes,
            replies=self.replies,
            unicast=self.unicast,
            oversized=self.oversized,
            ignored=self.ignored,
            send_errors=self.send_errors,
            rejected=dict(self.rejected),
            drops=drops,
            seconds=seconds,
            interrupted=interrupted,
        )


class Pong(Joined):
    """A joined reflector that sends what its :attr:`answerer` decides; open it before
    probes are sent. ``busy_poll`` seconds is the latency mode (0: off): each wait for a probe
    first polls that long without sleeping."""

    def __init__(
        self,
        groups: Sequence[str | IPAddress | Group | Channel],
        port: int,
        *,
        interfaces: Sequence[InterfaceSpec] | None = None,
        sources: Sequence[str | IPAddress] = (),
        key: bytes | None = None,
        responder: int | None = None,
        ttl: int | None = None,
        busy_poll: float = 0.0,
        time_window: float = TIME_WINDOW,
    ) -> None:
        # The key and the TTL are checked before joining: a bad one leaves nothing open.
        answerer = Answerer(key, responder, time_window=time_window)
        if ttl is not None:
            parse_ttl(ttl, unicast=True)
        super().__init__(groups, port, interfaces=interfaces, sources=sources)
        answerer.port = self.port  # the port bound (0 asks for any)
        self.answerer = answerer
        self._refusals: set[int | None] = set()  # errnos of refused replies, logged once each
        try:
            if ttl is not None:  # the replies' TTL; else the system's default (usually 64)
                set_unicast_ttl(self.receiver.sock, ttl)
            if busy_poll:  # the latency mode: see Receiver.set_busy_poll
                self.receiver.set_busy_poll(busy_poll)
        except BaseException:
            self.close()
            raise

    @property
    def responder(self) -> int:
        """This reflector's id, which its replies carry."""
        return self.answerer.responder

    def answer(self, datagram: Datagram, now: int | None = None) -> bool:
        """Answer ``datagram`` if it is an acceptable probe; True when a reply was sent.

        A reply the kernel refuses (a prober gone or unreachable, a forged source such as a
        broadcast address, no buffer room) is counted as a send error and logged, once for
        each kind of refusal: never fatal, whatever a probe claims to come from.
        """
        answer = self.answerer.answer(datagram, now)
        if answer is None:
            return False
        try:
            send_to(self.receiver.sock, answer.payload, answer.destination)
        except OSError as error:
            self.answerer.sent(False)
            code = error.errno
            level = logging.DEBUG if code in self._refusals else logging.WARNING
            self._refusals.add(code)
            _logger.log(level, "cannot answer %s: %s", datagram.source[0], error)
            return False
        self.answerer.sent(True)
        return True

    def report(self, seconds: float, *, interrupted: bool = False) -> PongReport:
        return self.answerer.report(
            groups=self.groups,
            port=self.port,
            drops=self.drops,
            seconds=seconds,
            interrupted=interrupted,
        )

    def serve(
        self,
        *,
        duration: float | None = None,
        count: int | None = None,
        on_probe: Callable[[Datagram], None] | None = None,
    ) -> PongReport:
        """Answer probes until ``duration`` seconds pass, ``count`` are answered, or Ctrl-C."""
        start = time.monotonic()
        deadline = start + check_limits(duration, count)
        answerer, receiver = self.answerer, self.receiver
        keyed = answerer.reader.key is not None  # the clock judges only keyed probes
        interrupted = False
        try:
            while count is None or answerer.replies < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ready = receiver.receive_batch(DRAIN_LIMIT, left if left < 1 else 1.0)
                arrived = time.time_ns() if keyed else None
                for datagram in ready:
                    if self.answer(datagram, arrived) and on_probe is not None:
                        on_probe(datagram)
                    if count is not None and answerer.replies >= count:
                        break
        except KeyboardInterrupt:
            interrupted = True
        return self.report(time.monotonic() - start, interrupted=interrupted)


def run_pong(
    groups: Sequence[str | IPAddress | Group | Channel],
    port: int,
    *,
    interfaces: Sequence[InterfaceSpec] | None = None,
    sources: Sequence[str | IPAddress] = (),
    key: bytes | None = None,
    ttl: int | None = None,
    duration: float | None = None,
    count: int | None = None,
    busy_poll: float = 0.0,
    on_ready: Callable[[Pong], None] | None = None,
    on_probe: Callable[[Datagram], None] | None = None,
    time_window: float = TIME_WINDOW,
) -> PongReport:
    """Join ``groups`` on ``port`` and answer probes until ``duration``, ``count`` or Ctrl-C.

    ``ttl`` is the replies' TTL (IPv6 hop limit); ``busy_poll`` seconds the latency mode (see
    :class:`Pong`); ``on_ready`` is called once joined, before the first probe is read, and
    ``on_probe`` with each probe answered.
    """
    with Pong(
        groups,
        port,
        interfaces=interfaces,
        sources=sources,
        key=key,
        ttl=ttl,
        busy_poll=busy_poll,
        time_window=time_window,
    ) as pong:
        if on_ready is not None:
            on_ready(pong)
        return pong.serve(duration=duration, count=count, on_probe=on_probe)


def _print_ready(pong: Pong) -> None:
    print(f"answering probes on {', '.join(pong.groups)} port {pong.port} (Ctrl-C ends)")


class PongTool:
    """``multicast pong GROUP [GROUP ...]``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_receiving(
            parser,
            ttl_help="TTL (IPv6 hop limit) of the unicast replies, 1-255 (default: the "
            "system's, 64)",
            unicast_ttl=True,
        )
        add_duration(parser, "seconds to run (default: until --count or Ctrl-C)")
        add_limit(parser, "stop after answering N probes, 0 for no limit (default 0)")
        add_busy_poll(parser)
        add_key(parser)
        add_time_window(parser)
        add_json(parser)

    def run(self, args: argparse.Namespace) -> int:
        channels = channels_of(args)
        shown = sys.stderr is not None and sys.stderr.isatty() and not args.json
        progress = Progress(sys.stderr if shown else None)
        answered = 0

        def probed(datagram: Datagram) -> None:
            nonlocal answered
            answered += 1
            line = f"answered {answered} probes, the last from {datagram.source[0]}"
            progress.show(time.monotonic(), lambda: line)

        report = run_pong(
            channels,
            args.port,
            interfaces=[args.iface] if args.iface is not None else None,
            sources=args.sources,
            key=key_of(args),
            time_window=args.time_window,
            ttl=args.ttl,
            duration=args.duration,
            count=args.count or None,
            busy_poll=args.busy_poll / 1e6,
            on_ready=_print_ready if live() and not args.json else None,
            on_probe=probed,
        )
        progress.done()
        emit(report, args)
        return 0


TOOL = PongTool()
