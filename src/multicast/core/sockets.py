"""The one place that sets multicast socket options, joins groups and reads datagrams.

The functions take a plain :class:`socket.socket`, so every face of the package (the
reference API, the event layer, the peer, asyncio, the tools) configures its sockets
through them. :class:`Receiver` and :class:`Sender` bundle the usual configurations.

Membership uses the protocol-independent RFC 3678 options (``MCAST_JOIN_GROUP``,
``MCAST_JOIN_SOURCE_GROUP``) with an interface index, so any-source and source-specific
joins work the same way on IPv4 and IPv6.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import socket
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path
from types import TracebackType
from typing import Self

from multicast.core import constants
from multicast.core.addresses import Group, IPAddress, family_of, parse_address, parse_group
from multicast.core.interfaces import (
    Interface,
    InterfaceSpec,
    index_by_name,
    multicast_interfaces,
    name_by_index,
    resolve_interface,
)
from multicast.core.watch import InterfaceWatcher
from multicast.exceptions import GroupError, MessageSizeError, SocketOptionError, UnsupportedError

__all__ = [
    "Closing",
    "Datagram",
    "Membership",
    "Receiver",
    "Sender",
    "arrived_as_joined",
    "bind_socket",
    "check_payload_size",
    "enable_receive_metadata",
    "interface_index",
    "interfaces_by_group",
    "join_group",
    "leave_group",
    "new_socket",
    "open_receiver",
    "parse_ancillary",
    "receive_batch",
    "receive_datagram",
    "receive_ready",
    "request_receive_buffer",
    "request_send_buffer",
    "send_datagram",
    "send_many",
    "set_broadcast",
    "set_isolation",
    "set_loopback",
    "set_reuse",
    "set_send_interface",
    "set_ttl",
    "set_unicast_ttl",
    "socket_drops",
]

_ANCILLARY_SPACE = (
    socket.CMSG_SPACE(20)  # in6_pktinfo (in_pktinfo is 12)
    + socket.CMSG_SPACE(4)  # TTL / hop limit
    + socket.CMSG_SPACE(4)  # SO_RXQ_OVFL drop counter
)
_IN_PKTINFO = struct.Struct("=i4s4s")  # ipi_ifindex, ipi_spec_dst, ipi_addr
_IN6_PKTINFO = struct.Struct("=16si")  # ipi6_addr, ipi6_ifindex
_INT = struct.Struct("=i")
_UINT = struct.Struct("=I")

Payload = bytes | bytearray | memoryview


# ---------------------------------------------------------------------------------------------
# Pure pieces: what a received datagram carries, and how the kernel's ancillary data reads.


@dataclass(slots=True)
class Datagram:
    """One received datagram and what the kernel told us about it.

    Read-only by convention: not frozen, because a frozen dataclass costs several times as
    much to make, and one is made for every datagram received.
    """

    payload: bytes
    source: tuple[str, int]
    group: str | None = None  # destination address (IP_PKTINFO / IPV6_PKTINFO)
    interface: int | None = None  # index of the interface it arrived on
    ttl: int | None = None  # received TTL or hop limit
    truncated: bool = False  # the datagram was longer than the buffer (MSG_TRUNC)
    size: int = 0  # the datagram's real length, even when truncated
    drops: int = 0  # datagrams the kernel dropped on this socket so far (SO_RXQ_OVFL)


@dataclass(frozen=True, slots=True)
class _Ancillary:
    group: str | None = None
    interface: int | None = None
    ttl: int | None = None
    drops: int = 0


def parse_ancillary(ancdata: Iterable[tuple[int, int, bytes]]) -> _Ancillary:
    """Read destination, interface, TTL and drop count from ``recvmsg`` ancillary data.

    Unknown or short records are skipped, never trusted.
    """
    group: str | None = None
    interface: int | None = None
    ttl: int | None = None
    drops = 0
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == constants.IP_PKTINFO:
            if len(data) >= _IN_PKTINFO.size:
                interface, _, destination = _IN_PKTINFO.unpack_from(data)
                group = socket.inet_ntop(socket.AF_INET, destination)
        elif level == socket.IPPROTO_IPV6 and kind == constants.IPV6_PKTINFO:
            if len(data) >= _IN6_PKTINFO.size:
                destination, interface = _IN6_PKTINFO.unpack_from(data)
                group = socket.inet_ntop(socket.AF_INET6, destination)
        elif (level, kind) in (
            (socket.IPPROTO_IP, constants.IP_TTL),
            (socket.IPPROTO_IPV6, constants.IPV6_HOPLIMIT),
        ):
            if len(data) >= _INT.size:
                ttl = _INT.unpack_from(data)[0]
        elif (
            level == socket.SOL_SOCKET and kind == constants.SO_RXQ_OVFL and len(data) >= _UINT.size
        ):
            drops = _UINT.unpack_from(data)[0]
    return _Ancillary(group, interface, ttl, drops)


# ---------------------------------------------------------------------------------------------
# Socket options. Every setsockopt of the package goes through _setsockopt, which names the
# option and its subject in the error.


def _setsockopt(
    sock: socket.socket, level: int, option: int, value: int | bytes, what: str
) -> None:
    try:
        sock.setsockopt(level, option, value)
    except OSError as error:
        code = error.errno or errno.EINVAL
        raise SocketOptionError(code, f"cannot {what}: {error.strerror or error}") from error


def _level(sock: socket.socket) -> int:
    return socket.IPPROTO_IP if sock.family == socket.AF_INET else socket.IPPROTO_IPV6


def _require_linux(feature: str) -> None:
    if not constants.LINUX:
        raise UnsupportedError(f"{feature} is supported on Linux only")


def new_socket(family: socket.AddressFamily = socket.AF_INET) -> socket.socket:
    """A UDP socket of ``family`` (IPv6 sockets are IPv6-only)."""
    sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    if family == socket.AF_INET6:
        _setsockopt(sock, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1, "make the socket IPv6-only")
    return sock


def set_reuse(sock: socket.socket, *, port: bool = False) -> None:
    """Let several sockets bind the same address and port (``SO_REUSEADDR``; ``SO_REUSEPORT``)."""
    _setsockopt(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1, "set SO_REUSEADDR")
    if port:
        _setsockopt(sock, socket.SOL_SOCKET, socket.SO_REUSEPORT, 1, "set SO_REUSEPORT")


def set_isolation(sock: socket.socket, enabled: bool = True) -> None:
    """Deliver only the groups this socket joined (``IP[V6]_MULTICAST_ALL`` off).

    Without it, Linux hands a socket bound to the wildcard address every group that any
    socket on the host joined on its port.
    """
    _require_linux("group isolation (IP_MULTICAST_ALL)")
    option = (
        constants.IP_MULTICAST_ALL
        if sock.family == socket.AF_INET
        else constants.IPV6_MULTICAST_ALL
    )
    _setsockopt(sock, _level(sock), option, int(not enabled), "set IP_MULTICAST_ALL")


def request_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a receive buffer of ``size`` bytes; return what the kernel granted (``SO_RCVBUF``).

    Linux reports twice the size it accepted (half is bookkeeping) and caps the request at
    ``net.core.rmem_max``; where the process is privileged, ``SO_RCVBUFFORCE`` lifts the cap.
    """
    if size <= 0:
        raise ValueError(f"receive buffer size must be positive, not {size}")
    _setsockopt(sock, socket.SOL_SOCKET, socket.SO_RCVBUF, size, f"set SO_RCVBUF to {size}")
    granted: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if granted < 2 * size and constants.LINUX:
        with contextlib.suppress(OSError):  # not privileged: keep what rmem_max allowed
            sock.setsockopt(socket.SOL_SOCKET, constants.SO_RCVBUFFORCE, size)
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return granted


