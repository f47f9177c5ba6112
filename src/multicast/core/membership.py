"""Group membership: the RFC 3678 requests, joining and leaving, and a table of what is joined.

Membership uses the protocol-independent options (``MCAST_JOIN_GROUP``,
``MCAST_JOIN_SOURCE_GROUP``) with an interface index, so any-source and source-specific
joins work the same way on IPv4 and IPv6.

A :class:`MembershipTable` is plain data, no socket: what a socket has joined (on which
interface index, under which interface name), what waits for a deleted interface to come
back, and the arrival filter that drops IPv6 datagrams of a group that arrived on an
interface it was not joined on. :func:`join_all` and :func:`rejoin` make the system calls
and tell the table; every receiving socket of the package (:class:`~multicast.core.Receiver`,
RECV, HEAR, the UDP peer) keeps one.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path

from multicast.core import constants
from multicast.core.addresses import (
    Group,
    GroupSpec,
    IPAddress,
    family_of,
    parse_address,
    parse_group,
)
from multicast.core.datagram import Datagram
from multicast.core.interfaces import InterfaceSpec, index_by_name, interface_index, name_by_index
from multicast.core.options import ip_level, require_linux, set_option
from multicast.exceptions import GroupError, SocketOptionError

__all__ = [
    "Membership",
    "MembershipTable",
    "apply_membership",
    "arrived_as_joined",
    "interfaces_by_group",
    "join_all",
    "join_group",
    "leave_group",
    "membership_for",
    "rejoin",
]

logger = logging.getLogger(__name__)


class _SockaddrStorage(ctypes.Structure):
    _fields_ = (
        ("family", ctypes.c_ushort),
        ("padding", ctypes.c_char * (128 - 2 - ctypes.sizeof(ctypes.c_ulong))),
        ("align", ctypes.c_ulong),
    )


class _GroupReq(ctypes.Structure):
    _fields_ = (("interface", ctypes.c_uint32), ("group", _SockaddrStorage))


class _GroupSourceReq(ctypes.Structure):
    _fields_ = (
        ("interface", ctypes.c_uint32),
        ("group", _SockaddrStorage),
        ("source", _SockaddrStorage),
    )


def _sockaddr(address: IPAddress) -> _SockaddrStorage:
    storage = _SockaddrStorage()
    if isinstance(address, IPv4Address):
        raw = struct.pack("=HH4s8x", socket.AF_INET, 0, address.packed)
    else:
        raw = struct.pack("=HHI16sI", socket.AF_INET6, 0, 0, address.packed, 0)
    ctypes.memmove(ctypes.addressof(storage), raw, len(raw))
    return storage


@dataclass(frozen=True, slots=True)
class Membership:
    """A group joined on one interface, optionally for one source only (SSM)."""

    group: Group
    interface: int = 0  # 0: the interface the routing table picks
    source: IPAddress | None = None

    def __str__(self) -> str:
        where = f" on interface {self.interface}" if self.interface else ""
        return f"({self.source}, {self.group}){where}" if self.source else f"{self.group}{where}"


def interfaces_by_group(memberships: Iterable[Membership]) -> dict[str, frozenset[int]]:
    """For each IPv6 group joined on specific interfaces only, the indexes of those interfaces.

    Linux matches an IPv6 socket's memberships by group alone: a group joined on ``eth1``
    is also delivered from ``eth0`` once any socket of the host joined it there. IPv4
    checks the interface itself, and a group joined anywhere (index 0) takes every arrival,
    so neither appears here.
    """
    anywhere: set[str] = set()
    joined: dict[str, set[int]] = {}
    for membership in memberships:
        if membership.group.family != socket.AF_INET6:
            continue
        key = membership.group.address.compressed
        if membership.interface:
            joined.setdefault(key, set()).add(membership.interface)
        else:
            anywhere.add(key)
    return {group: frozenset(indexes) for group, indexes in joined.items() if group not in anywhere}


def arrived_as_joined(datagram: Datagram, joined_on: dict[str, frozenset[int]]) -> bool:
    """False for a datagram to a group that arrived on an interface the group was not joined on."""
    allowed = joined_on.get(datagram.group) if datagram.group else None
    return allowed is None or datagram.interface in allowed


class MembershipTable:
    """What one socket has joined, what waits for its interface, and the arrival filter.

    No socket and no system call: the functions that join and leave (:func:`join_all`,
    :func:`rejoin`, :meth:`multicast.core.Receiver.leave`) tell the table what the kernel
    now holds. An interface name is kept for each membership made on a named interface,
    so that one deleted and made again (under a new index) can be found by its name.
    """

    def __init__(self) -> None:
        self.joined: list[Membership] = []
        # Memberships an interface took away when it was deleted, until they are joined again.
        self.waiting: list[Membership] = []
        self.wrong_interface = 0  # datagrams dropped for arriving where their group was not joined
        # Set when the reading socket takes every group of its port (its memberships are
        # spread over other sockets, see multicast.core.spread): keep only what was joined.
        self.only_joined = False
        self.not_joined = 0  # datagrams dropped then, of a group or source not joined
        self._names: dict[Membership, str] = {}
        self._slots: dict[Membership, int] = {}  # which socket holds it, where not the first
        self._held: set[Membership] = set()  # the joined ones, for a quick look-up
        # The arrival filter, made again from `joined` when first needed after a change (None):
        # joining n groups then costs O(n), not O(n^2).
        self._filter: dict[str, frozenset[int]] | None = {}
        self._channels: dict[str, frozenset[str] | None] | None = None

    def name_of(self, membership: Membership) -> str | None:
        """The name of the interface ``membership`` was made on; None where the kernel chose."""
        return self._names.get(membership)

    def holds(self, membership: Membership) -> bool:
        """Whether ``membership`` is joined (not waiting)."""
        return membership in self._held

    def slot_of(self, membership: Membership) -> int:
        """Which of the receiver's sockets holds ``membership``: 0 the reading one, the
        others those it spread memberships over (:mod:`multicast.core.spread`)."""
        return self._slots.get(membership, 0)

    def add(self, membership: Membership, name: str | None = None, slot: int = 0) -> None:
        """Note a membership the kernel now holds, on the interface called ``name``, on the
        receiver's socket number ``slot``."""
        self.joined.append(membership)
        self._held.add(membership)
        if name is not None:
            self._names[membership] = name
        if slot:
            self._slots[membership] = slot
        self._refilter()

    def remove(self, membership: Membership) -> None:
        """Forget a membership that was left, joined or waiting."""
        if membership in self.waiting:
            self.waiting.remove(membership)
        else:
            self.joined.remove(membership)
            self._held.discard(membership)
            self._refilter()
        self._names.pop(membership, None)
        self._slots.pop(membership, None)

    def waiting_as(self, membership: Membership, name: str | None) -> Membership | None:
        """The waiting membership that ``membership`` (on interface ``name``) stands for: the
        same group and source on an interface of the same name (which may be back under a new
        index), or both where the kernel chose."""
        for waiting in self.waiting:
            same = (waiting.group, waiting.source, self._names.get(waiting)) == (
                membership.group,
                membership.source,
                name,
            )
            if same and (name is not None or waiting.interface == membership.interface == 0):
                return waiting
        return None

    def displaced(
        self, removed: Iterable[int], index_of: Callable[[str], int | None]
    ) -> list[Membership]:
        """Joined memberships whose interface is gone: its index is among ``removed``, or its
        name now has no index or another one (``index_of`` asks)."""
        gone = set(removed)
        return [
            membership
            for membership in self.joined
            if membership.interface in gone
            or (
                (name := self._names.get(membership)) is not None
                and index_of(name) != membership.interface
            )
        ]

    def routed_groups(self) -> set[Group]:
        """The groups joined where the routing table chose the interface."""
        return {m.group for m in self.joined if m.interface == 0}

    def suspend(self, memberships: Iterable[Membership]) -> None:
        """Move joined memberships to :attr:`waiting` (the kernel no longer holds them)."""
        for membership in memberships:
            self.joined.remove(membership)
            self._held.discard(membership)
            self.waiting.append(membership)
        self._refilter()

    def suspend_routed(self, group: Group, slot: int = 0) -> None:
        """Move the memberships of ``group`` made where the routing table chose, on socket
        number ``slot``, to waiting."""
        self.suspend(
            [
                m
                for m in self.joined
                if m.group == group and m.interface == 0 and self.slot_of(m) == slot
            ]
        )

    def due(self, index_of: Callable[[str], int | None]) -> list[tuple[Membership, Membership]]:
        """Each waiting membership that can be joined again, with the membership to join: on
        the interface of its name where ``index_of`` finds one, else where the kernel chooses."""
        ready: list[tuple[Membership, Membership]] = []
        for membership in self.waiting:
            name = self._names.get(membership)
            index = index_of(name) if name is not None else 0
            if index is not None:
                ready.append((membership, replace(membership, interface=index)))
        return ready

    def restore(self, waiting: Membership, fresh: Membership) -> None:
        """Note that ``waiting`` was joined again, as ``fresh``."""
        self.waiting.remove(waiting)
        name = self._names.pop(waiting, None)
        self.add(fresh, name, self._slots.pop(waiting, 0))

    @property
    def _allowed(self) -> dict[str, frozenset[int]]:
        if self._filter is None:
            self._filter = interfaces_by_group(self.joined)
        return self._filter

    def accepts(self, datagram: Datagram) -> bool:
        """Whether ``datagram`` arrived where its group was joined (counted when not)."""
        return bool(self.keep([datagram]))

    def keep(self, datagrams: list[Datagram]) -> list[Datagram]:
        """The ``datagrams`` that arrived where their group was joined (the rest counted)."""
        if not datagrams or (
            self._filter is not None and not self._filter and not self.only_joined
        ):
            return datagrams  # nothing to drop
        if self.only_joined:
            channels = self._joined_channels()
            kept = [d for d in datagrams if _joined(d, channels)]
            self.not_joined += len(datagrams) - len(kept)
            datagrams = kept
        allowed = self._allowed
        if not allowed:
            return datagrams
        kept = [d for d in datagrams if arrived_as_joined(d, allowed)]
        self.wrong_interface += len(datagrams) - len(kept)
        return kept

    def _joined_channels(self) -> dict[str, frozenset[str] | None]:
        """Per group joined, the sources joined (None: any source)."""
        if self._channels is None:
            sources: dict[str, set[str] | None] = {}
            for membership in self.joined:
                key = membership.group.address.compressed
                if membership.source is None:
                    sources[key] = None
                elif (held := sources.setdefault(key, set())) is not None:
                    held.add(membership.source.compressed)
            self._channels = {
                key: None if held is None else frozenset(held) for key, held in sources.items()
            }
        return self._channels

    def _refilter(self) -> None:
        self._filter = None
        self._channels = None


