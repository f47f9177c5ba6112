"""What a received datagram carries, read from the kernel's ancillary data: pure, no socket.

:func:`parse_ancillary` turns the ``(level, type, data)`` records of ``recvmsg`` into the
destination group, arrival interface, TTL and drop count of a :class:`Datagram`; the batched
path (:mod:`multicast.core.batch`) feeds it the same records. :data:`ANCILLARY_SPACE` is the
room both leave for those records.

>>> import struct
>>> record = (socket.IPPROTO_IP, constants.IP_TTL, struct.pack("=i", 7))
>>> parse_ancillary([record, (socket.IPPROTO_IP, constants.IP_TTL, b"")])  # short: skipped
Ancillary(group=None, interface=None, ttl=7, drops=0)
>>> reply_address(Datagram(b"ping", ("fe80::1", 5000), interface=3))
('fe80::1', 5000, 0, 3)
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from multicast.core import constants
from multicast.exceptions import MessageSizeError

__all__ = [
    "ANCILLARY_SPACE",
    "Ancillary",
    "Datagram",
    "Payload",
    "SocketAddress",
    "check_payload_size",
    "parse_ancillary",
    "reply_address",
]

Payload = bytes | bytearray | memoryview
"""What may be sent as one datagram."""

SocketAddress = tuple[str, int] | tuple[str, int, int, int]
"""A ``sendto`` address: ``(host, port)``, or for IPv6 ``(host, port, flow info, scope)``."""

ANCILLARY_SPACE = (
    socket.CMSG_SPACE(20)  # in6_pktinfo (in_pktinfo is 12)
    + socket.CMSG_SPACE(4)  # TTL / hop limit
    + socket.CMSG_SPACE(4)  # SO_RXQ_OVFL drop counter
)
"""Bytes of ancillary data one received datagram may come with (what the receivers ask for)."""

_IN_PKTINFO = struct.Struct("=i4s4s")  # ipi_ifindex, ipi_spec_dst, ipi_addr
_IN6_PKTINFO = struct.Struct("=16si")  # ipi6_addr, ipi6_ifindex
_INT = struct.Struct("=i")
_UINT = struct.Struct("=I")


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
class Ancillary:
    """What the ancillary records of one datagram said (None: they did not say)."""

    group: str | None = None
    interface: int | None = None
    ttl: int | None = None
    drops: int = 0


def parse_ancillary(ancdata: Iterable[tuple[int, int, bytes]]) -> Ancillary:
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
    return Ancillary(group, interface, ttl, drops)


def reply_address(datagram: Datagram) -> SocketAddress:
    """Where to answer ``datagram``: its source, and for IPv6 the interface it arrived on.

    The arrival interface is the scope a link-local source needs (Linux ignores the scope
    of an address that needs none), so no name is looked up to answer.
    """
    host, port = datagram.source
    if ":" in host:
        return (host, port, 0, datagram.interface or 0)
    return (host, port)


def check_payload_size(family: socket.AddressFamily, size: int) -> None:
    """Raise :class:`MessageSizeError` if ``size`` bytes do not fit in one UDP datagram."""
    limit = constants.MAX_PAYLOAD[family]
    if size > limit:
        name = "IPv4" if family == socket.AF_INET else "IPv6"
        raise MessageSizeError(
            f"message of {size} bytes is over the {limit}-byte limit of one UDP/{name} datagram"
        )
