"""Address truths: group, source, port and TTL parsing, zones, wildcards and families.

Pure functions, no I/O, never a DNS lookup. Every module of the package asks these instead
of writing its own check, so each rule has one wording and one error type: a bad address is
an :class:`~multicast.exceptions.AddressError` (a group: :class:`GroupError`, also for
groups that mix families), a bad port a :class:`PortError`, a bad TTL an
:class:`OptionError`.

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
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

from multicast.exceptions import AddressError, GroupError, OptionError, PortError

__all__ = [
    "MAX_CHANNELS",
    "MAX_TTL",
    "Channel",
    "Group",
    "GroupSpec",
    "IPAddress",
    "Scope",
    "common_family",
    "family_of",
    "parse_address",
    "parse_channel_lines",
    "parse_channels",
    "parse_group",
    "parse_port",
    "parse_ttl",
    "parse_whole",
    "split_zone",
    "wildcard_host",
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


GroupSpec = str | IPAddress | Group
"""A group as callers may give it: text (``'ff02::1%eth0'``), an address, or a :class:`Group`."""

_WILDCARD = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


def family_of(address: IPAddress) -> socket.AddressFamily:
    """The socket family of an address."""
    return socket.AF_INET if isinstance(address, IPv4Address) else socket.AF_INET6


def wildcard_host(family: socket.AddressFamily) -> str:
    """The host that binds every address of ``family``: ``0.0.0.0`` or ``::``.

    >>> wildcard_host(socket.AF_INET6)
    '::'
    """
    try:
        return _WILDCARD[family]
    except KeyError:
        raise AddressError(f"address family {family!r} is neither IPv4 nor IPv6") from None


def common_family(
    addresses: Iterable[IPAddress | Group], *, what: str = "groups"
) -> socket.AddressFamily:
    """The one family that all ``addresses`` share (``what`` names them in the error).

    Raises :class:`GroupError` if there are none, or if they mix IPv4 and IPv6.

    >>> common_family([parse_group("239.1.2.3"), IPv4Address("192.0.2.1")]).name
    'AF_INET'
    """
    listed = list(addresses)
    families = {a.family if isinstance(a, Group) else family_of(a) for a in listed}
    if len(families) == 1:
        return families.pop()
    if not listed:
        raise GroupError(f"no {what} given")
    named = ", ".join(str(a) for a in listed)
    raise GroupError(f"{what} {named} mix IPv4 and IPv6; use one family")


def split_zone(text: str, *, what: str = "address") -> tuple[str, str | None]:
    """Split ``'fe80::1%eth0'`` into the address and its zone (None when there is no ``%``).

    The zone is kept as written (a name or an index); an empty one is an
    :class:`AddressError` naming ``what``.

    >>> split_zone("fe80::1%eth0"), split_zone("239.1.2.3")
    (('fe80::1', 'eth0'), ('239.1.2.3', None))
    """
    host, percent, zone = text.partition("%")
    if not percent:
        return host, None
    if not zone:
        raise AddressError(f"{what} {text!r} has an empty %zone")
    return host, zone


def parse_address(value: str | IPAddress, *, what: str = "address") -> IPAddress:
    """Parse an IPv4 or IPv6 literal (an IPv6 ``%zone`` is dropped); never resolve a name."""
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    text = str(value).strip()
    host, _ = split_zone(text, what=what)
    try:
        address = ip_address(host)
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
    try:
        if isinstance(value, str):
            text, zone = split_zone(text, what="group")
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


# A whole number as text: ASCII decimal digits with an optional sign, spaces around allowed.
# Not Python's int() rule, which also takes '5_000' and digits of other scripts ('\u0665').
_WHOLE = re.compile(r"[ \t]*[+-]?[0-9]+[ \t]*")


def parse_whole(value: object, what: str | None = None) -> int:
    """``value`` as an ``int``: an ``int`` (not a ``bool``) or its ASCII decimal digits.

    Anything else (a float, ``'5_000'``, ``'\u0665'``, ``True``) raises :class:`OptionError`
    naming ``what`` and the value.

    >>> parse_whole(" 42 "), parse_whole(-3)
    (42, -3)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        return int(value)
    named = f"{what} {value!r}" if what else repr(value)
    raise OptionError(f"{named} is not a whole number")


def parse_port(value: int | str, *, allow_zero: bool = False) -> int:
    """Parse a UDP port: 1-65535, or 0-65535 with ``allow_zero`` (0 asks for any free port).

    An ``int`` or its decimal digits (:func:`parse_whole`); else :class:`PortError`.
    """
    try:
        port = parse_whole(value, "port")
    except OptionError as error:
        raise PortError(str(error)) from None
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise PortError(f"port {port} is out of range ({low}-65535)")
    return port