def request_send_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a send buffer of ``size`` bytes; return what the kernel granted (``SO_SNDBUF``).

    As for receive buffers, Linux reports twice the size it accepted and caps the request
    at ``net.core.wmem_max``.
    """
    if size <= 0:
        raise ValueError(f"send buffer size must be positive, not {size}")
    _setsockopt(sock, socket.SOL_SOCKET, socket.SO_SNDBUF, size, f"set SO_SNDBUF to {size}")
    granted: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    return granted


def set_broadcast(sock: socket.socket, enabled: bool = True) -> None:
    """Whether this IPv4 socket may send to broadcast addresses (``SO_BROADCAST``)."""
    state = "on" if enabled else "off"
    _setsockopt(
        sock, socket.SOL_SOCKET, socket.SO_BROADCAST, int(enabled), f"turn broadcast {state}"
    )


def enable_receive_metadata(sock: socket.socket) -> None:
    """Ask for destination, interface, TTL and the drop counter with every datagram."""
    _require_linux("receive metadata (IP_PKTINFO, SO_RXQ_OVFL)")
    if sock.family == socket.AF_INET:
        _setsockopt(sock, socket.IPPROTO_IP, constants.IP_PKTINFO, 1, "set IP_PKTINFO")
        _setsockopt(sock, socket.IPPROTO_IP, constants.IP_RECVTTL, 1, "set IP_RECVTTL")
    else:
        _setsockopt(
            sock, socket.IPPROTO_IPV6, constants.IPV6_RECVPKTINFO, 1, "set IPV6_RECVPKTINFO"
        )
        _setsockopt(
            sock, socket.IPPROTO_IPV6, constants.IPV6_RECVHOPLIMIT, 1, "set IPV6_RECVHOPLIMIT"
        )
    _setsockopt(sock, socket.SOL_SOCKET, constants.SO_RXQ_OVFL, 1, "set SO_RXQ_OVFL")


def set_ttl(sock: socket.socket, ttl: int) -> None:
    """TTL (IPv4) or hop limit (IPv6) of multicast datagrams sent: 0 keeps them on this host."""
    if not 0 <= ttl <= 255:
        raise ValueError(f"TTL {ttl} is out of range (0-255)")
    if sock.family == socket.AF_INET:
        _setsockopt(sock, socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl, f"set TTL {ttl}")
    else:
        _setsockopt(
            sock, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl, f"set hop limit {ttl}"
        )


def set_unicast_ttl(sock: socket.socket, ttl: int) -> None:
    """TTL (IPv4) or hop limit (IPv6) of unicast datagrams sent, such as replies to a prober."""
    if not 1 <= ttl <= 255:
        raise ValueError(f"unicast TTL {ttl} is out of range (1-255)")
    if sock.family == socket.AF_INET:
        _setsockopt(sock, socket.IPPROTO_IP, socket.IP_TTL, ttl, f"set unicast TTL {ttl}")
    else:
        _setsockopt(
            sock, socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl, f"set unicast hop limit {ttl}"
        )


def set_loopback(sock: socket.socket, enabled: bool) -> None:
    """Whether this host's own receivers get the multicast datagrams this socket sends."""
    option = (
        socket.IP_MULTICAST_LOOP if sock.family == socket.AF_INET else socket.IPV6_MULTICAST_LOOP
    )
    state = "on" if enabled else "off"
    _setsockopt(sock, _level(sock), option, int(enabled), f"turn multicast loopback {state}")


