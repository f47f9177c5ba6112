"""The usual configurations: the one receiving recipe, :class:`Receiver` and :class:`Sender`.

:func:`configure_receiving` is how every receiving socket of the package is made ready
(:class:`Receiver`, RECV's ``joinstep``, HEAR's server, the UDP peer): the same options in
the same order, the bind, and a :class:`~multicast.core.membership.MembershipTable` whose
filter each of them applies to what it reads.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Self, TypedDict, Unpack

from multicast.core import constants
from multicast.core.addresses import (
    Channel,
    Group,
    GroupSpec,
    IPAddress,
    common_family,
    family_of,
    parse_address,
    parse_group,
    parse_port,
    parse_ttl,
    wildcard_host,
)
from multicast.core.clock import deadline as deadline_of
from multicast.core.clock import poll_milliseconds
from multicast.core.datagram import Datagram, Payload, SocketAddress
from multicast.core.hostscope import release
from multicast.core.interfaces import (
    Interface,
    InterfaceSpec,
    multicast_interfaces,
    name_by_index,
)
from multicast.core.io import (
    destination,
    receive_batch,
    receive_datagram,
    receive_ready,
    send_many_to,
    send_to,
)
from multicast.core.membership import (
    Membership,
    MembershipTable,
    membership_for,
    rejoin,
)
from multicast.core.options import (
    bind_socket,
    enable_receive_metadata,
    new_socket,
    request_receive_buffer,
    set_busy_poll,
    set_isolation,
    set_loopback,
    set_reuse,
    set_send_interface,
    set_ttl,
)
from multicast.core.spread import Spread
from multicast.core.watch import InterfaceWatcher
from multicast.exceptions import AddressError, ClosedError, OptionError

__all__ = [
    "Closing",
    "Receiver",
    "ReceiverOptions",
    "Sender",
    "SenderOptions",
    "configure_receiving",
    "follow_interfaces",
    "open_receiver",
]

_DESTINATIONS_KEPT = 64  # resolved destinations a sender remembers before starting afresh


class Closing(ABC):
    """Something released by :meth:`close`; ``with`` and ``async with`` close it at the end."""

    @abstractmethod
    def close(self) -> None:
        """Release what this holds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


def configure_receiving(
    sock: socket.socket,
    address: str | IPAddress | None,
    port: int,
    *,
    reuse: bool = True,
    reuse_port: bool = False,
    isolate: bool = True,
    metadata: bool = True,
    receive_buffer: int | None = None,
) -> MembershipTable:
    """Make ``sock`` ready to receive multicast, and return its (empty) membership table.

    In this order: share the port with other receivers of the host (``reuse``:
    ``SO_REUSEADDR``; ``reuse_port`` adds ``SO_REUSEPORT``), deliver only the groups the
    socket joins (``isolate``), report each datagram's destination, arrival interface, TTL
    and the kernel's drop count (``metadata``), ask for a receive buffer of
    ``receive_buffer`` bytes, and bind ``address`` (None: every address) and ``port``.

    Join with :func:`~multicast.core.membership.join_all` into the table returned, and pass
    what is read through its :meth:`~multicast.core.membership.MembershipTable.keep`.
    """
    if reuse or reuse_port:
        set_reuse(sock, port=reuse_port)
    if isolate:
        set_isolation(sock)
    if metadata:
        enable_receive_metadata(sock)
    if receive_buffer:
        request_receive_buffer(sock, receive_buffer)
    bind_socket(sock, address, port)
    return MembershipTable()


def follow_interfaces(
    sock: socket.socket | Sequence[socket.socket],
    table: MembershipTable,
    watcher: InterfaceWatcher,
) -> list[Membership]:
    """Act on what ``watcher`` reported since the last call: join again on ``sock`` (or the
    sockets of the table's slots) what deleted interfaces took away, where they are back (see
    :func:`~multicast.core.membership.rejoin`); the new joins. Every receiver that lives
    through interface changes (:class:`Receiver`, HEAR's server) does it this way."""
    changes = watcher.changes()
    return rejoin(sock, table, changes.removed) if changes else []


