"""Whole IP packets carrying IGMP or MLD, as a packet socket sees them: parse, no I/O.

:func:`decode_packet` checks the IPv4 or IPv6 header (and IPv6 extension headers) of bytes
taken off a link, finds the IGMP or MLD message inside and decodes it. Like the message
decoders it treats its input as hostile and raises
:class:`~multicast.group_management.messages.MessageError` for anything else.

The Router Alert option (RFC 2113, RFC 2711) that IGMP and MLD messages carry is defined here
too, as the bytes a sending socket puts in its packets.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from multicast.core import IPAddress
from multicast.group_management.messages import (
    Message,
    MessageError,
    Protocol,
    decode_igmp,
    decode_mld,
)

__all__ = [
    "IPV4_ROUTER_ALERT",
    "IPV6_ROUTER_ALERT_HOP_BY_HOP",
    "Packet",
    "decode_packet",
]

# IPv4 option: copied flag + option 20, length 4, value 0 ("examine this packet").
IPV4_ROUTER_ALERT = bytes([0x94, 0x04, 0x00, 0x00])
# IPv6 hop-by-hop header: next header (the kernel fills it in), length 0 (8 bytes), Router
# Alert (type 5, length 2, value 0: MLD), then PadN of 2 bytes to end on 8 bytes.
IPV6_ROUTER_ALERT_HOP_BY_HOP = bytes([0, 0, 5, 2, 0, 0, 1, 0])

_IGMP = 2
_ICMPV6 = 58
_HOP_BY_HOP = 0
_ROUTING = 43
_FRAGMENT = 44
_DESTINATION_OPTIONS = 60
_MAX_EXTENSION_HEADERS = 8  # bound on the chain walked; MLD packets carry one
_IPV4_ROUTER_ALERT_TYPE = 0x94
_IPV6_ROUTER_ALERT_TYPE = 5


@dataclass(frozen=True, slots=True)
class Packet:
    """An IGMP or MLD message and the IP header fields that matter for it."""

    protocol: Protocol
    source: IPAddress
    destination: IPAddress
    ttl: int  # IPv6: the hop limit; group management is sent with 1
    router_alert: bool
    message: Message


def _ipv4_router_alert(options: bytes) -> bool:
    """Whether IPv4 ``options`` hold a Router Alert (a malformed list is an error)."""
    at = 0
    while at < len(options):
        kind = options[at]
        if kind == 0:  # end of the option list
            return False
        if kind == 1:  # no operation: one byte
            at += 1
            continue
        if at + 1 >= len(options) or options[at + 1] < 2 or at + options[at + 1] > len(options):
            raise MessageError("IPv4 option list is malformed")
        if kind == _IPV4_ROUTER_ALERT_TYPE:
            return True
        at += options[at + 1]
    return False


def _parse_ipv4(data: bytes) -> Packet:
    if len(data) < 20:
        raise MessageError(f"IPv4 packet of {len(data)} bytes is shorter than its header")
    version_length, _, total, _, fragment, ttl, protocol = struct.unpack_from("!BBHHHBB", data)
    header = (version_length & 0x0F) * 4
    if version_length >> 4 != 4 or header < 20 or header > total or total > len(data):
        raise MessageError("IPv4 header is malformed")
    if fragment & 0x3FFF:  # more fragments, or an offset: group management is never fragmented
        raise MessageError("IPv4 packet is a fragment")
    if protocol != _IGMP:
        raise MessageError(f"IPv4 packet of protocol {protocol} is not IGMP")
    return Packet(
        Protocol.IGMP,
        IPv4Address(data[12:16]),
        IPv4Address(data[16:20]),
        ttl,
        _ipv4_router_alert(data[20:header]),
        decode_igmp(data[header:total]),
    )


def _ipv6_router_alert(options: bytes) -> bool:
    """Whether the options of a hop-by-hop header hold a Router Alert."""
    at = 0
    while at < len(options):
        kind = options[at]
        if kind == 0:  # Pad1
            at += 1
            continue
        if at + 1 >= len(options) or at + 2 + options[at + 1] > len(options):
            raise MessageError("IPv6 hop-by-hop options are malformed")
        if kind == _IPV6_ROUTER_ALERT_TYPE:
            return True
        at += 2 + options[at + 1]
    return False


def _parse_ipv6(data: bytes) -> Packet:
    if len(data) < 40:
        raise MessageError(f"IPv6 packet of {len(data)} bytes is shorter than its header")
    first, payload_length, following, hop_limit = struct.unpack_from("!IHBB", data)
    if first >> 28 != 6 or 40 + payload_length > len(data):
        raise MessageError("IPv6 header is malformed")
    end = 40 + payload_length
    source, destination = IPv6Address(data[8:24]), IPv6Address(data[24:40])
    at = 40
    router_alert = False
    for _ in range(_MAX_EXTENSION_HEADERS):
        if following == _ICMPV6:
            message = decode_mld(data[at:end], source, destination)
            return Packet(Protocol.MLD, source, destination, hop_limit, router_alert, message)
        if following not in (_HOP_BY_HOP, _ROUTING, _DESTINATION_OPTIONS, _FRAGMENT):
            raise MessageError(f"IPv6 packet of next header {following} is not ICMPv6")
        if following == _FRAGMENT:
            raise MessageError("IPv6 packet is a fragment")
        if at + 8 > end:
            raise MessageError("IPv6 extension header runs past the packet")
        length = 8 + 8 * data[at + 1]
        if at + length > end:
            raise MessageError("IPv6 extension header runs past the packet")
        if following == _HOP_BY_HOP:
            if at != 40:
                raise MessageError("IPv6 hop-by-hop header is not the first")
            router_alert = _ipv6_router_alert(data[at + 2 : at + length])
        following = data[at]
        at += length
    raise MessageError(f"IPv6 packet has more than {_MAX_EXTENSION_HEADERS} extension headers")


def decode_packet(data: bytes | bytearray | memoryview, family: socket.AddressFamily) -> Packet:
    """The IGMP (``AF_INET``) or MLD (``AF_INET6``) message of a whole IP packet."""
    raw = bytes(data)
    if family == socket.AF_INET:
        return _parse_ipv4(raw)
    if family == socket.AF_INET6:
        return _parse_ipv6(raw)
    raise MessageError(f"address family {family!r} carries neither IGMP nor MLD")
