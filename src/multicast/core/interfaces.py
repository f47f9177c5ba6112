"""Network interfaces: list them, and resolve one by name, index or address.

Names and indexes come from ``if_nameindex``, flags and MTU from ``ioctl`` and
addresses from ``ifaddr`` (``getifaddrs``). All of them ask the kernel through a
socket, so they answer for the calling thread's network namespace.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from multicast.core import constants
from multicast.core.addresses import IPAddress, split_zone
from multicast.exceptions import InterfaceError

__all__ = [
    "Interface",
    "InterfaceSpec",
    "index_by_name",
    "interface_index",
    "list_interfaces",
    "multicast_interfaces",
    "name_by_index",
    "resolve_interface",
    "zone_index",
]


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface as the kernel describes it."""

    name: str
    index: int
    up: bool
    loopback: bool
    multicast: bool
    mtu: int
    ipv4: tuple[IPv4Address, ...] = ()
    ipv6: tuple[IPv6Address, ...] = ()

    def addresses(self, family: socket.AddressFamily) -> tuple[IPAddress, ...]:
        return self.ipv4 if family == socket.AF_INET else self.ipv6


InterfaceSpec = str | int | IPAddress | Interface


def _ioctl_int(probe: socket.socket, request: int, name: str, fmt: str) -> int:
    packed = struct.pack(f"16s{fmt}", name.encode()[:15], 0)
    result = fcntl.ioctl(probe.fileno(), request, packed)
    value: int = struct.unpack_from(fmt, result, 16)[0]
    return value


def _addresses() -> dict[str, list[IPAddress]]:
    import ifaddr  # noqa: PLC0415 (costs a tenth of the package's import time; rarely needed)

    found: dict[str, list[IPAddress]] = {}
    for adapter in ifaddr.get_adapters():
        for entry in adapter.ips:
            text = entry.ip[0] if isinstance(entry.ip, tuple) else entry.ip
            found.setdefault(adapter.name, []).append(ip_address(split_zone(text)[0]))
    return found


def list_interfaces() -> list[Interface]:
    """Every interface of this network namespace, in index order."""
    addresses = _addresses()
    interfaces = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for index, name in sorted(socket.if_nameindex()):
            try:
                flags = _ioctl_int(probe, constants.SIOCGIFFLAGS, name, "H")
                mtu = _ioctl_int(probe, constants.SIOCGIFMTU, name, "i")
            except OSError:
                continue  # vanished between the listing and the query
            own = addresses.get(name, [])
            interfaces.append(
                Interface(
                    name=name,
                    index=index,
                    up=bool(flags & constants.IFF_UP),
                    loopback=bool(flags & constants.IFF_LOOPBACK),
                    multicast=bool(flags & constants.IFF_MULTICAST),
                    mtu=mtu,
                    ipv4=tuple(a for a in own if isinstance(a, IPv4Address)),
                    ipv6=tuple(a for a in own if isinstance(a, IPv6Address)),
                )
            )
    return interfaces


def multicast_interfaces(family: socket.AddressFamily | None = None) -> list[Interface]:
    """Interfaces that are up and multicast-capable (with an address of ``family`` if given)."""
    return [
        i
        for i in list_interfaces()
        if i.up and i.multicast and (family is None or i.addresses(family))
    ]


def resolve_interface(spec: InterfaceSpec) -> Interface:
    """Find an interface by name (``'eth0'``), index (``2`` or ``'2'``) or one of its addresses."""
    if isinstance(spec, Interface):
        return spec
    interfaces = list_interfaces()
    text = str(spec).strip()
    match: list[Interface] = []
    if isinstance(spec, int) or text.isdigit():
        match = [i for i in interfaces if i.index == int(text)]
    if not match:
        match = [i for i in interfaces if i.name == text]
    if not match:
        try:
            address = ip_address(split_zone(text)[0])
        except ValueError:
            pass
        else:
            match = [i for i in interfaces if address in (*i.ipv4, *i.ipv6)]
    if not match:
        known = ", ".join(i.name for i in interfaces) or "none"
        raise InterfaceError(f"unknown interface {text!r} (interfaces here: {known})")
    return match[0]


def routed_interface(group: IPAddress) -> Interface | None:
    """The interface the routing table picks for ``group``: where the kernel joins a
    membership that names none. None when the route does not tell (no route; a link-local
    scope, which needs a zone; no address of the group's family on that interface)."""
    family = socket.AF_INET if group.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((group.compressed, 9))  # a route lookup: nothing is sent
            source = ip_address(split_zone(probe.getsockname()[0])[0])
        return resolve_interface(source) if not source.is_unspecified else None
    except (OSError, InterfaceError):
        return None


def interface_index(interface: InterfaceSpec | None) -> int:
    """Index of an interface given by name, index or address; 0 (the kernel's choice) for None."""
    if interface is None:
        return 0
    return resolve_interface(interface).index


_IFREQ_INDEX = struct.Struct("16si")  # struct ifreq: name, then ifr_ifindex


def index_by_name(sock: socket.socket, name: str) -> int | None:
    """Index of interface ``name`` in the network namespace of ``sock``; None if it has none.

    Unlike :func:`resolve_interface`, it asks through ``sock``, so it answers for the socket's
    namespace whichever thread calls it.
    """
    raw = os.fsencode(name)
    if not 0 < len(raw) <= constants.MAX_INTERFACE_NAME or b"\0" in raw:
        return None
    try:
        result = fcntl.ioctl(sock.fileno(), constants.SIOCGIFINDEX, _IFREQ_INDEX.pack(raw, 0))
    except OSError:
        return None
    index: int = _IFREQ_INDEX.unpack_from(result)[1]
    return index


def name_by_index(sock: socket.socket, index: int) -> str | None:
    """Name of interface ``index`` in the network namespace of ``sock``; None if it has none."""
    try:
        result = fcntl.ioctl(sock.fileno(), constants.SIOCGIFNAME, _IFREQ_INDEX.pack(b"", index))
    except (OSError, struct.error):
        return None
    return os.fsdecode(_IFREQ_INDEX.unpack_from(result)[0].split(b"\0", 1)[0])


def zone_index(sock: socket.socket, zone: str) -> int:
    """The interface index an IPv6 ``%zone`` names (an index, or a name asked through ``sock``).

    One ``ioctl`` at most, never a listing of every interface: resolve a zone once per
    destination, not per datagram.
    """
    if zone.isdigit():
        return int(zone)
    index = index_by_name(sock, zone)
    if index is None:
        raise InterfaceError(f"unknown interface {zone!r} in a %zone")
    return index
