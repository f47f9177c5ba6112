"""What the tools share: run limits, counted sends, and (for monitor and pong) a joined receiver."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from multicast.core import (
    TRANSIENT_SEND_ERRORS,
    Channel,
    Closing,
    Datagram,
    Group,
    InterfaceSpec,
    IPAddress,
    Membership,
    Payload,
    Sender,
    open_receiver,
    parse_group,
    send_to,
    socket_drops,
)
from multicast.core.constants import MAX_DATAGRAM
from multicast.core.datagram import SocketAddress
from multicast.core.io import send_many_to
from multicast.exceptions import OptionError
from multicast.tools.framing import Reason

__all__ = [
    "DRAIN_LIMIT",
    "Joined",
    "Progress",
    "check_limits",
    "rejection_counts",
    "send_counted",
    "send_if_room",
]

# Datagrams read from a socket in one go before the loop looks at the clock again.
DRAIN_LIMIT = 256


def send_if_room(sock: socket.socket, payload: Payload, where: SocketAddress) -> bool:
    """Send one datagram to a resolved ``where``; False when the kernel had no room for it
    (:data:`~multicast.core.io.TRANSIENT_SEND_ERRORS`: a loss to count). Any other refusal
    raises :class:`~multicast.exceptions.SendError`. Per datagram: it makes nothing."""
    try:
        send_to(sock, payload, where)
    except OSError as error:
        if error.errno in TRANSIENT_SEND_ERRORS:
            return False
        raise
    return True


def send_counted(
    sender: Sender, payloads: Sequence[bytes | bytearray], group: Group, port: int
) -> int:
    """Send each payload as one datagram (a batch of them in one system call where the
    kernel allows); returns how many went out. The kernel having no room for one
    (``ENOBUFS``, ``EAGAIN``) ends the batch early.

    Any other refusal (no route to the group, say) raises
    :class:`~multicast.exceptions.SendError`.
    """
    where = sender.destination(group, port)
    if len(payloads) == 1:
        return 1 if send_if_room(sender.sock, payloads[0], where) else 0
    try:
        return send_many_to(sender.sock, payloads, where)
    except OSError as error:
        if error.errno in TRANSIENT_SEND_ERRORS:
            return 0
        raise


def rejection_counts() -> dict[str, int]:
    """A zero count for each reason a datagram is rejected (see :class:`Reason`)."""
    return dict.fromkeys((reason.value for reason in Reason), 0)


def check_limits(duration: float | None, count: int | None) -> float:
    """Validate a run's ``duration`` and ``count``; return the duration (infinite if None)."""
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        raise OptionError(f"duration {duration} must be a number of seconds above zero")
    if count is not None and count < 1:
        raise OptionError(f"count {count} must be at least 1")
    return math.inf if duration is None else duration


class Joined(Closing):
    """A non-blocking receiver on ``port`` that joined ``groups``; a context manager.

    ``groups`` may be channels (:class:`~multicast.core.Channel`: a source-specific pair);
    any number of them (see :meth:`multicast.core.Receiver.join_all`). It notes when each
    was joined (:attr:`joined_at`), and watches the host's interfaces and rejoins by itself
    when one it joined on is deleted and comes back (see
    :meth:`multicast.core.Receiver.follow_interfaces`).
    """

    def __init__(
        self,
        groups: Sequence[str | IPAddress | Group | Channel],
        port: int,
        *,
        interfaces: Sequence[InterfaceSpec] | None = None,
        sources: Sequence[str | IPAddress] = (),
        receive_buffer: int | None = None,
        max_size: int = MAX_DATAGRAM,
    ) -> None:
        parsed = [g if isinstance(g, Channel) else Channel(parse_group(g)) for g in groups]
        self.groups = tuple(dict.fromkeys(str(channel.group) for channel in parsed))
        self.port = port
        # When each membership was asked for (ns, wall clock), in the order joined.
        self.joined_at: dict[Membership, int] = {}
        self.receiver = open_receiver(
            parsed,
            port,
            interfaces=list(interfaces) if interfaces else None,
            sources=list(sources),
            receive_buffer=receive_buffer,
            max_size=max_size,
            blocking=False,
            watch_interfaces=True,
            before_join=self._joining,
        )

    def _joining(self, membership: Membership) -> None:
        self.joined_at.setdefault(membership, time.time_ns())

    def ready(self, timeout: float, limit: int | None = None) -> list[Datagram]:
        """Datagrams that arrive within ``timeout`` seconds (at most ``limit``, maybe none)."""
        return self.receiver.receive_batch(
            DRAIN_LIMIT if limit is None else min(limit, DRAIN_LIMIT), max(0.0, timeout)
        )

    @property
    def drops(self) -> int:
        """Datagrams the kernel dropped on the socket so far (receive buffer full)."""
        return max(self.receiver.drops, socket_drops(self.receiver.sock) or 0)

    def close(self) -> None:
        self.receiver.close()


class Progress:
    """A status line rewritten in place on ``stream`` (a terminal's standard error), at most
    every ``every`` seconds; nothing without a stream."""

    def __init__(self, stream: TextIO | None, every: float = 0.5) -> None:
        self.stream = stream
        self.every = every
        self.shown = -math.inf
        self.width = 0

    def show(self, now: float, text: Callable[[], str]) -> None:
        """Show ``text()`` if the last line is ``every`` seconds old at ``now`` (monotonic)."""
        if self.stream is None or now - self.shown < self.every:
            return
        self.shown = now
        line = text()
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def done(self) -> None:
        """End the status line, so that what follows starts on a line of its own."""
        if self.stream is not None and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0
