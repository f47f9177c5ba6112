"""The raw sockets of IGMP and MLD at the edge: hear every message on a link, send queries.

Both need ``CAP_NET_RAW`` (root, or the capability given to the program); without it they
raise :class:`RawSocketPermissionError`, a ``PermissionError`` (exit code 77 on the command
line), with one line saying so.

* :class:`LinkListener` is a packet socket on one interface with a kernel filter (classic
  BPF) that lets through only IGMP and the four MLD types. It sees the messages other hosts
  send, whatever group they go to, and those this host sends (``outgoing``), which is how to
  check that a join leaves by the intended interface.
* :class:`QuerySender` sends queries as RFC 3376 and RFC 3810 ask: IGMP from the interface's
  IPv4 address with TTL 1 and the IPv4 Router Alert option; MLD from its link-local address
  with hop limit 1 and a hop-by-hop header holding the Router Alert. Loopback is on, so this
  host answers its own queries like any other. It never reads: a filter drops all input.
"""

from __future__ import annotations

import ctypes
import errno
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address

from multicast.core import (
    Closing,
    Interface,
    InterfaceSpec,
    IPAddress,
    resolve_interface,
    set_loopback,
    set_send_interface,
    set_ttl,
)
from multicast.exceptions import InterfaceError, MulticastError, SocketOptionError
from multicast.group_management.messages import MessageError, Protocol, encode_igmp, encode_mld
from multicast.group_management.packets import (
    IPV4_ROUTER_ALERT,
    IPV6_ROUTER_ALERT_HOP_BY_HOP,
    Packet,
    decode_packet,
)
from multicast.group_management.querier import Outgoing

__all__ = [
    "Heard",
    "LinkListener",
    "QuerySender",
    "RawSocketPermissionError",
    "group_management_filter",
    "listen",
]

_ETH_P_ALL = 0x0003
_ETH_P_IP = 0x0800
_ETH_P_IPV6 = 0x86DD
_SOL_PACKET = 263
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_ALLMULTI = 2
_PACKET_OUTGOING = 4
_SO_ATTACH_FILTER = 26
_IP_OPTIONS = 4
_IPV6_HOPOPTS = 54
_READ_LIMIT = 256  # packets read in one go before the caller sees them
_SNAP = 0xFFFF  # bytes of each accepted packet the filter keeps: all of them

# Classic BPF (linux/filter.h): opcodes used below.
_LD_W_ABS = 0x20
_LD_B_ABS = 0x30
_JEQ = 0x15
_JGE = 0x35
_JGT = 0x25
_RET = 0x06
_SKF_AD_PROTOCOL = 0xFFFFF000  # SKF_AD_OFF + SKF_AD_PROTOCOL: the frame's EtherType


class RawSocketPermissionError(MulticastError, PermissionError):
    """This process may not open raw sockets (it lacks ``CAP_NET_RAW``)."""


def _open(family: int, kind: int, protocol: int, purpose: str) -> socket.socket:
    try:
        return socket.socket(family, kind, protocol)
    except PermissionError:
        raise RawSocketPermissionError(
            f"{purpose} needs a raw socket, and this process lacks CAP_NET_RAW: run it as root "
            "(or with that capability)"
        ) from None


def _refused(error: OSError, what: str) -> SocketOptionError:
    """The kernel refused to ``what``: its errno, and one line naming what was refused."""
    if isinstance(error, SocketOptionError):
        return error
    return SocketOptionError(error.errno or errno.EIO, f"cannot {what}: {error.strerror or error}")


# Instructions with symbolic jumps: (opcode, k, label if true, label if false); a label of
# None falls through. Jumps only go forward, as classic BPF requires.
_Step = tuple[int, int, str | None, str | None]

