"""Group, source and port parsing: pure functions, no I/O, never a DNS lookup.

>>> g = parse_group("239.1.2.3")
>>> g.scope, g.source_specific
(<Scope.ADMIN: 'admin'>, False)
>>> parse_group("ff02::1%lo")
Group(address=IPv6Address('ff02::1'), interface='lo')
>>> parse_group("ff3e::8000:1").source_specific
True
>>> parse_group("10.0.0.1")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
multicast.exceptions.GroupError: '10.0.0.1' is not a multicast address (IPv4 multicast is ...)
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

from multicast.exceptions import AddressError, GroupError, PortError

__all__ = [
    "Group",
    "IPAddress",
    "Scope",
    "family_of",
    "parse_address",
    "parse_group",
    "parse_port",
]

IPAddress = IPv4Address | IPv6Address

_IPV4_MULTICAST = IPv4Network("224.0.0.0/4")
_IPV4_LINK_LOCAL = IPv4Network("224.0.0.0/24")
_IPV4_SSM = IPv4Network("232.0.0.0/8")
_IPV4_ADMIN = IPv4Network("239.0.0.0/8")


class Scope(enum.Enum):
    """How far a group's datagrams are meant to travel."""

    INTERFACE_LOCAL = "interface-local"
    LINK_LOCAL = "link-local"
    ADMIN = "admin"  # administratively scoped: admin-, site- and organization-local
    GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class Group:
    """A multicast group address, with the interface named by an IPv6 ``%zone`` if any."""

    address: IPAddress
    interface: str | None = None

    @property
    def family(self) -> socket.AddressFamily:
        return family_of(self.address)

    @property
    def scope(self) -> Scope:
        if isinstance(self.address, IPv4Address):
            if self.address in _IPV4_LINK_LOCAL:
                return Scope.LINK_LOCAL
            if self.address in _IPV4_ADMIN:
                return Scope.ADMIN
            return Scope.GLOBAL
        nibble = self.address.packed[1] & 0x0F
        if nibble == 0x1:
            return Scope.INTERFACE_LOCAL
        if nibble == 0x2:
            return Scope.LINK_LOCAL
        if nibble == 0xE:
            return Scope.GLOBAL
        return Scope.ADMIN

    @property
    def source_specific(self) -> bool:
        """True in the SSM ranges 232.0.0.0/8 and ff3x::/32 (RFC 4607)."""
        if isinstance(self.address, IPv4Address):
            return self.address in _IPV4_SSM
        packed = self.address.packed
        return packed[1] >> 4 == 0x3 and packed[2:4] == b"\x00\x00"

    def __str__(self) -> str:
        text = self.address.compressed
        return f"{text}%{self.interface}" if self.interface else text


def family_of(address: IPAddress) -> socket.AddressFamily:
    """The socket family of an address."""
    return socket.AF_INET if isinstance(address, IPv4Address) else socket.AF_INET6


def parse_address(value: str | IPAddress, *, what: str = "address") -> IPAddress:
    """Parse an IPv4 or IPv6 literal (an IPv6 ``%zone`` is dropped); never resolve a name."""
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    text = str(value).strip()
    try:
        address = ip_address(text.split("%", 1)[0])
    except ValueError:
        raise AddressError(
            f"{what} {text!r} is not an IP address; names are never looked up in DNS"
        ) from None
    return address


def parse_group(value: str | IPAddress | Group) -> Group:
    """Parse and validate a multicast group; ``'ff02::1%eth0'`` keeps ``eth0`` as the interface."""
    if isinstance(value, Group):
        return value
    text = str(value).strip()
    zone: str | None = None
    if isinstance(value, str) and "%" in text:
        text, zone = text.split("%", 1)
        if not zone:
            raise GroupError(f"group {value!r} has an empty %zone")
    try:
        address = parse_address(text, what="group")
    except AddressError as error:
        raise GroupError(str(error)) from None
    if isinstance(address, IPv4Address):
        if zone is not None:
            raise GroupError(f"group {value!r}: a %zone is only meaningful for IPv6")
        if address not in _IPV4_MULTICAST:
            raise GroupError(f"{text!r} is not a multicast address (IPv4 multicast is 224.0.0.0/4)")
    elif not address.is_multicast:
        raise GroupError(f"{text!r} is not a multicast address (IPv6 multicast is ff00::/8)")
    return Group(address, zone)


def parse_port(value: int | str, *, allow_zero: bool = False) -> int:
    """Parse a UDP port: 1-65535, or 0-65535 with ``allow_zero`` (0 asks for any free port)."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise PortError(f"port {value!r} is not a whole number") from None
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise PortError(f"port {port} is out of range ({low}-65535)")
    return port
