"""asyncio receiver and sender over the core layer's sockets.

Receive::

    async with multicast.aio.open_receiver("239.1.2.3", 5000) as receiver:
        async for datagram in receiver:  # multicast.core.Datagram: payload and metadata
            print(datagram.source, datagram.group, datagram.ttl, datagram.payload)

Send::

    async with multicast.aio.open_sender("239.1.2.3", 5000, ttl=4) as sender:
        await sender.send(b"hello")

The receiver reads with ``loop.add_reader``: each time the socket is readable it drains
every datagram already queued (up to ``batch``, through the core's batched
:func:`~multicast.core.receive_ready`) into a queue of at most ``queue_size`` datagrams.
What happens when that queue is full is the :class:`Overflow` policy; datagrams it
discards are counted in :attr:`AsyncReceiver.overflow_drops`, those the kernel discarded
in :attr:`AsyncReceiver.kernel_drops`.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import errno
import math
from collections.abc import Sequence
from typing import Self, Unpack

from multicast import core
from multicast.core import (
    Closing,
    Datagram,
    GroupSpec,
    InterfaceSpec,
    IPAddress,
    Membership,
    Payload,
    Receiver,
    Sender,
    SenderOptions,
    parse_group,
    parse_port,
)
from multicast.core.constants import MAX_DATAGRAM
from multicast.exceptions import ClosedError, OptionError

__all__ = [
    "DEFAULT_COALESCE",
    "AsyncReceiver",
    "AsyncSender",
    "Overflow",
    "open_receiver",
    "open_sender",
]

DEFAULT_COALESCE = 0.001
"""Seconds a busy receiver lets datagrams gather between reads (see :class:`AsyncReceiver`)."""


class Overflow(enum.Enum):
    """What an :class:`AsyncReceiver` does with datagrams that arrive while its queue is full."""

    DROP_OLDEST = "drop-oldest"
    """Keep the newest: discard the oldest queued datagrams (counted)."""
    DROP_NEWEST = "drop-newest"
    """Keep what is queued: discard the datagrams that do not fit (counted)."""
    PAUSE = "pause"
    """Stop reading until the queue is half empty: the kernel's buffer holds what arrives
    meanwhile, and what does not fit there is the kernel's drop (:attr:`kernel_drops`)."""


class AsyncReceiver(Closing):
    """Datagrams of a core :class:`~multicast.core.Receiver`, read on the running event loop.

    Iterate with ``async for`` or call :meth:`receive`. Reading starts at once, so datagrams
    are queued from creation on. Closing stops reading; what is queued can still be read,
    then iteration ends and :meth:`receive` raises :class:`~multicast.exceptions.ClosedError`.

    Each wake-up reads every queued datagram, up to ``batch``. When a datagram comes less
    than ``coalesce`` seconds after the reader emptied the socket (a busy stream), the
    reader then rests ``coalesce`` seconds, so that datagrams gather in the kernel's buffer
    and are taken in batches: a busy stream gets up to that much extra latency and far less
    CPU per datagram, a quiet one is read the moment each datagram arrives. ``coalesce=0``
    reads on every wake-up. Keep the receive buffer large enough for ``coalesce`` seconds
    of the stream.
    """

    def __init__(
        self,
        receiver: Receiver,
        *,
        queue_size: int = 4096,
        overflow: Overflow = Overflow.PAUSE,
        batch: int = 256,
        coalesce: float = DEFAULT_COALESCE,
    ) -> None:
        if queue_size < 1:
            raise OptionError(f"queue_size {queue_size} must be at least 1 datagram")
        if batch < 1:
            raise OptionError(f"batch {batch} must be at least 1 datagram")
        if not 0 <= coalesce <= 1:
            raise OptionError(f"coalesce {coalesce} must be between 0 and 1 second")
        self._loop = asyncio.get_running_loop()
        self.receiver = receiver
        self.port = receiver.port
        self.queue_size = queue_size
        self.overflow = Overflow(overflow)
        self.batch = batch
        self.coalesce = coalesce
        self.overflow_drops = 0
        self._queue: collections.deque[Datagram] = collections.deque()
        self._arrived: asyncio.Future[None] | None = None
        self._reading = False
        self._full = False  # Overflow.PAUSE: the queue filled up
        self._resting: asyncio.TimerHandle | None = None  # coalescing: the next read waits
        self._waiting_since = -math.inf  # when the reader last became ready for more
        self.join = receiver.join
        """Join another group (``source``: source-specific) on ``interface``: the receiver's."""
        self.leave = receiver.leave
        """Leave a membership made with the same arguments: the receiver's."""
        receiver.sock.setblocking(False)
        self._follow_state()

    @property
    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on this socket (full receive buffer), so far."""
        return self.receiver.drops

    @property
    def queued(self) -> int:
        """Datagrams waiting to be read."""
        return len(self._queue)

    @property
    def paused(self) -> bool:
        """Whether reading is paused because the queue is full (policy :attr:`Overflow.PAUSE`)."""
        return self._full

    @property
    def closed(self) -> bool:
        return self.receiver.closed

    @property
    def memberships(self) -> list[Membership]:
        return self.receiver.memberships

    def _follow_state(self) -> None:
        """Watch the socket exactly while open, not full and not resting."""
        wanted = not (self.closed or self._full or self._resting)
        if wanted and not self._reading:
            self._loop.add_reader(self.receiver.fileno(), self._read_ready)
        elif self._reading and not wanted:
            self._loop.remove_reader(self.receiver.fileno())
        self._reading = wanted

    def _rest_over(self) -> None:
        self._resting = None
        self._waiting_since = self._loop.time()
        self._follow_state()

    def _read_ready(self) -> None:
        queue = self._queue
        limit = self.batch
        if self.overflow is Overflow.PAUSE:
            limit = min(limit, self.queue_size - len(queue))
        ready = self.receiver.receive_ready(limit)
        queue.extend(ready)
        excess = len(queue) - self.queue_size
        if excess > 0:
            self.overflow_drops += excess
            discard = queue.popleft if self.overflow is Overflow.DROP_OLDEST else queue.pop
            for _ in range(excess):
                discard()
        self._full = excess == 0 and self.overflow is Overflow.PAUSE
        now = self._loop.time()
        if len(ready) < limit and now - self._waiting_since < self.coalesce:
            # Drained, and data came within `coalesce`: let the next datagrams gather.
            self._resting = self._loop.call_later(self.coalesce, self._rest_over)
        else:
            self._waiting_since = now
        self._follow_state()
        if queue and self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    async def receive(self) -> Datagram:
        """The oldest queued datagram, waiting for one if none is queued."""
        queue = self._queue
        while not queue:
            if self.closed:
                raise ClosedError(errno.EBADF, f"receiver on port {self.port} is closed")
            if self._arrived is None or self._arrived.done():
                self._arrived = self._loop.create_future()
            await self._arrived
        datagram = queue.popleft()
        if self._full and len(queue) <= self.queue_size // 2:
            self._full = False
            self._follow_state()
        return datagram

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Datagram:
        try:
            return await self.receive()
        except ClosedError:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stop reading and close the socket (leaving its groups); wake whoever waits."""
        if self.closed:
            return
        if self._resting is not None:
            self._resting.cancel()
        if self._reading:
            self._loop.remove_reader(self.receiver.fileno())
            self._reading = False
        self.receiver.close()
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)


