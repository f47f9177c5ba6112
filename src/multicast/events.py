"""The event layer of document 003: a poller, ``sendto``, ``listen``, multicasters and listeners.

A :class:`Poller` (from :mod:`multicast.poller`) watches objects that have a ``fileno()`` and
a ``handle_read()`` and/or ``handle_write()`` method, through :mod:`selectors` (epoll on
Linux), and calls the handler of each event that occurred. :class:`MulticastListener` and :class:`Multicaster` are such
objects over the core layer's non-blocking sockets; by default they register with the
module's default poller, ``multicast._defaultPoller``, which the module-level functions
:func:`register`, :func:`unregister`, :func:`poll` and :func:`loop` drive.

Packets are ``bytes``. Unlike the original module, this one never busy-waits: ``loop()``
sleeps in the selector until a socket is ready, a paced multicaster is due, or ``polling``
is set to False (from any thread, which wakes it at once). A handler may close its object
mid-poll; the poller skips events of objects that are gone. Importing the module opens no
file descriptor: a poller opens its selector on first use.
"""

from __future__ import annotations

import collections
import contextlib
import re
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Self, overload

from multicast.core import (
    Closing,
    Group,
    InterfaceSpec,
    IPAddress,
    Payload,
    Receiver,
    Sender,
    parse_group,
    parse_port,
)
from multicast.exceptions import OptionError
from multicast.poller import Pollable, Poller

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_MTU",
    "DEFAULT_PORT",
    "LISTEN_BACKLOG",
    "READ_BUDGET",
    "WRITE_BUDGET",
    "MulticastListener",
    "Multicaster",
    "PacketCallback",
    "Packets",
    "Pollable",
    "Poller",
    "listen",
    "loop",
    "poll",
    "register",
    "sendto",
    "unregister",
]

DEFAULT_GROUP = "224.0.42.42"
DEFAULT_PORT = 4242
DEFAULT_MTU = 4096
READ_BUDGET = 64
"""Datagrams one ``handle_read()`` takes before the poller serves the other objects."""
WRITE_BUDGET = 64
"""Packets one ``handle_write()`` sends before the poller serves the other objects."""
LISTEN_BACKLOG = 1024
"""Packets :class:`Packets` keeps unread; beyond that the oldest are dropped and counted."""
_CATCH_UP = 0.1  # a paced multicaster that fell behind makes up at most this many seconds

Address = tuple[str, int]
PacketCallback = Callable[[bytes, Address], object]
"""A packet handler or filter: called with the payload and the sender's (host, port)."""


_defaultPoller = Poller()  # noqa: N816 (the name document 003 gives it)
register = _defaultPoller.register
unregister = _defaultPoller.unregister
poll = _defaultPoller.poll
loop = _defaultPoller.loop


class _Dispatcher(Closing):
    """A socket from the core layer, registered with a poller until closed."""

    _endpoint: Receiver | Sender

    def __init__(self, poller: Poller | None) -> None:
        self.poller = poller if poller is not None else _defaultPoller
        try:
            self.poller.register(self)
        except BaseException:
            self._endpoint.close()
            raise

    def fileno(self) -> int:
        return self._endpoint.fileno()

    @property
    def closed(self) -> bool:
        return self._endpoint.closed

    def close(self) -> None:
        """Unregister from the poller and close the socket (which leaves its groups)."""
        if self.closed:
            return
        with contextlib.suppress(KeyError):  # already unregistered by hand
            self.poller.unregister(self)
        self._endpoint.close()


def _packet_filter(
    value: PacketCallback | str | bytes | re.Pattern[bytes] | None,
) -> PacketCallback | None:
    """A predicate from a callable or a regular expression (anchored at the packet's start)."""
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        value = re.compile(value)
    if isinstance(value, re.Pattern) and isinstance(value.pattern, bytes):
        match = value.match
        return lambda packet, _addr: match(packet) is not None
    raise TypeError(
        f"filter {value!r} is neither a callable filter(packet, addr) nor a regular "
        "expression (str, bytes or a compiled bytes pattern)"
    )


