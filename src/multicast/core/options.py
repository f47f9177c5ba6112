"""Socket options: every ``setsockopt`` of the package goes through :func:`set_option`.

The setters take a plain :class:`socket.socket`, so every face of the package (the reference
API, the event layer, the peer, asyncio, the tools) configures its sockets through them.
An option the kernel refuses raises :class:`~multicast.exceptions.SocketOptionError` naming
the option and its subject; a refused bind raises :class:`~multicast.exceptions.BindError`.

What decides where a socket's multicast datagrams may go (the TTL set by :func:`set_ttl`, the
interface set by :func:`set_send_interface`) is also noted for the socket
(:func:`send_settings`): the kernel cannot tell the interface back by index, and the sending
functions need both to keep TTL-0 datagrams on this host (:mod:`multicast.core.hostscope`).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import weakref
from dataclasses import dataclass
from typing import ClassVar

from multicast.core import constants
from multicast.core.addresses import (
    IPAddress,
    family_of,
    parse_address,
    parse_port,
    parse_ttl,
    split_zone,
    wildcard_host,
)
from multicast.core.interfaces import InterfaceSpec, interface_index, zone_index
from multicast.exceptions import (
    AddressError,
    BindError,
    OptionError,
    SocketOptionError,
    UnsupportedError,
)

__all__ = [
    "SendSettings",
    "bind_socket",
    "enable_receive_metadata",
    "forget_send_settings",
    "ip_level",
    "new_socket",
    "request_receive_buffer",
    "request_send_buffer",
    "require_linux",
    "send_settings",
    "set_broadcast",
    "set_busy_poll",
    "set_isolation",
    "set_loopback",
    "set_option",
    "set_reuse",
    "set_send_interface",
    "set_ttl",
    "set_unicast_ttl",
]

_IP_MREQN = struct.Struct("=4s4si")  # struct ip_mreqn: group, local address, interface index


@dataclass(slots=True)
class SendSettings:
    """What the core set on a socket that decides where its multicast datagrams go."""

    ttl: int | None = None  # None: the kernel's default (1)
    interface: int = 0  # 0: the routing table chooses
    # With TTL 0: an unbound socket (it receives nothing) whose joins make this host a member
    # of the groups sent to (multicast.core.hostscope). Made by set_ttl, in the thread that
    # configures the socket, so that it lives in the same network namespace.
    guard: socket.socket | None = None
    # Guard sockets this process made: while none, no send needs to look (every send asks).
    guards_made: ClassVar[int] = 0

    def drop_guard(self) -> None:
        """Close the guard socket (leaving its groups)."""
        if self.guard is not None:
            self.guard.close()
            self.guard = None


_SEND_SETTINGS: weakref.WeakKeyDictionary[socket.socket, SendSettings] = weakref.WeakKeyDictionary()


def send_settings(sock: socket.socket) -> SendSettings | None:
    """What :func:`set_ttl` and :func:`set_send_interface` set on ``sock`` (None: neither)."""
    return _SEND_SETTINGS.get(sock)


def forget_send_settings(sock: socket.socket) -> None:
    """Forget what was noted for ``sock`` and close its guard (``sock`` is closed)."""
    found = _SEND_SETTINGS.pop(sock, None)
    if found is not None:
        found.drop_guard()


def _noted(sock: socket.socket) -> SendSettings:
    found = _SEND_SETTINGS.get(sock)
    if found is None:
        found = _SEND_SETTINGS[sock] = SendSettings()
        weakref.finalize(sock, found.drop_guard)
    return found


def set_option(sock: socket.socket, level: int, option: int, value: int | bytes, what: str) -> None:
    """``setsockopt``; a refusal raises :class:`SocketOptionError` saying it could not ``what``."""
    try:
        sock.setsockopt(level, option, value)
    except OSError as error:
        code = error.errno or errno.EINVAL
        raise SocketOptionError(code, f"cannot {what}: {error.strerror or error}") from error


def ip_level(sock: socket.socket) -> int:
    """The protocol level of the socket's IP options: ``IPPROTO_IP`` or ``IPPROTO_IPV6``."""
    return socket.IPPROTO_IP if sock.family == socket.AF_INET else socket.IPPROTO_IPV6


def require_linux(feature: str) -> None:
    """Raise :class:`UnsupportedError` naming ``feature`` anywhere but on Linux."""
    if not constants.LINUX:
        raise UnsupportedError(f"{feature} is supported on Linux only")


