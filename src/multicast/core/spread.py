"""Spreading one receiver's memberships over several sockets, within the kernel's limits.

Linux caps what one socket may join: ``net.ipv4.igmp_max_memberships`` groups (20 by
default) and ``net.ipv4.igmp_max_msf`` (IPv6: ``net.ipv6.mld_max_msf``) sources per group;
both families also run out of option memory (``net.core.optmem_max``). A receiver that joins
more keeps one socket that reads and extra sockets that only hold memberships: the reading
socket then takes every group joined on the host for its port, and the receiver's
membership table keeps only the channels it joined (see
:attr:`~multicast.core.membership.MembershipTable.only_joined`). Each datagram still tells
its group (``IP_PKTINFO``).

:class:`SocketLimits` reads the limits (the only I/O here); :class:`Slots` is the plain
bookkeeping of which socket (slot 0: the reading one) holds which membership; :class:`Spread`
makes the joins, the leaves and the extra sockets of one receiver.

>>> slots = Slots(SocketLimits(groups=2, sources=None))
>>> from multicast.core.addresses import parse_group
>>> from multicast.core.membership import Membership
>>> [slots.place(Membership(parse_group(f"239.1.1.{n}"))) for n in range(5)]
[0, 0, 1, 1, 2]
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path

from multicast.core.interfaces import name_by_index
from multicast.core.membership import Membership, MembershipTable, apply_membership
from multicast.core.options import new_socket, set_isolation
from multicast.exceptions import SocketOptionError

__all__ = ["DEFAULT_MAX_SOURCES", "Slots", "SocketLimits", "Spread", "read_sysctl"]

DEFAULT_MAX_SOURCES = 10  # the kernel's igmp_max_msf default, used where it cannot be read
# A join refused for these means the socket is full (its count or its option memory): the
# membership goes to another socket.
_SOCKET_FULL = frozenset({errno.ENOBUFS, errno.ENOMEM})


def read_sysctl(name: str) -> int | None:
    """The whole-number value of sysctl ``name`` (``net.ipv4.igmp_max_memberships``) in this
    thread's network namespace; None where it cannot be read."""
    try:
        text = Path("/proc/thread-self/sys", *name.split(".")).read_text()
    except OSError:
        try:
            text = Path("/proc/sys", *name.split(".")).read_text()
        except OSError:
            return None
    text = text.strip()
    return int(text) if text.isdecimal() else None


@dataclass(frozen=True, slots=True)
class SocketLimits:
    """What one socket may join: distinct (group, interface) memberships, and sources per
    membership; None where the kernel sets no count (it may still run out of memory)."""

    groups: int | None
    sources: int | None

    @classmethod
    def of(cls, family: socket.AddressFamily) -> SocketLimits:
        """The limits of this network namespace for sockets of ``family``."""
        if family == socket.AF_INET:
            groups = read_sysctl("net.ipv4.igmp_max_memberships")
            sources = read_sysctl("net.ipv4.igmp_max_msf")
            return cls(groups, DEFAULT_MAX_SOURCES if sources is None else sources)
        return cls(None, read_sysctl("net.ipv6.mld_max_msf"))


_Key = tuple[object, int]  # (group address, interface index): one kernel membership record
_ANY_SOURCE = -1  # held for an any-source membership: no source may be added to it