class _Endpoint(Closing):
    """Shared life cycle of :class:`Receiver` and :class:`Sender`."""

    sock: socket.socket

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def family(self) -> socket.AddressFamily:
        return self.sock.family

    @property
    def closed(self) -> bool:
        return self.sock.fileno() < 0

    def close(self) -> None:
        self.sock.close()
        release(self.sock)  # the guards that kept its TTL-0 datagrams on this host


class Receiver(_Endpoint):
    """A socket bound to ``port`` that joins groups and reads datagrams with their metadata.

    By default it is isolated (it never delivers a group it did not join), shares the port
    with other receivers on the host (``SO_REUSEADDR``) and reads whole datagrams. IPv6
    datagrams of a group that arrive on an interface the group was not joined on are
    dropped and counted (:attr:`wrong_interface`).

    Deleting an interface takes its memberships away; :meth:`rejoin` brings them back once
    an interface of the same name exists again. After :meth:`watch_interfaces` the receiver
    does that by itself, on every call that receives.

    It joins any number of groups: past what one socket may hold (see
    :mod:`multicast.core.spread`) further memberships go to extra sockets (:attr:`holders`)
    that only hold them, while this socket reads them all and keeps only what was joined.
    """

    def __init__(
        self,
        port: int,
        *,
        family: socket.AddressFamily = socket.AF_INET,
        bind_address: str | IPAddress | None = None,
        reuse_port: bool = False,
        isolate: bool = True,
        receive_buffer: int | None = None,
        max_size: int = constants.MAX_DATAGRAM,
        blocking: bool = True,
    ) -> None:
        # Every value is checked before the socket exists: a bad one leaves nothing open.
        wildcard_host(family)  # IPv4 or IPv6
        parse_port(port, allow_zero=True)
        _check_max_size(max_size)
        self.sock = new_socket(family)
        try:
            self.table = configure_receiving(
                self.sock,
                bind_address,
                port,
                reuse_port=reuse_port,
                isolate=isolate,
                receive_buffer=receive_buffer,
            )
            self.sock.setblocking(blocking)
        except BaseException:
            self.sock.close()
            raise
        self.receive_buffer: int = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.buffer = bytearray(max_size)
        self.watcher: InterfaceWatcher | None = None
        self.drops = 0
        self.spread = Spread(self.sock, self.table, isolated=isolate)
        self.busy_poll = 0.0
        """Seconds :meth:`receive_batch` busy-polls before it sleeps (0: it sleeps at once):
        the latency mode, see :meth:`set_busy_poll`."""
        self._poller: select.poll | None = None  # the socket and the watcher, once watching

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    @property
    def memberships(self) -> list[Membership]:
        """What the kernel holds for this socket now."""
        return self.table.joined

    @property
    def waiting(self) -> list[Membership]:
        """Memberships a deleted interface took away, until :meth:`rejoin` restores them."""
        return self.table.waiting

    @property
    def wrong_interface(self) -> int:
        """IPv6 datagrams dropped for arriving on an interface their group was not joined on."""
        return self.table.wrong_interface

    @property
    def not_joined(self) -> int:
        """Datagrams dropped for a group or source not joined (only once memberships are
        spread over several sockets: the reading one then takes every group of its port)."""
        return self.table.not_joined

    @property
    def holders(self) -> list[socket.socket]:
        """The sockets that only hold memberships this one has no room for."""
        return self.spread.holders

    @property
    def sockets(self) -> list[socket.socket]:
        """The reading socket, then those holding the memberships it has no room for."""
        return self.spread.sockets

    def join(
        self,
        group: GroupSpec,
        interface: InterfaceSpec | None = None,
        source: str | IPAddress | None = None,
    ) -> Membership:
        return self.join_all([parse_group(group)], interface, [source])[0]

    def join_all(
        self,
        groups: Iterable[GroupSpec | Channel],
        interface: InterfaceSpec | None = None,
        sources: Iterable[str | IPAddress | None] = (),
        *,
        before_join: Callable[[Membership], None] | None = None,
    ) -> list[Membership]:
        """Join each group on ``interface``, from each of ``sources`` (none: any source); a
        :class:`Channel` with a source is joined from that source only. The memberships.

        ``before_join`` is called with each membership just before it is joined (a tool
        times the joins with it)."""
        wanted = list(sources) or [None]
        joined = []
        for item in groups:
            group = item.group if isinstance(item, Channel) else parse_group(item)
            chosen = [item.source] if isinstance(item, Channel) and item.source else wanted
            for source in chosen:
                membership = membership_for(self.sock.family, group, interface, source)
                if before_join is not None:
                    before_join(membership)
                self.spread.hold(membership)
                joined.append(membership)
        return joined

    def leave(
        self,
        group: GroupSpec,
        interface: InterfaceSpec | None = None,
        source: str | IPAddress | None = None,
    ) -> Membership:
        membership = membership_for(self.sock.family, parse_group(group), interface, source)
        index = membership.interface
        waiting = self.table.waiting_as(
            membership, name_by_index(self.sock, index) if index else None
        )
        if waiting is not None:  # its interface went away: the kernel holds nothing
            self.table.remove(waiting)
            return waiting
        self.spread.leave(membership)
        return membership

    def rejoin(self, removed: Iterable[int] = ()) -> list[Membership]:
        """Join again what deleted interfaces took away, where they are back; the new joins.

        See :func:`multicast.core.membership.rejoin`: ``removed`` are the indexes of the
        interfaces deleted since the last call.
        """
        return rejoin(self.sockets, self.table, removed)

    def watch_interfaces(self) -> InterfaceWatcher:
        """From now on, act on interface changes before every receive: rejoin by itself.

        The watcher listens in the network namespace of the calling thread, which must be
        the socket's (call it where the receiver was made). It closes with the receiver.
        """
        if self.watcher is None:
            self.watcher = InterfaceWatcher()
            self._poller = select.poll()
            self._poller.register(self.sock, select.POLLIN)
            self._poller.register(self.watcher, select.POLLIN)
        return self.watcher

    def set_busy_poll(self, seconds: float) -> bool:
        """The latency mode: :meth:`receive_batch` busy-polls ``seconds`` before sleeping, and
        the kernel is asked to busy-poll the device too (``SO_BUSY_POLL``, see
        :func:`~multicast.core.options.set_busy_poll`; whether it agreed is returned). A
        datagram that comes within that time is read without the delay of a wake-up, at the
        cost of a CPU kept busy meanwhile. 0 turns it off (the default)."""
        if not 0 <= seconds <= 1:
            raise ValueError(f"busy-poll time {seconds} s is outside 0-1 s")
        self.busy_poll = seconds
        return set_busy_poll(self.sock, round(seconds * 1e6))

    def follow_interfaces(self) -> list[Membership]:
        """Act on what the watcher reported since the last call (:meth:`rejoin`); the new joins."""
        if self.watcher is None:
            return []
        return follow_interfaces(self.sockets, self.table, self.watcher)

    def _wait(self, deadline: float | None) -> bool:
        """Wait for a datagram until ``deadline`` (``time.monotonic``; None: no limit), following
        interface changes as they are reported; True if one is queued. The socket's timeout
        is untouched. One ``poll`` per wake-up watches both the socket and the watcher."""
        poller = self._poller
        if poller is None:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
        fd = self.sock.fileno()
        if fd < 0:  # closed: the poller would watch a number that is no longer this socket
            raise ClosedError(errno.EBADF, "cannot wait on a closed receiver")
        while True:
            ready = poller.poll(poll_milliseconds(deadline))
            if len(ready) == 1 and ready[0][0] == fd:  # the usual wake-up: a datagram
                return True
            if ready:  # the watcher has news
                self.follow_interfaces()
                if any(found == fd for found, _ in ready):
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until a datagram is queued (``timeout`` seconds at most; None: no limit),
        following interface changes meanwhile; whether one is. Nothing is read: a loop that
        must not be interrupted between reading and using what it read waits here first,
        then takes what is queued with :meth:`receive_ready`."""
        return self._wait(deadline_of(timeout))

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        self.spread.close()
        super().close()

    def _accepted(self, datagram: Datagram) -> bool:
        self.drops = max(self.drops, datagram.drops)
        return self.table.accepts(datagram)

    def receive(self, timeout: float | None = None) -> Datagram:
        """The next datagram; raises :class:`TimeoutError` after ``timeout`` seconds.

        A wait with a ``timeout`` polls: the socket's own timeout (see
        :meth:`socket.socket.settimeout`) is never changed.
        """
        if timeout is None and self.watcher is None:  # one blocking call per datagram
            while True:
                datagram = receive_datagram(self.sock, self.buffer)
                if self._accepted(datagram):
                    return datagram
        deadline = deadline_of(timeout)
        while True:
            if not self._wait(deadline):
                raise TimeoutError("timed out")
            try:
                datagram = receive_datagram(self.sock, self.buffer, constants.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            if self._accepted(datagram):
                return datagram

    def receive_ready(self, limit: int = 1024) -> list[Datagram]:
        """Every datagram already queued (at most ``limit``), without blocking."""
        self.follow_interfaces()
        return self._taken(receive_ready(self.sock, self.buffer, limit))

    def receive_batch(self, limit: int = 1024, timeout: float | None = None) -> list[Datagram]:
        """Wait for a datagram (``timeout`` seconds at most), then take every one queued.

        See :func:`~multicast.core.io.receive_batch`; an empty list means the timeout passed.
        A receiver that watches its interfaces waits in ``poll()`` on its socket and its
        watcher, then reads.
        """
        if self.watcher is None:  # the wait and the read in one call (one per wake-up)
            ready = receive_batch(self.sock, self.buffer, limit, timeout, spin=self.busy_poll)
        else:
            ready = self._watched_batch(limit, timeout)
        return self._taken(ready)

    def _watched_batch(self, limit: int, timeout: float | None) -> list[Datagram]:
        queued = False
        if self.busy_poll:  # interface news first (a poll that does not wait), then spin
            queued = self._wait(time.monotonic())
            spin = self.busy_poll if timeout is None else min(self.busy_poll, timeout)
            if not queued and (spun := receive_ready(self.sock, self.buffer, limit, spin=spin)):
                return spun
        if not queued and not self._wait(deadline_of(timeout)):
            return []
        return receive_ready(self.sock, self.buffer, limit)

    def _taken(self, ready: list[Datagram]) -> list[Datagram]:
        """Note the kernel's drop count; keep what arrived where its group was joined."""
        if ready and ready[-1].drops > self.drops:  # max(), a builtin call, costs more
            self.drops = ready[-1].drops
        return self.table.keep(ready)