_GROUP_MANAGEMENT: list[tuple[str | None, _Step]] = [
    (None, (_LD_W_ABS, _SKF_AD_PROTOCOL, None, None)),
    (None, (_JEQ, _ETH_P_IP, "ipv4", None)),
    (None, (_JEQ, _ETH_P_IPV6, "ipv6", "drop")),
    ("ipv4", (_LD_B_ABS, 9, None, None)),  # IPv4 protocol
    (None, (_JEQ, 2, "accept", "drop")),  # IGMP
    ("ipv6", (_LD_B_ABS, 6, None, None)),  # IPv6 next header
    (None, (_JEQ, 0, "accept", None)),  # hop-by-hop: MLD carries one; the decoder checks
    (None, (_JEQ, 58, None, "drop")),  # ICMPv6 without extension headers
    (None, (_LD_B_ABS, 40, None, None)),  # its type
    (None, (_JEQ, 143, "accept", None)),  # MLDv2 report
    (None, (_JGE, 130, None, "drop")),
    (None, (_JGT, 132, "drop", "accept")),  # 130-132: query, MLDv1 report, done
    ("drop", (_RET, 0, None, None)),
    ("accept", (_RET, _SNAP, None, None)),
]


def _assemble(program: list[tuple[str | None, _Step]]) -> bytes:
    """Classic BPF instructions (``struct sock_filter``) with the labels made offsets."""
    where = {label: index for index, (label, _) in enumerate(program) if label}
    code = []
    for index, (_, (opcode, k, if_true, if_false)) in enumerate(program):
        jt = where[if_true] - index - 1 if if_true else 0
        jf = where[if_false] - index - 1 if if_false else 0
        code.append(struct.pack("=HBBI", opcode, jt, jf, k))
    return b"".join(code)


def group_management_filter() -> bytes:
    """A filter passing IPv4 IGMP and IPv6 packets that may be MLD, dropping the rest."""
    return _assemble(_GROUP_MANAGEMENT)


_DROP_ALL = _assemble([(None, (_RET, 0, None, None))])