def interface_index(interface: InterfaceSpec | None) -> int:
    """Index of an interface given by name, index or address; 0 (the kernel's choice) for None."""
    if interface is None:
        return 0
    return resolve_interface(interface).index


def set_send_interface(sock: socket.socket, interface: InterfaceSpec | None) -> None:
    """The interface that multicast datagrams leave by (None: the routing table decides)."""
    index = interface_index(interface)
    if sock.family == socket.AF_INET:
        request = struct.pack("=4s4si", bytes(4), bytes(4), index)  # struct ip_mreqn
        _setsockopt(
            sock, socket.IPPROTO_IP, socket.IP_MULTICAST_IF, request, f"send on {interface}"
        )
    else:
        _setsockopt(
            sock, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index, f"send on {interface}"
        )


def bind_socket(sock: socket.socket, address: str | IPAddress | None, port: int) -> None:
    """Bind to ``address`` (None: every address of the socket's family) and ``port``."""
    host = str(address) if address is not None else ("" if sock.family == socket.AF_INET else "::")
    try:
        sock.bind((host, port))
    except OSError as error:
        code = error.errno or errno.EINVAL
        raise SocketOptionError(
            code, f"cannot bind to {host or '0.0.0.0'} port {port}: {error.strerror or error}"
        ) from error