def _joined(datagram: Datagram, channels: dict[str, frozenset[str] | None]) -> bool:
    """Whether ``datagram`` belongs to a group, and source, among ``channels``."""
    if datagram.group not in channels:
        return False
    sources = channels[datagram.group]
    return sources is None or datagram.source[0] in sources


def membership_for(
    family: socket.AddressFamily,
    group: Group,
    interface: InterfaceSpec | None,
    source: str | IPAddress | None,
) -> Membership:
    """The membership a socket of ``family`` makes for these arguments (the interface of a
    ``%zone`` group when ``interface`` is None); checks that the families agree."""
    if group.family != family:
        raise GroupError(f"group {group} is not of this socket's address family")
    index = interface_index(interface if interface is not None else group.interface)
    if source is None:
        return Membership(group, index)
    source_address = parse_address(source, what="source")
    if family_of(source_address) != family:
        raise GroupError(f"source {source_address} and group {group} are of different families")
    return Membership(group, index, source_address)


def apply_membership(sock: socket.socket, membership: Membership, *, join: bool) -> bool:
    """Join (or leave) ``membership`` on ``sock``: one ``setsockopt``.

    Joining what the socket has already joined is no error: it is logged (debug) and False
    returned; otherwise True.
    """
    require_linux("group membership through MCAST_JOIN_GROUP")
    request: ctypes.Structure
    if membership.source is None:
        option = constants.MCAST_JOIN_GROUP if join else constants.MCAST_LEAVE_GROUP
        request = _GroupReq(membership.interface, _sockaddr(membership.group.address))
    else:
        option = constants.MCAST_JOIN_SOURCE_GROUP if join else constants.MCAST_LEAVE_SOURCE_GROUP
        request = _GroupSourceReq(
            membership.interface,
            _sockaddr(membership.group.address),
            _sockaddr(membership.source),
        )
    verb = "join" if join else "leave"
    try:
        set_option(sock, ip_level(sock), option, bytes(request), f"{verb} {membership}")
    except SocketOptionError as error:
        if join and error.errno == errno.EADDRINUSE:
            logger.debug("%s is already joined on this socket", membership)
            return False
        hint = _join_hint(error.errno, sock.family, membership) if join else None
        if hint is None:
            raise
        raise SocketOptionError(error.errno, f"{error.strerror}; {hint}") from error
    return True