def _check_max_size(max_size: object) -> None:
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
        raise OptionError(f"max_size {max_size!r} must be a whole number of bytes, 0 or more")


class ReceiverOptions(TypedDict, total=False):
    """How a :class:`Receiver` is made, beyond its port and family: its keyword arguments."""

    bind_address: str | IPAddress | None
    reuse_port: bool
    isolate: bool
    receive_buffer: int | None
    max_size: int
    blocking: bool


class SenderOptions(TypedDict, total=False):
    """How a :class:`Sender` is made, beyond its family: its keyword arguments."""

    ttl: int
    interface: InterfaceSpec | None
    loopback: bool
    source: str | IPAddress | None
    source_port: int


class Sender(_Endpoint):
    """A socket that sends multicast datagrams with a set TTL, interface and loopback.

    A destination (an IPv6 group's ``%zone`` too) is resolved the first time it is sent to.
    """

    def __init__(
        self,
        family: socket.AddressFamily = socket.AF_INET,
        *,
        ttl: int = 1,
        interface: InterfaceSpec | None = None,
        loopback: bool = True,
        source: str | IPAddress | None = None,
        source_port: int = 0,
    ) -> None:
        # Every value is checked before the socket exists: a bad one leaves nothing open.
        wildcard_host(family)  # IPv4 or IPv6
        parse_ttl(ttl)
        parse_port(source_port, allow_zero=True)
        if source is not None and family_of(parse_address(source, what="source")) != family:
            kind = "IPv4" if family == socket.AF_INET else "IPv6"
            raise AddressError(f"source {source!s} is not {kind}, as the groups are")
        self.sock = new_socket(family)
        try:
            set_ttl(self.sock, ttl)
            set_loopback(self.sock, loopback)
            if interface is not None:
                set_send_interface(self.sock, interface)
            if source is not None or source_port:
                bind_socket(self.sock, source, source_port)
        except BaseException:
            self.sock.close()
            raise
        self._destinations: dict[tuple[str | IPAddress | Group, int], SocketAddress] = {}

    def destination(self, group: str | IPAddress | Group, port: int) -> SocketAddress:
        """The ``sendto`` address of ``group`` and ``port``, resolved once and remembered.

        ``group`` must be a multicast group (:class:`~multicast.exceptions.GroupError`
        otherwise, never a DNS lookup) and ``port`` 1-65535.
        """
        key = (group, port)
        try:
            found = self._destinations.get(key)
        except TypeError:  # unhashable: no group nor port; parse_group or parse_port says why
            found = None
        if found is None:
            checked = parse_group(group)
            if len(self._destinations) >= _DESTINATIONS_KEPT:
                self._destinations.clear()
            found = self._destinations[key] = destination(self.sock, checked, port)
        return found

    def send(self, payload: Payload, group: str | IPAddress | Group, port: int) -> int:
        """Send ``payload`` to ``group`` and ``port``; returns the bytes sent."""
        return send_to(self.sock, payload, self.destination(group, port))

    def send_many(
        self, payloads: Iterable[Payload], group: str | IPAddress | Group, port: int
    ) -> int:
        """Send each payload as one datagram (batched on Linux); returns how many were sent.

        See :func:`~multicast.core.io.send_many_to`.
        """
        return send_many_to(self.sock, payloads, self.destination(group, port))