# --- membership ------------------------------------------------------------------------------


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


def _membership(
    sock: socket.socket,
    group: str | IPAddress | Group,
    interface: InterfaceSpec | None,
    source: str | IPAddress | None,
) -> Membership:
    parsed = parse_group(group)
    if parsed.family != sock.family:
        raise GroupError(f"group {parsed} is not of this socket's address family")
    index = interface_index(interface if interface is not None else parsed.interface)
    if source is None:
        return Membership(parsed, index)
    source_address = parse_address(source, what="source")
    if family_of(source_address) != sock.family:
        raise GroupError(f"source {source_address} and group {parsed} are of different families")
    return Membership(parsed, index, source_address)


def _apply(sock: socket.socket, membership: Membership, *, join: bool) -> None:
    _require_linux("group membership through MCAST_JOIN_GROUP")
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
    _setsockopt(sock, _level(sock), option, bytes(request), f"{verb} {membership}")


def join_group(
    sock: socket.socket,
    group: str | IPAddress | Group,
    interface: InterfaceSpec | None = None,
    source: str | IPAddress | None = None,
) -> Membership:
    """Join ``group`` on ``interface`` (any source, or only ``source`` for SSM)."""
    membership = _membership(sock, group, interface, source)
    _apply(sock, membership, join=True)
    return membership


def leave_group(
    sock: socket.socket,
    group: str | IPAddress | Group,
    interface: InterfaceSpec | None = None,
    source: str | IPAddress | None = None,
) -> Membership:
    """Leave a membership made by :func:`join_group` with the same arguments."""
    membership = _membership(sock, group, interface, source)
    _apply(sock, membership, join=False)
    return membership


# --- datagrams -------------------------------------------------------------------------------


def check_payload_size(family: socket.AddressFamily, size: int) -> None:
    """Raise :class:`MessageSizeError` if ``size`` bytes do not fit in one UDP datagram."""
    limit = constants.MAX_PAYLOAD[family]
    if size > limit:
        name = "IPv4" if family == socket.AF_INET else "IPv6"
        raise MessageSizeError(
            f"message of {size} bytes is over the {limit}-byte limit of one UDP/{name} datagram"
        )


def send_datagram(
    sock: socket.socket, payload: Payload, address: str | IPAddress | Group, port: int
) -> int:
    """Send one datagram to ``address`` (a group, or a unicast address for replies) and ``port``."""
    check_payload_size(sock.family, len(payload))
    return sock.sendto(payload, _destination(sock, address, port))


def _destination(
    sock: socket.socket, address: str | IPAddress | Group, port: int
) -> tuple[str, int] | tuple[str, int, int, int]:
    """The ``sendto`` address tuple of ``address`` and ``port`` (IPv6: with the zone's index)."""
    if isinstance(address, Group):
        host, zone = address.address.compressed, address.interface
    else:
        text = str(address)
        host, _, zone = text.partition("%")
    if sock.family == socket.AF_INET6:
        return (host, port, 0, interface_index(zone) if zone else 0)
    return (host, port)