# The limits a join can run into, by family and kind: (the sysctl, what it counts).
_LIMITS = {
    (socket.AF_INET, False): ("net.ipv4.igmp_max_memberships", "groups per socket"),
    (socket.AF_INET, True): ("net.ipv4.igmp_max_msf", "sources per group and socket"),
    (socket.AF_INET6, True): ("net.ipv6.mld_max_msf", "sources per group and socket"),
}


def _sysctl(name: str) -> str:
    """`` (now N)`` with the value of sysctl ``name`` where it can be read, else nothing."""
    try:
        return f" (now {Path('/proc/sys', *name.split('.')).read_text().strip()})"
    except OSError:
        return ""


def _join_hint(
    code: int | None, family: socket.AddressFamily, membership: Membership
) -> str | None:
    """What to do about a refused join, where the kernel's errno says more than its text."""
    if code == errno.ENOBUFS and (family, membership.source is not None) in _LIMITS:
        name, counted = _LIMITS[family, membership.source is not None]
        return f"the kernel's limit of {counted} is reached: {name}{_sysctl(name)}"
    if code == errno.ENOMEM:
        name = "net.core.optmem_max"
        return (
            f"the socket's option memory is used up (its groups and sources): {name}{_sysctl(name)}"
        )
    if code in (errno.ENODEV, errno.ENETUNREACH) and not membership.interface:
        return (
            f"no route for {membership.group}: name the interface to join on "
            "(--iface on the command line), or run `multicast doctor`"
        )
    return None