MAX_TTL = 255
"""The largest TTL (IPv6: hop limit) the IP header holds."""


def parse_ttl(value: int | str, *, unicast: bool = False) -> int:
    """Parse a TTL (IPv6: hop limit): a whole number from 0 to :data:`MAX_TTL`.

    0 keeps multicast datagrams on this host; a ``unicast`` TTL starts at 1, since a
    unicast datagram with TTL 0 could go nowhere. Raises :class:`OptionError`.

    >>> parse_ttl("64"), parse_ttl(0)
    (64, 0)
    """
    ttl = parse_whole(value, "TTL")
    low = 1 if unicast else 0
    if not low <= ttl <= MAX_TTL:
        kind = "unicast TTL" if unicast else "TTL"
        raise OptionError(f"{kind} {ttl} is out of range ({low}-{MAX_TTL})")
    return ttl


MAX_CHANNELS = 65536
"""The most groups one ``GROUP+N`` shorthand, or one list of channels, may name."""


@dataclass(frozen=True, slots=True)
class Channel:
    """A group to join: from any source (``source`` None) or, as an SSM (S,G) channel, from
    one source only."""

    group: Group
    source: IPAddress | None = None

    def __str__(self) -> str:
        return f"{self.source},{self.group}" if self.source is not None else str(self.group)


def _consecutive(first: Group, count: int) -> list[Group]:
    """``count`` groups from ``first`` on, each the address after the one before."""
    last = first.address + (count - 1)  # raises if it runs off the end of the family
    if not parse_group(last).address.is_multicast:
        raise GroupError(f"{first}+{count} runs past the last multicast group ({last})")
    return [Group(first.address + offset, first.interface) for offset in range(count)]


def parse_channels(text: str) -> list[Channel]:
    """The channels one command-line word names: ``GROUP``, ``GROUP+N`` (N consecutive groups
    from GROUP on), ``SOURCE,GROUP`` (a source-specific pair) or ``SOURCE,GROUP+N``.

    A group may carry an IPv6 ``%zone`` (``ff02::1%eth0+4``); source and group are of one
    family. Raises :class:`GroupError` (or :class:`AddressError` for the source) naming the
    text; never a DNS lookup.

    >>> [str(c) for c in parse_channels("239.1.0.254+3")]
    ['239.1.0.254', '239.1.0.255', '239.1.1.0']
    >>> parse_channels("192.0.2.1,232.1.1.1")
    [Channel(group=Group(address=IPv4Address('232.1.1.1'), interface=None), source=IPv4Address('192.0.2.1'))]
    """
    word = text.strip()
    source_text, comma, group_text = word.rpartition(",")
    source: IPAddress | None = None
    if comma:
        source = parse_address(source_text, what="source")
        if source.is_multicast:
            raise AddressError(f"source {source_text!r} in {text!r} is a multicast address")
    base, plus, count_text = group_text.rpartition("+")
    if not plus:
        base, count_text = group_text, "1"
    if not (count_text.isascii() and count_text.isdecimal()) or not (
        1 <= int(count_text) <= MAX_CHANNELS
    ):
        raise GroupError(
            f"{text!r}: the count after + must be a whole number from 1 to {MAX_CHANNELS}"
        )
    first = parse_group(base)
    if source is not None and family_of(source) != first.family:
        raise GroupError(f"{text!r}: source and group are of different families")
    try:
        groups = _consecutive(first, int(count_text))
    except (AddressError, ValueError):
        raise GroupError(f"{text!r} runs past the last multicast group") from None
    return [Channel(group, source) for group in groups]


def parse_channel_lines(text: str, *, origin: str = "groups file") -> list[Channel]:
    """The channels of a groups file: words as :func:`parse_channels` reads them, separated
    by white space or new lines; ``#`` starts a comment. Duplicates are dropped, order kept.

    An error names ``origin`` and the line. More than :data:`MAX_CHANNELS` channels, or
    channels of both families, are refused.

    >>> [str(c) for c in parse_channel_lines("239.1.1.1  # news\\n239.1.1.1 239.1.1.2+2")]
    ['239.1.1.1', '239.1.1.2', '239.1.1.3']
    """
    channels: dict[Channel, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        for word in line.partition("#")[0].split():
            try:
                channels.update(dict.fromkeys(parse_channels(word)))
            except AddressError as error:
                raise GroupError(f"{origin}, line {number}: {error}") from None
            if len(channels) > MAX_CHANNELS:
                raise GroupError(f"{origin} names more than {MAX_CHANNELS} channels")
    listed = list(channels)
    if listed:
        common_family([channel.group for channel in listed], what=f"groups of {origin}")
    return listed
