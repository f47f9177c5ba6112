"""Interface changes of this network namespace, from the kernel's netlink notifications.

A :class:`InterfaceWatcher` is a non-blocking ``AF_NETLINK`` socket subscribed to link
notifications (``RTMGRP_LINK``: an interface appeared, changed state or was deleted) and,
by default, route notifications (a route appeared or went: where the routing table sends a
group may have changed). Add it to a selector or poll it; :meth:`InterfaceWatcher.changes`
drains what arrived. :func:`multicast.core.membership.rejoin` acts on the changes, and a
receiver made with ``watch_interfaces=True`` does that by itself.

Only what a receiver needs is parsed (index, name, up/running, removed); everything else in
the messages, and any message of another kind or too short to hold its header, is skipped.

>>> from multicast.core.watch import parse_messages
>>> parse_messages(b"")
InterfaceChanges(links=(), routes=0, lost=False)
>>> parse_messages(b"\\x00" * 40)  # a length of zero: not a message, nothing more is read
InterfaceChanges(links=(), routes=0, lost=False)
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass

from multicast.core import constants
from multicast.exceptions import BindError, UnsupportedError

__all__ = ["InterfaceChanges", "InterfaceWatcher", "LinkChange", "parse_messages"]

# linux/netlink.h and linux/rtnetlink.h
_NETLINK_ROUTE = 0
_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_ROUTE = 0x40
_RTMGRP_IPV6_ROUTE = 0x400
_NLMSG_OVERRUN = 4
_RTM_NEWLINK, _RTM_DELLINK = 16, 17
_RTM_NEWROUTE, _RTM_DELROUTE = 24, 25
_IFLA_IFNAME = 3
_AF_UNSPEC = 0  # link messages of the device itself (AF_BRIDGE ones describe bridge ports)

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change mask
_ATTRIBUTE = struct.Struct("=HH")  # rtattr: length, type
_BUFFER = 64 * 1024  # bytes read at once; a link message takes about 1.5 KiB


def _aligned(length: int) -> int:
    """Netlink messages and attributes start on 4-byte boundaries."""
    return (length + 3) & ~3


@dataclass(frozen=True, slots=True)
class LinkChange:
    """One link notification: interface ``index`` (called ``name``) appeared, changed or went."""

    index: int
    name: str  # "" if the message did not say
    up: bool  # administratively up (IFF_UP)
    running: bool  # operationally up (IFF_RUNNING)
    removed: bool  # the interface was deleted (RTM_DELLINK)

    def __str__(self) -> str:
        if self.removed:
            state = "removed"
        else:
            state = ("up" if self.up else "down") + (", running" if self.running else "")
        return f"{self.name or '?'} (index {self.index}) {state}"


@dataclass(frozen=True, slots=True)
class InterfaceChanges:
    """What one drain of an :class:`InterfaceWatcher` found; false when it found nothing."""

    links: tuple[LinkChange, ...] = ()
    routes: int = 0  # route notifications (cues only: their content is not parsed)
    lost: bool = False  # the kernel dropped notifications: look at everything again

    @property
    def removed(self) -> frozenset[int]:
        """Indexes of the interfaces deleted."""
        return frozenset(link.index for link in self.links if link.removed)

    def __bool__(self) -> bool:
        return bool(self.links or self.routes or self.lost)

    def __add__(self, other: InterfaceChanges) -> InterfaceChanges:
        return InterfaceChanges(
            self.links + other.links, self.routes + other.routes, self.lost or other.lost
        )


def _link_name(attributes: memoryview) -> str:
    """The ``IFLA_IFNAME`` attribute among ``attributes``, "" if there is none or it is bad."""
    offset = 0
    while offset + _ATTRIBUTE.size <= len(attributes):
        length, kind = _ATTRIBUTE.unpack_from(attributes, offset)
        if length < _ATTRIBUTE.size or offset + length > len(attributes):
            break
        if kind == _IFLA_IFNAME:
            value = bytes(attributes[offset + _ATTRIBUTE.size : offset + length])
            return os.fsdecode(value.split(b"\0", 1)[0])
        offset += _aligned(length)
    return ""


def _link_change(kind: int, body: memoryview) -> LinkChange | None:
    if len(body) < _IFINFO.size:
        return None
    family, _, index, flags, _ = _IFINFO.unpack_from(body)
    if family != _AF_UNSPEC or index <= 0:
        return None
    return LinkChange(
        index=index,
        name=_link_name(body[_IFINFO.size :]),
        up=bool(flags & constants.IFF_UP),
        running=bool(flags & constants.IFF_RUNNING),
        removed=kind == _RTM_DELLINK,
    )


def parse_messages(data: bytes | bytearray | memoryview) -> InterfaceChanges:
    """The link and route notifications in one netlink datagram; any bytes are accepted.

    Reading stops at the first header whose length is impossible (shorter than a header,
    or running past the data): what follows it cannot be framed.
    """
    view = memoryview(data).cast("B")
    links: list[LinkChange] = []
    routes = 0
    lost = False
    offset = 0
    while offset + _HEADER.size <= len(view):
        length, kind, _, _, _ = _HEADER.unpack_from(view, offset)
        if length < _HEADER.size or offset + length > len(view):
            break
        if kind in (_RTM_NEWLINK, _RTM_DELLINK):
            change = _link_change(kind, view[offset + _HEADER.size : offset + length])
            if change is not None:
                links.append(change)
        elif kind in (_RTM_NEWROUTE, _RTM_DELROUTE):
            routes += 1
        elif kind == _NLMSG_OVERRUN:
            lost = True
        offset += _aligned(length)
    return InterfaceChanges(tuple(links), routes, lost)


class InterfaceWatcher:
    """Link (and route) notifications of the namespace it was made in, read without blocking.

    The socket belongs to the network namespace of the thread that makes the watcher,
    whichever thread reads it later. Close it when done (a :class:`~multicast.core.Receiver`
    closes its own; ``contextlib.closing`` suits others).
    """

    def __init__(self, *, routes: bool = True) -> None:
        if not hasattr(socket, "AF_NETLINK"):
            raise UnsupportedError("watching interfaces (netlink) is supported on Linux only")
        groups = _RTMGRP_LINK | (_RTMGRP_IPV4_ROUTE | _RTMGRP_IPV6_ROUTE if routes else 0)
        self.sock = socket.socket(
            socket.AF_NETLINK,
            socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
            _NETLINK_ROUTE,
        )
        try:
            self.sock.bind((0, groups))
        except OSError as error:
            self.sock.close()
            code = error.errno or errno.EINVAL
            raise BindError(code, f"cannot watch interfaces: {error.strerror or error}") from error
        self._buffer = bytearray(_BUFFER)

    def fileno(self) -> int:
        return self.sock.fileno()

    def changes(self, limit: int = 64) -> InterfaceChanges:
        """What arrived since the last call (at most ``limit`` datagrams), without blocking.

        If the kernel had to drop notifications (the socket's buffer was full), or one was
        too long for the buffer, the result says ``lost``.
        """
        found = InterfaceChanges()
        for _ in range(limit):
            try:
                size = self.sock.recv_into(self._buffer, 0, socket.MSG_TRUNC)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                found += InterfaceChanges(lost=True)
                continue
            found += parse_messages(memoryview(self._buffer)[: min(size, _BUFFER)])
            if size > _BUFFER:
                found += InterfaceChanges(lost=True)
        return found

    @property
    def closed(self) -> bool:
        return self.sock.fileno() < 0

    def close(self) -> None:
        self.sock.close()