def new_socket(family: socket.AddressFamily = socket.AF_INET) -> socket.socket:
    """A UDP socket of ``family`` (IPv6 sockets are IPv6-only)."""
    sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    if family == socket.AF_INET6:
        set_option(sock, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1, "make the socket IPv6-only")
    return sock


def set_reuse(sock: socket.socket, *, port: bool = False) -> None:
    """Let several sockets bind the same address and port (``SO_REUSEADDR``; ``SO_REUSEPORT``)."""
    set_option(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1, "set SO_REUSEADDR")
    if port:
        set_option(sock, socket.SOL_SOCKET, socket.SO_REUSEPORT, 1, "set SO_REUSEPORT")


def set_isolation(sock: socket.socket, enabled: bool = True) -> None:
    """Deliver only the groups this socket joined (``IP[V6]_MULTICAST_ALL`` off).

    Without it, Linux hands a socket bound to the wildcard address every group that any
    socket on the host joined on its port.
    """
    require_linux("group isolation (IP_MULTICAST_ALL)")
    option = (
        constants.IP_MULTICAST_ALL
        if sock.family == socket.AF_INET
        else constants.IPV6_MULTICAST_ALL
    )
    set_option(sock, ip_level(sock), option, int(not enabled), "set IP_MULTICAST_ALL")


