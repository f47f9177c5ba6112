"""TTL 0 keeps multicast datagrams on this host: what makes Linux hold to it.

Linux drops a multicast datagram sent with TTL (IPv6: hop limit) 0 only when this host has a
member of its group on the interface it leaves by. IPv4 takes the output path that drops it
only then (the route is "local" only when the host is a member); IPv6 drops it only then and
with loopback on. Otherwise the datagram leaves with TTL 0 and the next host receives it.

So, for a socket whose TTL :func:`~multicast.core.options.set_ttl` set to 0, the sending
functions of :mod:`multicast.core.io` (which every sender of the package uses) first call
:func:`keep_on_host`:

- loopback off: the datagram would reach no one, here or elsewhere, so it is not sent at
  all (the call returns as if sent, like the kernel does for a datagram it drops); the first
  one per socket is logged as a warning.
- loopback on: the sender's guard socket (made with the TTL, unbound, so it receives
  nothing) joins the group on the outgoing interface before the datagram is sent, and stays
  joined while the sender lives. When the kernel allows it no more groups
  (``net.ipv4.igmp_max_memberships``) or it holds :data:`GUARDS_KEPT`, it leaves the group it
  used least recently. This host's receivers get the datagram; the network does not. The
  join itself announces the group on that link (one IGMP or MLD report), as any receiver's
  join would.

The guard is closed with the socket (``Sender.close`` and the peer call :func:`release`) or
when the socket is garbage-collected.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import weakref
from ipaddress import ip_address

from multicast.core.addresses import Group, parse_group
from multicast.core.datagram import SocketAddress
from multicast.core.membership import Membership, apply_membership
from multicast.core.options import (
    SendSettings,
    forget_send_settings,
    ip_level,
    send_settings,
)
from multicast.exceptions import SendError, SocketOptionError

__all__ = ["GUARDS_KEPT", "guarded_groups", "keep_on_host", "release"]

GUARDS_KEPT = 64
"""Groups one sending socket keeps guard memberships for; the least recently used goes."""

logger = logging.getLogger(__name__)


class _Guarded:
    """The memberships of one sending socket's guard, least recently used first."""

    def __init__(self) -> None:
        self.memberships: dict[Membership, None] = {}
        self.warned = False  # the first datagram held back for loopback off was logged

    def ensure(self, guard: socket.socket, membership: Membership) -> None:
        """Make sure the host is a member of ``membership``: joined again each time, which
        costs nothing when it holds and repairs what the kernel dropped (an interface deleted
        and made again)."""
        self.memberships.pop(membership, None)
        if len(self.memberships) >= GUARDS_KEPT:
            self._leave_oldest(guard)
        while True:
            try:
                apply_membership(guard, membership, join=True)
            except SocketOptionError as error:
                if error.errno == errno.ENOBUFS and self.memberships:
                    self._leave_oldest(guard)
                    continue
                raise SendError(
                    error.errno or errno.EIO,
                    f"cannot keep a TTL-0 datagram to {membership} on this host: {error}",
                ) from error
            self.memberships[membership] = None
            return

    def _leave_oldest(self, guard: socket.socket) -> None:
        oldest = next(iter(self.memberships))
        del self.memberships[oldest]
        with contextlib.suppress(SocketOptionError):  # gone with its interface
            apply_membership(guard, oldest, join=False)


_GUARDED: weakref.WeakKeyDictionary[socket.socket, _Guarded] = weakref.WeakKeyDictionary()


def _loopback(sock: socket.socket) -> bool:
    option = (
        socket.IP_MULTICAST_LOOP if sock.family == socket.AF_INET else socket.IPV6_MULTICAST_LOOP
    )
    return bool(sock.getsockopt(ip_level(sock), option))


def _multicast_group(where: SocketAddress) -> Group | None:
    try:
        address = ip_address(where[0])
    except ValueError:
        return None
    return parse_group(address) if address.is_multicast else None


def keep_on_host(sock: socket.socket, where: SocketAddress) -> bool:
    """Before sending to ``where`` (a resolved destination): whether to send at all.

    True at once unless the core set the socket's TTL to 0 and ``where`` is a group; then
    False with loopback off, and True with loopback on once the host is a member of the
    group on the outgoing interface (the destination's IPv6 scope, else the socket's send
    interface, else the routing table's choice). A guard that cannot join raises
    :class:`~multicast.exceptions.SendError`: the datagram is not sent.
    """
    if not SendSettings.guards_made:  # no socket was ever set to TTL 0
        return True
    settings = send_settings(sock)
    if settings is None or settings.ttl != 0 or settings.guard is None:
        return True
    group = _multicast_group(where)
    if group is None:
        return True
    guarded = _GUARDED.get(sock)
    if guarded is None:
        guarded = _GUARDED[sock] = _Guarded()
    if not _loopback(sock):
        if not guarded.warned:
            guarded.warned = True
            logger.warning(
                "TTL 0 with loopback off: datagrams to %s reach no one, so none is sent", group
            )
        return False
    scope = where[3] if len(where) == 4 else 0
    guarded.ensure(settings.guard, Membership(group, scope or settings.interface))
    return True


def guarded_groups(sock: socket.socket) -> list[Membership]:
    """The memberships that keep ``sock``'s TTL-0 datagrams on this host, oldest first."""
    found = _GUARDED.get(sock)
    return list(found.memberships) if found is not None else []


def release(sock: socket.socket) -> None:
    """Close the guard of ``sock`` (which is closed) and forget what was noted for it."""
    _GUARDED.pop(sock, None)
    forget_send_settings(sock)