class MulticastListener(_Dispatcher):
    """Joins ``ip`` on ``port`` and calls :meth:`handle_packet` for every packet it accepts.

    ``filter`` is a callable ``filter(packet, addr)`` returning whether to accept the packet,
    or a regular expression (str, bytes or compiled bytes pattern) that accepted packets
    match from their first byte; None accepts every packet. Packets are read up to ``mtu``
    bytes; longer ones arrive cut and are counted in :attr:`truncated`. Only datagrams sent
    to the group are handled (not unicast to the port). ``port`` 0 takes a free port (see
    :attr:`port`), ``interface`` picks where to join, ``source`` makes the join
    source-specific (SSM), ``poller`` replaces the default poller.
    """

    def __init__(
        self,
        filter: PacketCallback | str | bytes | re.Pattern[bytes] | None = None,
        ip: str | IPAddress | Group = DEFAULT_GROUP,
        port: int | str = DEFAULT_PORT,
        mtu: int = DEFAULT_MTU,
        *,
        interface: InterfaceSpec | None = None,
        source: str | IPAddress | None = None,
        poller: Poller | None = None,
    ) -> None:
        self.group = parse_group(ip)
        if not 1 <= mtu <= 65535:
            raise OptionError(f"mtu {mtu} is out of range (1-65535 bytes)")
        self.filter = filter
        self._accepts = _packet_filter(filter)
        self.truncated = 0
        self._destination = self.group.address.compressed
        self._endpoint = self.receiver = Receiver(
            parse_port(port, allow_zero=True),
            family=self.group.family,
            max_size=mtu,
            blocking=False,
        )
        self.port = self.receiver.port  # the one the kernel chose, for port 0
        try:
            self.receiver.join(self.group, interface, source)
        except BaseException:
            self.receiver.close()
            raise
        super().__init__(poller)

    def handle_read(self) -> None:
        """Handle what is queued, at most :data:`READ_BUDGET` datagrams, so others get a turn."""
        for datagram in self.receiver.receive_ready(READ_BUDGET):
            if self.closed:
                return
            if datagram.group is not None and datagram.group != self._destination:
                continue  # unicast to our port: not a packet of the group
            if datagram.truncated:
                self.truncated += 1
            if self._accepts is not None and not self._accepts(datagram.payload, datagram.source):
                continue
            if self.handle_packet(datagram.payload, datagram.source):
                self.close()
                return

    @abstractmethod
    def handle_packet(self, packet: bytes, addr: Address) -> object:
        """Handle one accepted packet from ``addr`` (host, port); a true result stops listening."""


class Multicaster(_Dispatcher):
    """Sends the packets that iterating over it yields to ``ip`` and ``port``, then closes.

    Subclasses define ``__iter__``. Packets go out when the poller finds the socket
    writable, at most :data:`WRITE_BUDGET` per turn; with ``rate`` (packets per second) they
    are paced, and the poller sleeps between them. ``ttl`` 0 keeps packets on this host;
    ``interface`` picks the outgoing interface, ``loopback`` whether this host's listeners
    get them. :attr:`sent` counts packets sent.
    """

    def __init__(
        self,
        ip: str | IPAddress | Group = DEFAULT_GROUP,
        port: int | str = DEFAULT_PORT,
        ttl: int = 1,
        *,
        rate: float | None = None,
        interface: InterfaceSpec | None = None,
        loopback: bool = True,
        poller: Poller | None = None,
    ) -> None:
        self.group = parse_group(ip)
        self.port = parse_port(port)
        if rate is not None and not rate > 0:
            raise OptionError(f"rate {rate!r} must be a positive number of packets per second")
        self.rate = rate
        self.sent = 0
        self._pending: Payload | None = None  # the next packet, taken but not sent yet
        self._due = time.monotonic()
        self._packets: Iterator[Payload] | None = None  # iter(self), taken at the first send
        self._endpoint = self.sender = Sender(
            self.group.family, ttl=ttl, interface=interface, loopback=loopback
        )
        self.sender.sock.setblocking(False)
        super().__init__(poller)

    @abstractmethod
    def __iter__(self) -> Iterator[Payload]:
        """The packets to send, in order."""

    def handle_write(self) -> None:
        """Send the packets that are due, at most :data:`WRITE_BUDGET`; close when done."""
        if self._packets is None:
            self._packets = iter(self)
        for _ in range(WRITE_BUDGET):
            packet = self._pending if self._pending is not None else next(self._packets, None)
            if packet is None:
                self.close()
                return
            self._pending = packet
            now = time.monotonic()
            if self.rate is not None and self._due > now:
                self.poller.pause_writing(self, self._due)
                return
            try:
                self.sender.send(packet, self.group, self.port)
            except BlockingIOError:
                return
            self._pending = None
            self.sent += 1
            if self.rate is not None:
                self._due = max(self._due, now - _CATCH_UP) + 1 / self.rate


def sendto(
    packets: Payload | Iterable[Payload],
    ip: str | IPAddress | Group = DEFAULT_GROUP,
    port: int | str = DEFAULT_PORT,
    ttl: int = 1,
    *,
    interface: InterfaceSpec | None = None,
) -> None:
    """Send ``packets`` (one bytes-like packet, or an iterable of them) to ``ip`` and ``port``.

    It sends at once and returns when done, whatever else is registered with a poller.
    """
    if isinstance(packets, str):
        raise TypeError("packets are bytes, not str: encode the text first, e.g. text.encode()")
    group = parse_group(ip)
    port = parse_port(port)
    batch = [packets] if isinstance(packets, Payload) else packets
    with Sender(group.family, ttl=ttl, interface=interface) as sender:
        for packet in batch:
            sender.send(packet, group, port)