def open_receiver(
    groups: GroupSpec | Sequence[GroupSpec],
    port: int | str,
    *,
    interfaces: Sequence[InterfaceSpec] | InterfaceSpec | None = None,
    sources: Sequence[str | IPAddress | None] = (),
    every_interface: bool = False,
    receive_buffer: int | None = None,
    max_size: int = MAX_DATAGRAM,
    queue_size: int = 4096,
    overflow: Overflow = Overflow.PAUSE,
    batch: int = 256,
    coalesce: float = DEFAULT_COALESCE,
) -> AsyncReceiver:
    """An :class:`AsyncReceiver` on ``port`` that joined ``groups`` (one group, or several).

    ``interfaces``, ``sources`` (source-specific joins), ``every_interface``,
    ``receive_buffer`` and ``max_size`` are those of :func:`multicast.core.open_receiver`;
    ``queue_size``, ``overflow``, ``batch`` (datagrams read per wake-up at most) and
    ``coalesce`` those of :class:`AsyncReceiver`. Call it from a coroutine: it reads on the
    running loop.
    """
    joined: Sequence[GroupSpec] = [groups] if isinstance(groups, GroupSpec) else groups
    receiver = core.open_receiver(
        joined,
        parse_port(port, allow_zero=True),
        interfaces=interfaces,
        sources=sources,
        every_interface=every_interface,
        receive_buffer=receive_buffer,
        max_size=max_size,
        blocking=False,
    )
    try:
        return AsyncReceiver(
            receiver, queue_size=queue_size, overflow=overflow, batch=batch, coalesce=coalesce
        )
    except BaseException:
        receiver.close()
        raise


class AsyncSender(Closing):
    """Sends datagrams to one group and port from a non-blocking core :class:`Sender`."""

    def __init__(self, sender: Sender, group: GroupSpec, port: int | str) -> None:
        self._loop = asyncio.get_running_loop()
        self.sender = sender
        self.group = parse_group(group)
        self.port = parse_port(port)
        sender.sock.setblocking(False)

    @property
    def closed(self) -> bool:
        return self.sender.closed

    async def send(self, payload: Payload) -> int:
        """Send ``payload`` as one datagram, waiting while the socket's buffer is full."""
        while True:
            if self.closed:
                raise ClosedError(errno.EBADF, f"sender to {self.group} port {self.port} is closed")
            try:
                return self.sender.send(payload, self.group, self.port)
            except BlockingIOError:
                await self._writable()

    async def _writable(self) -> None:
        writable: asyncio.Future[None] = self._loop.create_future()
        fileno = self.sender.fileno()
        self._loop.add_writer(fileno, writable.set_result, None)
        try:
            await writable
        finally:
            self._loop.remove_writer(fileno)

    def close(self) -> None:
        self.sender.close()


def open_sender(group: GroupSpec, port: int | str, **options: Unpack[SenderOptions]) -> AsyncSender:
    """An :class:`AsyncSender` to ``group`` and ``port`` (IPv4 or IPv6, from the group).

    The ``options`` are those of :class:`~multicast.core.Sender`: ``ttl`` (hop limit) 0 keeps
    datagrams on this host; ``interface`` picks the outgoing interface; ``loopback`` whether
    this host's receivers get them; ``source`` and ``source_port`` bind the sending address
    (what source-specific receivers select on).
    """
    parsed = parse_group(group)
    sender = Sender(parsed.family, **options)
    try:
        return AsyncSender(sender, parsed, port)
    except BaseException:
        sender.close()
        raise