class Slots:
    """Room left on each socket: which one should hold the next membership.

    A socket's room is :class:`SocketLimits`; one the kernel refused (:meth:`full`) takes
    nothing more. Pure: the receiver makes the socket of a new slot, and its membership
    table remembers which slot holds each membership.
    """

    def __init__(self, limits: SocketLimits) -> None:
        self.limits = limits
        # Per slot: sources held per (group, interface), or _ANY_SOURCE.
        self._held: list[dict[_Key, int]] = [{}]
        self._full: set[int] = set()
        # Groups whose sources are spread over sockets: the reading socket (slot 0) may hold
        # none of them, or its own source filter would refuse what the others joined.
        self._split: set[_Key] = set()

    @property
    def count(self) -> int:
        """Slots made so far (the reading socket's included)."""
        return len(self._held)

    def _fits(self, slot: int, key: _Key, source_specific: bool) -> bool:
        if slot in self._full or (slot == 0 and key in self._split):
            return False
        held = self._held[slot]
        if key in held:  # one more source of a group the socket holds
            sources = held[key]
            return (
                source_specific
                and sources != _ANY_SOURCE
                and (self.limits.sources is None or sources < self.limits.sources)
            )
        return self.limits.groups is None or len(held) < self.limits.groups

    def place(self, membership: Membership) -> int:
        """The slot to join ``membership`` on (a new one when none has room), counted as held."""
        key = (membership.group.address, membership.interface)
        specific = membership.source is not None
        slot = next(
            (n for n in range(len(self._held)) if self._fits(n, key, specific)), len(self._held)
        )
        if slot == len(self._held):
            self._held.append({})
        if slot and specific and key in self._held[0]:
            self._split.add(key)
        held = self._held[slot]
        held[key] = held.get(key, 0) + 1 if specific else _ANY_SOURCE
        return slot

    def split(self, membership: Membership) -> bool:
        """Whether the sources of ``membership``'s group are spread over sockets: those the
        reading socket holds must move (leave, then :meth:`place` again)."""
        return (membership.group.address, membership.interface) in self._split

    def full(self, slot: int, membership: Membership) -> None:
        """The kernel refused ``membership`` on ``slot``: not held, and that socket takes
        nothing more."""
        self.release(slot, membership)
        self._full.add(slot)

    def release(self, slot: int, membership: Membership) -> None:
        """``membership`` is no longer held on ``slot`` (left, or refused)."""
        key = (membership.group.address, membership.interface)
        held = self._held[slot]
        if held.get(key, 0) > 1:
            held[key] -= 1
        else:
            held.pop(key, None)


class Spread:
    """The sockets holding one receiver's memberships: ``reader``, the socket that reads,
    and the extra ones (:attr:`holders`) made when it has no room left. ``table`` is the
    receiver's membership table, told which socket holds each membership.

    Once a holder exists, an ``isolated`` reader is opened to every group of its port
    (``IP_MULTICAST_ALL``) and the table keeps only the channels joined.
    """

    def __init__(self, reader: socket.socket, table: MembershipTable, *, isolated: bool) -> None:
        self.reader = reader
        self.table = table
        self.isolated = isolated
        self.holders: list[socket.socket] = []
        self.slots = Slots(SocketLimits.of(reader.family))

    @property
    def sockets(self) -> list[socket.socket]:
        """The reading socket, then the holders, in the order of the table's slots."""
        return [self.reader, *self.holders]

    def hold(self, membership: Membership) -> None:
        """Join ``membership`` on a socket with room for it, making one if need be."""
        table = self.table
        if table.holds(membership):  # the kernel of the socket holding it decides
            apply_membership(self.sockets[table.slot_of(membership)], membership, join=True)
            return
        while True:
            slot = self.slots.place(membership)
            fresh = slot > len(self.holders)
            try:
                apply_membership(self._socket(slot), membership, join=True)
            except SocketOptionError as error:
                if error.errno not in _SOCKET_FULL or fresh:
                    self.slots.release(slot, membership)
                    raise
                self.slots.full(slot, membership)  # limits not readable: learn them here
                continue
            index = membership.interface
            table.add(membership, name_by_index(self.reader, index) if index else None, slot)
            if slot and self.slots.split(membership):
                self._move_off_reader(membership)
            return

    def leave(self, membership: Membership) -> None:
        """Leave ``membership`` on the socket that holds it."""
        slot = self.table.slot_of(membership)
        apply_membership(self.sockets[slot], membership, join=False)
        self.table.remove(membership)
        self.slots.release(slot, membership)

    def close(self) -> None:
        """Close the holders (the reader is the receiver's)."""
        for holder in self.holders:
            holder.close()

    def _move_off_reader(self, membership: Membership) -> None:
        """Move the memberships of ``membership``'s group (and interface) that the reading
        socket holds to the others: its own source filter would refuse their sources."""
        moving = [
            m
            for m in self.table.joined
            if (m.group, m.interface) == (membership.group, membership.interface)
            and self.table.slot_of(m) == 0
        ]
        for held in moving:
            apply_membership(self.reader, held, join=False)
            self.table.remove(held)
            self.slots.release(0, held)
        for held in moving:
            self.hold(held)

    def _socket(self, slot: int) -> socket.socket:
        """The socket of ``slot``: the reader for 0, else a holder, made when first needed."""
        if slot == 0:
            return self.reader
        if slot > len(self.holders):
            if self.isolated:  # the reading socket must now take the holders' groups
                set_isolation(self.reader, enabled=False)
                self.table.only_joined = True
            self.holders.append(new_socket(self.reader.family))
        return self.holders[slot - 1]