class _Relay(MulticastListener):
    """The listener of :func:`listen`: hands packets on until told to stop or ``limit``."""

    def __init__(
        self,
        handler: PacketCallback,
        limit: int | None,
        ip: str | IPAddress | Group,
        port: int | str,
        mtu: int,
        *,
        interface: InterfaceSpec | None,
        source: str | IPAddress | None,
    ) -> None:
        if limit is not None and limit < 1:
            raise OptionError(f"limit {limit} must be at least 1 packet (or None: no limit)")
        self.handler = handler
        self.limit = limit
        self.handled = 0
        super().__init__(None, ip, port, mtu, interface=interface, source=source)

    def handle_packet(self, packet: bytes, addr: Address) -> bool:
        self.handled += 1
        stop = self.handler(packet, addr)
        return bool(stop) or self.handled == self.limit


def _run_default_poller(listener: _Relay, done: Callable[[], bool], timeout: float | None) -> None:
    """Run the default poller until ``done()``; :class:`TimeoutError` after ``timeout`` s."""
    deadline = None if timeout is None else time.monotonic() + timeout
    finished = _defaultPoller.run_until(done, deadline=deadline)
    if not finished and deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError(
            f"nothing more from {listener.group} port {listener.port} in {timeout} s"
        )


class Packets(Closing):
    """The packets of ``listen()`` without a handler: an iterator of payloads (``bytes``).

    The group is joined from the start. ``next()`` returns the oldest packet received; when
    none is waiting it runs the default poller until one arrives (so calling ``poll()``
    first is allowed but not needed), raising :class:`TimeoutError` after ``timeout``
    seconds. Iteration ends after ``limit`` packets, or once closed and empty. At most
    :data:`LISTEN_BACKLOG` packets wait; older ones are dropped and counted in
    :attr:`dropped`.
    """

    def __init__(
        self,
        ip: str | IPAddress | Group = DEFAULT_GROUP,
        port: int | str = DEFAULT_PORT,
        mtu: int = DEFAULT_MTU,
        limit: int | None = None,
        *,
        timeout: float | None = None,
        interface: InterfaceSpec | None = None,
        source: str | IPAddress | None = None,
    ) -> None:
        self.timeout = timeout
        self.dropped = 0
        self._waiting: collections.deque[bytes] = collections.deque()
        self.listener = _Relay(self._keep, limit, ip, port, mtu, interface=interface, source=source)

    def _keep(self, packet: bytes, _addr: Address) -> bool:
        if len(self._waiting) == LISTEN_BACKLOG:
            self._waiting.popleft()
            self.dropped += 1
        self._waiting.append(packet)
        return False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> bytes:
        if not self._waiting and not self.listener.closed:
            _run_default_poller(
                self.listener, lambda: bool(self._waiting) or self.listener.closed, self.timeout
            )
        if not self._waiting:
            raise StopIteration
        return self._waiting.popleft()

    def close(self) -> None:
        """Leave the group; packets already received can still be read."""
        self.listener.close()


@overload
def listen(
    packet_handler: None = None,
    ip: str | IPAddress | Group = ...,
    port: int | str = ...,
    mtu: int = ...,
    limit: int | None = ...,
    *,
    timeout: float | None = ...,
    interface: InterfaceSpec | None = ...,
    source: str | IPAddress | None = ...,
) -> Packets: ...


@overload
def listen(
    packet_handler: PacketCallback,
    ip: str | IPAddress | Group = ...,
    port: int | str = ...,
    mtu: int = ...,
    limit: int | None = ...,
    *,
    timeout: float | None = ...,
    interface: InterfaceSpec | None = ...,
    source: str | IPAddress | None = ...,
) -> None: ...


def listen(
    packet_handler: PacketCallback | None = None,
    ip: str | IPAddress | Group = DEFAULT_GROUP,
    port: int | str = DEFAULT_PORT,
    mtu: int = DEFAULT_MTU,
    limit: int | None = None,
    *,
    timeout: float | None = None,
    interface: InterfaceSpec | None = None,
    source: str | IPAddress | None = None,
) -> Packets | None:
    """Listen to ``ip`` on ``port`` through the default poller.

    With ``packet_handler``, call ``packet_handler(packet, addr)`` for each packet while
    running the default poller (serving everything registered with it), and return when the
    handler returns a true value, after ``limit`` packets, or when ``polling`` is set to
    False; :class:`TimeoutError` after ``timeout`` seconds. Without a handler, join at once
    and return :class:`Packets`, an iterator of the payloads (``timeout`` applies to each
    ``next()``).
    """
    if packet_handler is None:
        return Packets(ip, port, mtu, limit, timeout=timeout, interface=interface, source=source)
    with _Relay(
        packet_handler, limit, ip, port, mtu, interface=interface, source=source
    ) as listener:
        _run_default_poller(listener, lambda: listener.closed, timeout)
    return None