def send_many(
    sock: socket.socket,
    payloads: Iterable[Payload],
    address: str | IPAddress | Group,
    port: int,
) -> int:
    """Send each payload as one datagram to ``address`` and ``port``; returns how many were sent.

    Stops early, returning the count so far, when a non-blocking socket would block. On
    Linux the datagrams go out in batches of up to 64 (``sendmmsg``,
    :mod:`multicast.core.batch`): a generator is advanced up to a batch ahead of what was
    sent, so one that paces its payloads should be sent one call per payload instead.
    """
    if batch.AVAILABLE and not sock.gettimeout():  # blocking or non-blocking, no timeout
        name = batch.encode_address(sock.family, _destination(sock, address, port))
        if name is not None:
            return batch.sender().send(sock, payloads, name)
    sent = 0
    for payload in payloads:
        try:
            send_datagram(sock, payload, address, port)
        except BlockingIOError:
            break
        sent += 1
    return sent


def receive_datagram(sock: socket.socket, buffer: bytearray, flags: int = 0) -> Datagram:
    """Read one datagram into ``buffer`` and return it with its metadata.

    A datagram longer than ``buffer`` comes back cut, with ``truncated`` set and ``size``
    giving its real length: never a silent cut.
    """
    nbytes, ancdata, msg_flags, address = sock.recvmsg_into(
        [buffer], _ANCILLARY_SPACE, flags | constants.MSG_TRUNC
    )
    meta = parse_ancillary(ancdata)
    kept = min(nbytes, len(buffer))
    return Datagram(
        payload=bytes(buffer[:kept]),
        source=(address[0], address[1]),
        group=meta.group,
        interface=meta.interface,
        ttl=meta.ttl,
        truncated=bool(msg_flags & constants.MSG_TRUNC),
        size=nbytes,
        drops=meta.drops,
    )


def receive_ready(sock: socket.socket, buffer: bytearray, limit: int = 1024) -> list[Datagram]:
    """Every datagram already queued on ``sock`` (at most ``limit``), without blocking.

    Payloads are cut at ``len(buffer)`` bytes. On Linux they are read in batches
    (``recvmmsg``, :mod:`multicast.core.batch`) into this thread's preallocated buffers,
    and ``buffer`` gives only that length.
    """
    if batch.AVAILABLE:
        return batch.receiver(len(buffer)).receive(sock, limit)
    ready: list[Datagram] = []
    while len(ready) < limit:
        try:
            ready.append(receive_datagram(sock, buffer, constants.MSG_DONTWAIT))
        except BlockingIOError:
            break
    return ready


def socket_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel has dropped on ``sock`` so far (Linux), None where unknown.

    The ``SO_RXQ_OVFL`` count a :class:`Datagram` carries is the drops *before* it was
    queued; this reads the socket's own counter (the ``drops`` column of ``/proc/net/udp``
    or ``udp6``, found by the socket's inode), so drops after the last datagram read count too.
    """
    table = "udp" if sock.family == socket.AF_INET else "udp6"
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        # thread-self: the table of this thread's network namespace, which may not be the
        # process's (a thread that entered another namespace with setns).
        lines = Path(f"/proc/thread-self/net/{table}").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 13 and fields[9] == inode:
            return int(fields[12])
    return None


def receive_batch(
    sock: socket.socket, buffer: bytearray, limit: int = 1024, timeout: float | None = None
) -> list[Datagram]:
    """Wait for a datagram, then return it with every other already queued (at most ``limit``).

    ``timeout`` is the longest wait in seconds (None: as long as it takes); after it the
    list is empty. On Linux a blocking socket with no timeout waits and reads in one
    ``recvmmsg`` call (``MSG_WAITFORONE``): one system call per wake-up, whatever the load.
    """
    if batch.AVAILABLE and timeout is None and sock.gettimeout() is None:
        return batch.receiver(len(buffer)).receive(sock, limit, wait=True)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if not poller.poll(None if timeout is None else max(0.0, timeout) * 1000):
        return []
    return receive_ready(sock, buffer, limit)


# ---------------------------------------------------------------------------------------------
# The usual configurations.


class Closing(ABC):
    """Something released by :meth:`close`; ``with`` closes it when the block ends."""

    @abstractmethod
    def close(self) -> None:
        """Release what this holds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


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