def join_group(
    sock: socket.socket,
    group: GroupSpec,
    interface: InterfaceSpec | None = None,
    source: str | IPAddress | None = None,
) -> Membership:
    """Join ``group`` on ``interface`` (any source, or only ``source`` for SSM)."""
    return _change(sock, group, interface, source, join=True)


def leave_group(
    sock: socket.socket,
    group: GroupSpec,
    interface: InterfaceSpec | None = None,
    source: str | IPAddress | None = None,
) -> Membership:
    """Leave a membership made by :func:`join_group` with the same arguments."""
    return _change(sock, group, interface, source, join=False)


def _change(
    sock: socket.socket,
    group: GroupSpec,
    interface: InterfaceSpec | None,
    source: str | IPAddress | None,
    *,
    join: bool,
) -> Membership:
    membership = membership_for(sock.family, parse_group(group), interface, source)
    apply_membership(sock, membership, join=join)
    return membership


def join_all(
    sock: socket.socket,
    table: MembershipTable,
    groups: Iterable[Group],
    interface: InterfaceSpec | None = None,
    sources: Iterable[str | IPAddress | None] = (),
) -> list[Membership]:
    """Join every group (parsed already) on ``interface``, from each of ``sources`` (none:
    any source), and note each membership in ``table``; the memberships, in order."""
    wanted = list(sources) or [None]
    joined = []
    for group in groups:
        for source in wanted:
            membership = membership_for(sock.family, group, interface, source)
            if apply_membership(sock, membership, join=True) or membership not in table.joined:
                index = membership.interface
                table.add(membership, name_by_index(sock, index) if index else None)
            joined.append(membership)
    return joined


def rejoin(
    sock: socket.socket | Sequence[socket.socket],
    table: MembershipTable,
    removed: Iterable[int] = (),
) -> list[Membership]:
    """Join again what deleted interfaces took away, where they are back; the new joins.

    ``sock`` is the socket holding the memberships, or the receiver's sockets in the order
    of the table's slots. ``removed`` are the indexes of interfaces deleted since the last
    call (what an :class:`~multicast.core.watch.InterfaceWatcher` reports). Their memberships move to the
    table's waiting list, as does any membership whose interface name has vanished or now
    belongs to another index, deleted or not. Waiting memberships are joined again on the
    interface of the same name, or, where the routing table chose the interface, wherever it
    now routes the group; those that cannot be yet keep waiting for the next call. An
    interface that only went down and up needs nothing: the kernel keeps memberships.
    """
    socks = [sock] if isinstance(sock, socket.socket) else list(sock)

    def holder(membership: Membership) -> socket.socket:
        return socks[table.slot_of(membership)]

    gone = {index for index in removed if index > 0}

    def index_of(name: str) -> int | None:
        return index_by_name(socks[0], name)

    displaced = table.displaced(gone, index_of)
    for membership in displaced:
        _quietly_leave(holder(membership), membership.group, membership.interface)
    table.suspend(displaced)
    for index in gone:
        # The kernel joined these where the group was routed when they were made: leaving
        # the deleted interface succeeds only for a group that was joined there.
        routed = {(m.group, table.slot_of(m)): m for m in table.joined if m.interface == 0}
        for (group, _), membership in routed.items():
            if _quietly_leave(holder(membership), group, index):
                table.suspend_routed(group, table.slot_of(membership))
    joined: list[Membership] = []
    for waiting, fresh in table.due(index_of):
        try:
            apply_membership(holder(waiting), fresh, join=True)  # joined already: fine
        except SocketOptionError:  # e.g. no route to the group yet
            continue
        table.restore(waiting, fresh)
        joined.append(fresh)
    return joined


def _quietly_leave(sock: socket.socket, group: Group, index: int) -> bool:
    """Drop every membership of ``group`` on interface ``index`` from the kernel, even if the
    interface is gone; False if there was none."""
    try:
        apply_membership(sock, Membership(group, index), join=False)
    except SocketOptionError:
        return False
    return True