def _attach_filter(sock: socket.socket, program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    address = ctypes.addressof(buffer)
    fprog = struct.pack("HP", len(program) // 8, address)  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError as error:
        raise _refused(error, "attach a packet filter") from error


@dataclass(frozen=True, slots=True)
class Heard:
    """A packet a :class:`LinkListener` took off its link, and what it holds.

    ``at`` is ``time.monotonic()`` when it was read; ``outgoing`` is true for packets this
    host sent. ``packet`` is None when the packet is not a well-formed IGMP/MLD message, and
    ``problem`` then says why.
    """

    at: float
    interface: str
    outgoing: bool
    packet: Packet | None
    problem: str | None = None


class LinkListener(Closing):
    """Every IGMP and MLD packet on ``interface``, incoming and outgoing; a context manager.

    It also asks the interface to pass up all multicast frames (``PACKET_MR_ALLMULTI``) so
    that a network card filtering by address hands over reports for groups not joined here.
    """

    def __init__(self, interface: InterfaceSpec) -> None:
        self.interface = resolve_interface(interface)
        self.sock = _open(
            socket.AF_PACKET,
            socket.SOCK_DGRAM,
            socket.htons(_ETH_P_ALL),
            f"listening to IGMP and MLD on {self.interface.name}",
        )
        try:
            _attach_filter(self.sock, group_management_filter())
            self.sock.bind((self.interface.name, _ETH_P_ALL))
            membership = struct.pack("iHH8s", self.interface.index, _PACKET_MR_ALLMULTI, 0, b"")
            self.sock.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP, membership)
            self.sock.setblocking(False)
        except OSError as error:
            self.sock.close()
            raise _refused(error, f"listen on {self.interface.name}") from error

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def ready(self) -> list[Heard]:
        """What has arrived so far (without waiting)."""
        heard = []
        for _ in range(_READ_LIMIT):
            try:
                data, address = self.sock.recvfrom(_SNAP)
            except BlockingIOError:
                break
            heard.append(self._decode(data, address))
        return heard

    def _decode(self, data: bytes, address: tuple[str, int, int, int, bytes]) -> Heard:
        name, protocol, kind = address[0], address[1], address[2]
        outgoing = kind == _PACKET_OUTGOING
        now = time.monotonic()
        family = socket.AF_INET if protocol == _ETH_P_IP else socket.AF_INET6
        try:
            return Heard(now, name, outgoing, decode_packet(data, family))
        except MessageError as error:
            return Heard(now, name, outgoing, None, str(error))

    def receive(self, timeout: float) -> list[Heard]:
        """What arrives within ``timeout`` seconds (maybe nothing)."""
        return listen([self], timeout)


def listen(listeners: Sequence[LinkListener], timeout: float) -> list[Heard]:
    """What arrives on any of ``listeners`` within ``timeout`` seconds (all that is ready)."""
    readable, _, _ = select.select(listeners, [], [], max(0.0, timeout))
    return [heard for listener in readable for heard in listener.ready()]


def _own_address(interface: Interface, protocol: Protocol) -> IPAddress:
    """The address queries leave from: the first IPv4 address, or the IPv6 link-local one."""
    if protocol is Protocol.IGMP:
        if interface.ipv4:
            return interface.ipv4[0]
        raise InterfaceError(f"interface {interface.name} has no IPv4 address to send IGMP from")
    link_local = [a for a in interface.ipv6 if a.is_link_local]
    if link_local:
        return link_local[0]
    raise InterfaceError(
        f"interface {interface.name} has no IPv6 link-local address to send MLD from "
        f"(is it up? 'ip -6 addr show dev {interface.name}')"
    )


class QuerySender(Closing):
    """A raw socket that sends ``protocol`` queries on ``interface``; a context manager."""

    def __init__(self, protocol: Protocol, interface: InterfaceSpec) -> None:
        self.protocol = protocol
        self.interface = resolve_interface(interface)
        self.address = _own_address(self.interface, protocol)
        purpose = f"sending {protocol.value} queries on {self.interface.name}"
        if protocol is Protocol.IGMP:
            self.sock = _open(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP, purpose)
        else:
            self.sock = _open(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6, purpose)
        try:
            self._configure()
        except BaseException:
            self.sock.close()
            raise

    def _configure(self) -> None:
        _attach_filter(self.sock, _DROP_ALL)
        set_ttl(self.sock, 1)
        set_send_interface(self.sock, self.interface)
        set_loopback(self.sock, True)
        if self.protocol is Protocol.IGMP:
            level, option, value = socket.IPPROTO_IP, _IP_OPTIONS, IPV4_ROUTER_ALERT
            bound: tuple[str, int] | tuple[str, int, int, int] = (str(self.address), 0)
        else:
            level, option, value = socket.IPPROTO_IPV6, _IPV6_HOPOPTS, IPV6_ROUTER_ALERT_HOP_BY_HOP
            bound = (str(self.address), 0, 0, self.interface.index)
        try:
            self.sock.setsockopt(level, option, value)
            self.sock.bind(bound)
        except OSError as error:
            what = (
                f"set up {self.protocol.value} queries from {self.address} on {self.interface.name}"
            )
            raise _refused(error, what) from error

    def close(self) -> None:
        self.sock.close()

    def send(self, outgoing: Outgoing) -> None:
        """Send one query to its destination."""
        destination = outgoing.destination
        if self.protocol is Protocol.IGMP:
            payload = encode_igmp(outgoing.query)
            target: tuple[str, int] | tuple[str, int, int, int] = (str(destination), 0)
        else:
            source = IPv6Address(self.address)
            payload = encode_mld(outgoing.query, source, IPv6Address(destination))
            target = (str(destination), 0, 0, self.interface.index)
        try:
            self.sock.sendto(payload, target)
        except OSError as error:
            what = f"send a {self.protocol.value} query to {destination} on {self.interface.name}"
            raise _refused(error, what) from error