def _deadline(timeout: float | None) -> float | None:
    """The ``time.monotonic`` time at which ``timeout`` seconds from now end (None: never)."""
    return None if timeout is None else time.monotonic() + max(0.0, timeout)


class Receiver(_Endpoint):
    """A socket bound to ``port`` that joins groups and reads datagrams with their metadata.

    By default it is isolated (it never delivers a group it did not join), shares the port
    with other receivers on the host (``SO_REUSEADDR``) and reads whole datagrams.

    Deleting an interface takes its memberships away; :meth:`rejoin` brings them back once
    an interface of the same name exists again. After :meth:`watch_interfaces` the receiver
    does that by itself, on every call that receives.
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
        self.sock = new_socket(family)
        try:
            set_reuse(self.sock, port=reuse_port)
            if isolate:
                set_isolation(self.sock)
            enable_receive_metadata(self.sock)
            self.receive_buffer = (
                request_receive_buffer(self.sock, receive_buffer)
                if receive_buffer
                else self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            )
            bind_socket(self.sock, bind_address, port)
            self.sock.setblocking(blocking)
        except BaseException:
            self.sock.close()
            raise
        self.buffer = bytearray(max_size)
        self.memberships: list[Membership] = []
        # Memberships an interface took away when it was deleted, until rejoin() restores them.
        self.waiting: list[Membership] = []
        self.watcher: InterfaceWatcher | None = None
        self.drops = 0
        self.wrong_interface = 0  # IPv6 datagrams dropped for arriving where not joined
        self._joined_on: dict[str, frozenset[int]] = {}
        self._names: dict[Membership, str] = {}  # interface names of memberships on one

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def join(
        self,
        group: str | IPAddress | Group,
        interface: InterfaceSpec | None = None,
        source: str | IPAddress | None = None,
    ) -> Membership:
        membership = join_group(self.sock, group, interface, source)
        name = name_by_index(self.sock, membership.interface) if membership.interface else None
        if name is not None:
            self._names[membership] = name
        self.memberships.append(membership)
        self._joined_on = interfaces_by_group(self.memberships)
        return membership

    def leave(
        self,
        group: str | IPAddress | Group,
        interface: InterfaceSpec | None = None,
        source: str | IPAddress | None = None,
    ) -> Membership:
        membership = _membership(self.sock, group, interface, source)
        waiting = self._waiting_as(membership)
        if waiting is not None:  # its interface went away: the kernel holds nothing
            self.waiting.remove(waiting)
            self._names.pop(waiting, None)
            return waiting
        _apply(self.sock, membership, join=False)
        self.memberships.remove(membership)
        self._names.pop(membership, None)
        self._joined_on = interfaces_by_group(self.memberships)
        return membership

    def _waiting_as(self, membership: Membership) -> Membership | None:
        """The waiting membership that ``membership`` names: same group and source, and the
        same interface name (the interface may be back under a new index), or both routed."""
        name = name_by_index(self.sock, membership.interface) if membership.interface else None
        for waiting in self.waiting:
            if (waiting.group, waiting.source, self._names.get(waiting)) == (
                membership.group,
                membership.source,
                name,
            ) and (name is not None or waiting.interface == membership.interface == 0):
                return waiting
        return None

    def rejoin(self, removed: Iterable[int] = ()) -> list[Membership]:
        """Join again what deleted interfaces took away, where they are back; the new joins.

        ``removed`` are the indexes of interfaces deleted since the last call (what an
        :class:`~multicast.core.watch.InterfaceWatcher` reports). Their memberships move to
        :attr:`waiting`, as does any membership whose interface name has vanished or now
        belongs to another index, deleted or not. Waiting memberships are joined again on the
        interface of the same name, or, where the routing table chose the interface, wherever
        it now routes the group; those that cannot be yet keep waiting for the next call.
        An interface that only went down and up needs nothing: the kernel keeps memberships.
        """
        gone = {index for index in removed if index > 0}
        for membership in list(self.memberships):
            name = self._names.get(membership)
            moved = name is not None and index_by_name(self.sock, name) != membership.interface
            if moved or membership.interface in gone:
                self._quietly_leave(membership.group, membership.interface)
                self._wait_for_interface(membership)
        routed = [m for m in self.memberships if m.interface == 0]
        for index in gone:
            # The kernel joined these where the group was routed when they were made: leaving
            # the deleted interface succeeds only for a group that was joined there.
            for group in {m.group for m in routed if m in self.memberships}:
                if self._quietly_leave(group, index):
                    for membership in routed:
                        if membership.group == group:
                            self._wait_for_interface(membership)
        return self._join_waiting()

    def _quietly_leave(self, group: Group, index: int) -> bool:
        """Drop every membership of ``group`` on interface ``index`` from the kernel, even if
        the interface is gone; False if there was none."""
        try:
            _apply(self.sock, Membership(group, index), join=False)
        except SocketOptionError:
            return False
        return True

    def _wait_for_interface(self, membership: Membership) -> None:
        self.memberships.remove(membership)
        self.waiting.append(membership)

    def _join_waiting(self) -> list[Membership]:
        joined: list[Membership] = []
        for membership in list(self.waiting):
            name = self._names.get(membership)
            index = index_by_name(self.sock, name) if name is not None else 0
            if index is None:
                continue  # no interface of that name yet
            fresh = replace(membership, interface=index)
            try:
                _apply(self.sock, fresh, join=True)
            except SocketOptionError as error:
                if error.errno != errno.EADDRINUSE:  # e.g. no route to the group yet
                    continue
            self.waiting.remove(membership)
            if name is not None:
                del self._names[membership]
                self._names[fresh] = name
            self.memberships.append(fresh)
            joined.append(fresh)
        self._joined_on = interfaces_by_group(self.memberships)
        return joined

    def watch_interfaces(self) -> InterfaceWatcher:
        """From now on, act on interface changes before every receive: rejoin by itself.

        The watcher listens in the network namespace of the calling thread, which must be
        the socket's (call it where the receiver was made). It closes with the receiver.
        """
        if self.watcher is None:
            self.watcher = InterfaceWatcher()
        return self.watcher

    def follow_interfaces(self) -> list[Membership]:
        """Act on what the watcher reported since the last call (:meth:`rejoin`); the new joins."""
        if self.watcher is None:
            return []
        changes = self.watcher.changes()
        return self.rejoin(changes.removed) if changes else []

    def _wait(self, deadline: float | None) -> bool:
        """Wait for a datagram until ``deadline`` (``time.monotonic``; None: no limit), following
        interface changes meanwhile; True if one is queued."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        if self.watcher is not None:
            poller.register(self.watcher, select.POLLIN)
        while True:
            self.follow_interfaces()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = [fd for fd, _ in poller.poll(None if left is None else left * 1000)]
            if self.sock.fileno() in ready:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        super().close()

    def _accepted(self, datagram: Datagram) -> bool:
        self.drops = max(self.drops, datagram.drops)
        if arrived_as_joined(datagram, self._joined_on):
            return True
        self.wrong_interface += 1
        return False

    def receive(self, timeout: float | None = None) -> Datagram:
        """The next datagram; raises :class:`TimeoutError` after ``timeout`` seconds."""
        if self.watcher is not None:
            deadline = _deadline(timeout)
            while True:
                if not self._wait(deadline):
                    raise TimeoutError("timed out")
                try:
                    datagram = receive_datagram(self.sock, self.buffer, constants.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                if self._accepted(datagram):
                    return datagram
        if timeout is not None:
            self.sock.settimeout(timeout)
        while True:
            datagram = receive_datagram(self.sock, self.buffer)
            if self._accepted(datagram):
                return datagram

    def receive_ready(self, limit: int = 1024) -> list[Datagram]:
        """Every datagram already queued (at most ``limit``), without blocking."""
        self.follow_interfaces()
        return self._taken(receive_ready(self.sock, self.buffer, limit))

    def receive_batch(self, limit: int = 1024, timeout: float | None = None) -> list[Datagram]:
        """Wait for a datagram (``timeout`` seconds at most), then take every one queued.

        See :func:`receive_batch`; an empty list means the timeout passed.
        """
        if self.watcher is not None:
            if not self._wait(_deadline(timeout)):
                return []
            return self._taken(receive_ready(self.sock, self.buffer, limit))
        return self._taken(receive_batch(self.sock, self.buffer, limit, timeout))

    def _taken(self, ready: list[Datagram]) -> list[Datagram]:
        """Note the kernel's drop count; keep what arrived where its group was joined."""
        if ready:
            self.drops = max(self.drops, ready[-1].drops)
            if self._joined_on:
                kept = [d for d in ready if arrived_as_joined(d, self._joined_on)]
                self.wrong_interface += len(ready) - len(kept)
                ready = kept
        return ready


class Sender(_Endpoint):
    """A socket that sends multicast datagrams with a set TTL, interface and loopback."""

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

    def send(self, payload: Payload, group: str | IPAddress | Group, port: int) -> int:
        """Send ``payload`` to ``group`` and ``port``; returns the bytes sent."""
        return send_datagram(self.sock, payload, group, port)


def open_receiver(
    groups: Sequence[str | IPAddress | Group],
    port: int,
    *,
    interfaces: Sequence[InterfaceSpec] | InterfaceSpec | None = None,
    sources: Sequence[str | IPAddress | None] = (),
    every_interface: bool = False,
    bind_address: str | IPAddress | None = None,
    reuse_port: bool = False,
    isolate: bool = True,
    receive_buffer: int | None = None,
    max_size: int = constants.MAX_DATAGRAM,
    blocking: bool = True,
    watch_interfaces: bool = False,
) -> Receiver:
    """A :class:`Receiver` on ``port`` that joined every group on every interface given.

    ``interfaces`` None lets the routing table pick; ``every_interface`` joins on every
    multicast-capable interface with an address of the groups' family. With ``sources`` the
    joins are source-specific, one per (source, group). With ``watch_interfaces`` the
    receiver rejoins by itself after an interface it joined on is deleted and made again
    (see :meth:`Receiver.watch_interfaces`).
    """
    parsed = [parse_group(g) for g in groups]
    if not parsed:
        raise GroupError("no group to join")
    family = parsed[0].family
    if any(g.family != family for g in parsed):
        raise GroupError("groups mix IPv4 and IPv6; open one receiver per family")
    where: list[InterfaceSpec | None]
    if every_interface:
        where = list(multicast_interfaces(family))
    elif interfaces is None:
        where = [None]
    elif isinstance(interfaces, str | int | Interface) or not isinstance(interfaces, Sequence):
        where = [interfaces]
    else:
        where = list(interfaces)
    receiver = Receiver(
        port,
        family=family,
        bind_address=bind_address,
        reuse_port=reuse_port,
        isolate=isolate,
        receive_buffer=receive_buffer,
        max_size=max_size,
        blocking=blocking,
    )
    try:
        if watch_interfaces:  # before joining: no change may slip between the two
            receiver.watch_interfaces()
        for group in parsed:
            for interface in where:
                for source in sources or (None,):
                    receiver.join(group, interface, source)
    except BaseException:
        receiver.close()
        raise
    return receiver


# The batched fast path builds on the definitions above, so it is imported last.
from multicast.core import batch  # noqa: E402
