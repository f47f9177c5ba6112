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

import select
import socket
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
from multicast.core.raw import (
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_LD_B_ABS,
    BPF_LD_W_ABS,
    BPF_RET,
    ETH_P_IP,
    ETH_P_IPV6,
    PACKET_OUTGOING,
    SKF_AD_PROTOCOL,
    Step,
    assemble,
    attach_filter,
    open_packet_socket,
    open_raw,
    refused,
)
from multicast.exceptions import InterfaceError, RawSocketPermissionError
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

_IP_OPTIONS = 4
_IPV6_HOPOPTS = 54
_READ_LIMIT = 256  # packets read in one go before the caller sees them
_SNAP = 0xFFFF  # bytes of each accepted packet the filter keeps: all of them

_GROUP_MANAGEMENT: list[tuple[str | None, Step]] = [
    (None, (BPF_LD_W_ABS, SKF_AD_PROTOCOL, None, None)),
    (None, (BPF_JEQ, ETH_P_IP, "ipv4", None)),
    (None, (BPF_JEQ, ETH_P_IPV6, "ipv6", "drop")),
    ("ipv4", (BPF_LD_B_ABS, 9, None, None)),  # IPv4 protocol
    (None, (BPF_JEQ, 2, "accept", "drop")),  # IGMP
    ("ipv6", (BPF_LD_B_ABS, 6, None, None)),  # IPv6 next header
    (None, (BPF_JEQ, 0, "accept", None)),  # hop-by-hop: MLD carries one; the decoder checks
    (None, (BPF_JEQ, 58, None, "drop")),  # ICMPv6 without extension headers
    (None, (BPF_LD_B_ABS, 40, None, None)),  # its type
    (None, (BPF_JEQ, 143, "accept", None)),  # MLDv2 report
    (None, (BPF_JGE, 130, None, "drop")),
    (None, (BPF_JGT, 132, "drop", "accept")),  # 130-132: query, MLDv1 report, done
    ("drop", (BPF_RET, 0, None, None)),
    ("accept", (BPF_RET, _SNAP, None, None)),
]


def group_management_filter() -> bytes:
    """A filter passing IPv4 IGMP and IPv6 packets that may be MLD, dropping the rest."""
    return assemble(_GROUP_MANAGEMENT)


_DROP_ALL = assemble([(None, (BPF_RET, 0, None, None))])


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
        self.sock = open_packet_socket(
            self.interface,
            group_management_filter(),
            f"listening to IGMP and MLD on {self.interface.name}",
        )

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
        outgoing = kind == PACKET_OUTGOING
        now = time.monotonic()
        family = socket.AF_INET if protocol == ETH_P_IP else socket.AF_INET6
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
            self.sock = open_raw(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP, purpose)
        else:
            self.sock = open_raw(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6, purpose)
        try:
            self._configure()
        except BaseException:
            self.sock.close()
            raise

    def _configure(self) -> None:
        attach_filter(self.sock, _DROP_ALL)
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
            raise refused(error, what) from error

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
            raise refused(error, what) from error