def open_receiver(
    groups: Sequence[GroupSpec | Channel] | GroupSpec | Channel,
    port: int,
    *,
    interfaces: Sequence[InterfaceSpec] | InterfaceSpec | None = None,
    sources: Sequence[str | IPAddress | None] = (),
    every_interface: bool = False,
    watch_interfaces: bool = False,
    before_join: Callable[[Membership], None] | None = None,
    **options: Unpack[ReceiverOptions],
) -> Receiver:
    """A :class:`Receiver` on ``port`` that joined every group on every interface given.

    ``interfaces`` None lets the routing table pick; ``every_interface`` joins on every
    multicast-capable interface with an address of the groups' family. With ``sources`` the
    joins are source-specific, one per (source, group); a :class:`Channel` with a source
    is joined from that source only. Any number of groups: see :meth:`Receiver.join_all`.
    With ``watch_interfaces`` the receiver rejoins by itself after an interface it joined
    on is deleted and made again (see :meth:`Receiver.watch_interfaces`). ``before_join`` is
    called with each membership just before it is joined. The other ``options`` are the
    receiver's (:class:`ReceiverOptions`). One group may be given as it is, without a list.
    """
    listed: Sequence[GroupSpec | Channel]
    if isinstance(groups, str | IPv4Address | IPv6Address | Group | Channel):
        listed = [groups]
    else:
        listed = groups
    parsed = [item if isinstance(item, Channel) else Channel(parse_group(item)) for item in listed]
    family = common_family([channel.group for channel in parsed])
    where: list[InterfaceSpec | None]
    if every_interface:
        where = list(multicast_interfaces(family))
    elif interfaces is None:
        where = [None]
    elif isinstance(interfaces, str | int | Interface) or not isinstance(interfaces, Sequence):
        where = [interfaces]
    else:
        where = list(interfaces)
    receiver = Receiver(port, family=family, **options)
    try:
        if watch_interfaces:  # before joining: no change may slip between the two
            receiver.watch_interfaces()
        for channel in parsed:
            for interface in where:
                receiver.join_all([channel], interface, sources, before_join=before_join)
    except BaseException:
        receiver.close()
        raise
    return receiver