def _check_buffer_size(size: object, kind: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise OptionError(f"{kind} buffer size must be positive, not {size!r}")


def request_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a receive buffer of ``size`` bytes; return what the kernel granted (``SO_RCVBUF``).

    Linux reports twice the size it accepted (half is bookkeeping) and caps the request at
    ``net.core.rmem_max``; where the process is privileged, ``SO_RCVBUFFORCE`` lifts the cap.
    """
    _check_buffer_size(size, "receive")
    set_option(sock, socket.SOL_SOCKET, socket.SO_RCVBUF, size, f"set SO_RCVBUF to {size}")
    granted: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if granted < 2 * size and constants.LINUX:
        with contextlib.suppress(SocketOptionError):  # not privileged: keep what rmem_max allowed
            set_option(sock, socket.SOL_SOCKET, constants.SO_RCVBUFFORCE, size, "force SO_RCVBUF")
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return granted


def request_send_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a send buffer of ``size`` bytes; return what the kernel granted (``SO_SNDBUF``).

    As for receive buffers, Linux reports twice the size it accepted and caps the request
    at ``net.core.wmem_max``.
    """
    _check_buffer_size(size, "send")
    set_option(sock, socket.SOL_SOCKET, socket.SO_SNDBUF, size, f"set SO_SNDBUF to {size}")
    granted: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    return granted


def set_broadcast(sock: socket.socket, enabled: bool = True) -> None:
    """Whether this IPv4 socket may send to broadcast addresses (``SO_BROADCAST``)."""
    state = "on" if enabled else "off"
    set_option(
        sock, socket.SOL_SOCKET, socket.SO_BROADCAST, int(enabled), f"turn broadcast {state}"
    )


def set_busy_poll(sock: socket.socket, microseconds: int) -> bool:
    """Ask the kernel to busy-poll the device queue for up to ``microseconds`` on a blocking
    read of ``sock`` (``SO_BUSY_POLL``, Linux); False where it is not permitted or supported.

    It helps only on devices whose driver polls (NAPI), not on ``lo``, and a value above the
    system's ``net.core.busy_read`` needs ``CAP_NET_ADMIN``: the latency modes of ``ping`` and
    ``pong`` ask for it and spin in user space as well.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, constants.SO_BUSY_POLL, microseconds)
    except OSError as error:
        if error.errno in (errno.EPERM, errno.EACCES, errno.ENOPROTOOPT, errno.EINVAL):
            return False
        raise SocketOptionError(
            error.errno or errno.EINVAL, f"cannot busy-poll: {error.strerror or error}"
        ) from error
    return True


def enable_receive_metadata(sock: socket.socket) -> None:
    """Ask for destination, interface, TTL and the drop counter with every datagram."""
    require_linux("receive metadata (IP_PKTINFO, SO_RXQ_OVFL)")
    if sock.family == socket.AF_INET:
        set_option(sock, socket.IPPROTO_IP, constants.IP_PKTINFO, 1, "set IP_PKTINFO")
        set_option(sock, socket.IPPROTO_IP, constants.IP_RECVTTL, 1, "set IP_RECVTTL")
    else:
        set_option(sock, socket.IPPROTO_IPV6, constants.IPV6_RECVPKTINFO, 1, "set IPV6_RECVPKTINFO")
        set_option(
            sock, socket.IPPROTO_IPV6, constants.IPV6_RECVHOPLIMIT, 1, "set IPV6_RECVHOPLIMIT"
        )
    set_option(sock, socket.SOL_SOCKET, constants.SO_RXQ_OVFL, 1, "set SO_RXQ_OVFL")


# (unicast, family) -> the option that sets the TTL or hop limit, and what it is called.
_HOPS = {
    (False, socket.AF_INET): (socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, "TTL"),
    (False, socket.AF_INET6): (socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, "hop limit"),
    (True, socket.AF_INET): (socket.IPPROTO_IP, socket.IP_TTL, "unicast TTL"),
    (True, socket.AF_INET6): (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, "unicast hop limit"),
}


def _set_hops(sock: socket.socket, ttl: int, *, unicast: bool) -> int:
    ttl = parse_ttl(ttl, unicast=unicast)
    level, option, name = _HOPS[unicast, sock.family]
    set_option(sock, level, option, ttl, f"set {name} {ttl}")
    return ttl


def set_ttl(sock: socket.socket, ttl: int) -> None:
    """TTL (IPv4) or hop limit (IPv6) of multicast datagrams sent: 0 keeps them on this host
    (when sent through :mod:`multicast.core.io`, which :mod:`~multicast.core.hostscope` guards)."""
    settings = _noted(sock)
    settings.ttl = _set_hops(sock, ttl, unicast=False)
    if settings.ttl != 0:
        settings.drop_guard()
    elif settings.guard is None:
        settings.guard = new_socket(sock.family)
        SendSettings.guards_made += 1


def set_unicast_ttl(sock: socket.socket, ttl: int) -> None:
    """TTL (IPv4) or hop limit (IPv6) of unicast datagrams sent, such as replies to a prober."""
    _set_hops(sock, ttl, unicast=True)


def set_loopback(sock: socket.socket, enabled: bool) -> None:
    """Whether this host's own receivers get the multicast datagrams this socket sends."""
    option = (
        socket.IP_MULTICAST_LOOP if sock.family == socket.AF_INET else socket.IPV6_MULTICAST_LOOP
    )
    state = "on" if enabled else "off"
    set_option(sock, ip_level(sock), option, int(enabled), f"turn multicast loopback {state}")


def set_send_interface(sock: socket.socket, interface: InterfaceSpec | None) -> None:
    """The interface that multicast datagrams leave by (None: the routing table decides)."""
    index = interface_index(interface)
    if sock.family == socket.AF_INET:
        request = _IP_MREQN.pack(bytes(4), bytes(4), index)
        set_option(sock, socket.IPPROTO_IP, socket.IP_MULTICAST_IF, request, f"send on {interface}")
    else:
        set_option(
            sock, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index, f"send on {interface}"
        )
    _noted(sock).interface = index


def bind_socket(sock: socket.socket, address: str | IPAddress | None, port: int) -> None:
    """Bind to ``address`` (None: every address of the socket's family) and ``port`` (0: any).

    ``address`` is an IP literal of the socket's family, never a name looked up in DNS
    (:class:`~multicast.exceptions.AddressError`); a bad port is a
    :class:`~multicast.exceptions.PortError`. A refusal raises :class:`BindError` naming the
    address and port.
    """
    number = parse_port(port, allow_zero=True)
    where: tuple[str, int] | tuple[str, int, int, int]
    if address is None:
        host = wildcard_host(sock.family)
        where = (host, number)
    else:
        parsed = parse_address(address, what="address to bind")
        if family_of(parsed) != sock.family:
            kind = "IPv4" if sock.family == socket.AF_INET else "IPv6"
            raise AddressError(f"address to bind {address!s} is not {kind}, as the socket is")
        host = parsed.compressed
        _, zone = split_zone(str(address), what="address to bind")
        if zone is None:
            where = (host, number)
        elif sock.family == socket.AF_INET6:  # the zone's index: nothing for a resolver to do
            where = (host, number, 0, zone_index(sock, zone))
        else:
            raise AddressError(f"address to bind {address!s}: a %zone is only meaningful for IPv6")
    try:
        sock.bind(where)
    except OSError as error:
        code = error.errno or errno.EINVAL
        raise BindError(
            code, f"cannot bind to {host} port {number}: {error.strerror or error}"
        ) from error
