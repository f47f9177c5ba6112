"""What still reaches the wire after a leave: a packet socket's view of a monitor's groups.

Once no socket on a host holds a group, its kernel stops delivering the group at once: a
receiving socket cannot tell how long the network (a snooping switch, a router) goes on
sending it after the leave. A packet socket can, since it takes the frames that reach the
interface whoever joined what. :class:`WireWatch` opens one per interface (it needs
``CAP_NET_RAW``; :func:`open_watch` falls back without it) with a kernel filter
(:func:`udp_filter`) passing UDP to the groups and port;
:func:`parse_udp` and :func:`arrival_ns` read what it returns, and :class:`LeaveTimes` keeps,
per group, what arrived after the leave. Those three are pure (no socket), and take every
frame as hostile: any bytes give an answer or None, never an exception.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from multicast.core import (
    Closing,
    Interface,
    IPAddress,
    Membership,
    resolve_interface,
    routed_interface,
)
from multicast.core.options import request_receive_buffer
from multicast.core.raw import (
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_JSET,
    BPF_LD_B_ABS,
    BPF_LD_H_ABS,
    BPF_LD_H_IND,
    BPF_LD_W_ABS,
    BPF_LDX_B_MSH,
    BPF_RET,
    ETH_P_IP,
    ETH_P_IPV6,
    PACKET_OUTGOING,
    SKF_AD_PKTTYPE,
    SKF_AD_PROTOCOL,
    SO_TIMESTAMPNS,
    Step,
    assemble,
    open_packet_socket,
    packet_drops,
)
from multicast.exceptions import MulticastError
from multicast.tools.latency import LeaveMeasure
from multicast.tools.membership import kernel_view

__all__ = [
    "FILTERED_GROUPS",
    "SNAP",
    "LeaveTimes",
    "WireDatagram",
    "WireLeave",
    "WireWatch",
    "arrival_ns",
    "joined_interfaces",
    "open_watch",
    "parse_udp",
    "udp_filter",
]

SNAP = 128  # bytes kept of each frame: the IPv4 header (60 at most) or IPv6's (40, 48
# with a fragment header), and UDP's
FILTERED_GROUPS = 64  # groups the kernel filter matches one by one; past it, any group of the port
_UDP = 17
_FRAGMENT = 44  # the IPv6 fragment header
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_READ_LIMIT = 1024  # frames read from one socket in one go
_RECEIVE_BUFFER = 4 * 1024 * 1024
_NANOSECONDS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class WireDatagram:
    """A UDP datagram to a multicast group, as a frame's headers tell (its first fragment)."""

    group: str  # the address, compressed
    port: int  # the destination port


def _ipv4_groups(groups: Sequence[IPv4Address]) -> list[tuple[str | None, Step]]:
    if len(groups) > FILTERED_GROUPS:  # any IPv4 group: 224-239 in the first byte
        return [
            ("group", (BPF_LD_B_ABS, 16, None, None)),
            (None, (BPF_JGE, 224, None, "none")),
            (None, (BPF_JGT, 239, "none", None)),
            (None, (BPF_RET, SNAP, None, None)),
        ]
    steps: list[tuple[str | None, Step]] = [("group", (BPF_LD_W_ABS, 16, None, None))]
    for index, group in enumerate(groups):
        following = f"g{index + 1}" if index + 1 < len(groups) else "none"
        steps.append((f"g{index}", (BPF_JEQ, int(group), None, following)))
        steps.append((None, (BPF_RET, SNAP, None, None)))
    return steps


def _ipv6_groups(groups: Sequence[IPv6Address]) -> list[tuple[str | None, Step]]:
    if len(groups) > FILTERED_GROUPS:  # any IPv6 group: ff in the first byte
        return [
            ("group", (BPF_LD_B_ABS, 24, None, None)),
            (None, (BPF_JEQ, 0xFF, None, "none")),
            (None, (BPF_RET, SNAP, None, None)),
        ]
    steps: list[tuple[str | None, Step]] = []
    for index, group in enumerate(groups):
        following = f"g{index + 1}" if index + 1 < len(groups) else "none"
        words = struct.unpack("!4I", group.packed)
        for number, word in enumerate(words):  # the destination address, 32 bits at a time
            label = ("group" if index == 0 else f"g{index}") if number == 0 else None
            steps.append((label, (BPF_LD_W_ABS, 24 + 4 * number, None, None)))
            steps.append((None, (BPF_JEQ, word, None, following)))
        steps.append((None, (BPF_RET, SNAP, None, None)))
    return steps


def udp_filter(groups: Sequence[IPAddress], port: int) -> bytes:
    """A kernel filter keeping :data:`SNAP` bytes of each frame that arrives (not one this
    host sends) holding UDP to ``port`` and one of ``groups`` (all of one family): a whole
    datagram or its first fragment. Past :data:`FILTERED_GROUPS` groups, any group."""
    if not groups:
        raise ValueError("a wire filter needs at least one group")
    head: list[tuple[str | None, Step]] = [
        (None, (BPF_LD_W_ABS, SKF_AD_PKTTYPE, None, None)),
        (None, (BPF_JEQ, PACKET_OUTGOING, "drop", None)),
        (None, (BPF_LD_W_ABS, SKF_AD_PROTOCOL, None, None)),
    ]
    if all(isinstance(group, IPv4Address) for group in groups):
        head += [
            (None, (BPF_JEQ, ETH_P_IP, None, "drop")),
            (None, (BPF_LD_B_ABS, 9, None, None)),  # protocol
            (None, (BPF_JEQ, _UDP, None, "drop")),
            (None, (BPF_LD_H_ABS, 6, None, None)),  # flags and fragment offset
            (None, (BPF_JSET, 0x1FFF, "drop", None)),  # a later fragment: no UDP header
            (None, (BPF_LDX_B_MSH, 0, None, None)),  # X: the header's length
            (None, (BPF_LD_H_IND, 2, None, None)),  # the destination port
            (None, (BPF_JEQ, port, "group", "drop")),
            ("drop", (BPF_RET, 0, None, None)),
        ]
        body = _ipv4_groups([g for g in groups if isinstance(g, IPv4Address)])
    elif all(isinstance(group, IPv6Address) for group in groups):
        head += [
            (None, (BPF_JEQ, ETH_P_IPV6, None, "drop")),
            (None, (BPF_LD_B_ABS, 6, None, None)),  # next header
            (None, (BPF_JEQ, _UDP, "udp", None)),
            (None, (BPF_JEQ, _FRAGMENT, None, "drop")),
            (None, (BPF_LD_B_ABS, 40, None, None)),  # the fragment header's next header
            (None, (BPF_JEQ, _UDP, None, "drop")),
            (None, (BPF_LD_H_ABS, 42, None, None)),  # fragment offset
            (None, (BPF_JSET, 0xFFF8, "drop", None)),  # a later fragment: no UDP header
            (None, (BPF_LD_H_ABS, 50, None, None)),  # the destination port after it
            (None, (BPF_JEQ, port, "group", "drop")),
            ("udp", (BPF_LD_H_ABS, 42, None, None)),  # the destination port
            (None, (BPF_JEQ, port, "group", "drop")),
            ("drop", (BPF_RET, 0, None, None)),
        ]
        body = _ipv6_groups([g for g in groups if isinstance(g, IPv6Address)])
    else:
        raise ValueError("a wire filter takes groups of one family")
    return assemble([*head, *body, ("none", (BPF_RET, 0, None, None))])


def parse_udp(data: bytes, ethertype: int) -> WireDatagram | None:
    """The group and port of a frame's UDP datagram (from its IP header on, as a packet socket
    returns it; maybe cut short after the UDP header), or None: not IPv4 or IPv6 as
    ``ethertype`` says, not UDP, a later fragment, not to a group, or too short."""
    if ethertype == ETH_P_IP:
        if len(data) < 20 or data[0] >> 4 != 4:
            return None
        header = (data[0] & 0x0F) * 4
        fragment = int.from_bytes(data[6:8], "big") & 0x1FFF
        if header < 20 or len(data) < header + 8 or data[9] != _UDP or fragment:
            return None
        group: IPAddress = IPv4Address(data[16:20])
        at = header
    elif ethertype == ETH_P_IPV6:
        if len(data) < 48 or data[0] >> 4 != 6:
            return None
        following, at = data[6], 40
        if following == _FRAGMENT:
            if len(data) < 56 or int.from_bytes(data[42:44], "big") & 0xFFF8:
                return None
            following, at = data[40], 48
        if following != _UDP:
            return None
        group = IPv6Address(data[24:40])
    else:
        return None
    if not group.is_multicast:
        return None
    return WireDatagram(group.compressed, int.from_bytes(data[at + 2 : at + 4], "big"))


def arrival_ns(ancillary: Iterable[tuple[int, int, bytes]]) -> int | None:
    """When the frame arrived (ns since the epoch) from its control messages
    (``SO_TIMESTAMPNS``), or None if they hold no well-formed time."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            if seconds >= 0 and 0 <= nanoseconds < _NANOSECONDS:
                return int(seconds * _NANOSECONDS + nanoseconds)
    return None


@dataclass(frozen=True, slots=True)
class WireLeave:
    """What reached the wire of one group after its leave, within the wait."""

    after: int  # datagrams
    leave_ms: float | None  # from the leave to the last of them (None: none came)
    still_arriving: bool  # the wait ended before the group fell silent


@dataclass(slots=True)
class _Leaving:
    left: int  # ns, when the group was left
    previous: int  # ns, the arrival before the next one (the leave itself, at first)
    after: int = 0
    last: int | None = None
    widest: int = 0  # ns, the longest time between arrivals so far


class LeaveTimes:
    """Per group left at ``left_at`` (ns, this host's clock), the datagrams that reached the
    wire in the ``wait`` (ns) that followed its leave. Time is an argument: no clock, no
    socket.

    A group is *still arriving* when the wait ended less than twice its longest gap between
    arrivals after its last datagram: nothing says it stopped. ``last_before`` (ns, per
    group: its last datagram before the leave) makes that gap known from the first one on.
    """

    def __init__(
        self, left_at: Mapping[str, int], last_before: Mapping[str, int], wait: int
    ) -> None:
        self.wait = wait
        self.groups = {
            group: _Leaving(left, min(left, last_before.get(group, left)))
            for group, left in left_at.items()
        }

    def account(self, group: str, arrived: int) -> None:
        """A datagram of ``group`` reached the wire at ``arrived`` (ns)."""
        leaving = self.groups.get(group)
        if leaving is None or arrived > leaving.left + self.wait:
            return
        if arrived >= leaving.left:
            leaving.after += 1
            leaving.widest = max(leaving.widest, arrived - leaving.previous)
            leaving.last = arrived
        leaving.previous = max(leaving.previous, arrived)

    def result(self, group: str) -> WireLeave | None:
        """What reached the wire of ``group`` after its leave (None: it was not left)."""
        leaving = self.groups.get(group)
        if leaving is None:
            return None
        if leaving.last is None:
            return WireLeave(0, None, False)
        still = leaving.left + self.wait - leaving.last <= 2 * leaving.widest
        return WireLeave(leaving.after, (leaving.last - leaving.left) / 1e6, still)


class WireWatch(Closing):
    """Packet sockets on ``interfaces`` taking the UDP datagrams to ``groups`` (one family)
    on ``port`` that reach them, with the time each arrived; a context manager.

    It needs ``CAP_NET_RAW``: without it, :class:`~multicast.exceptions.RawSocketPermissionError`.
    """

    def __init__(self, interfaces: Sequence[Interface], groups: Sequence[IPAddress], port: int):
        self.interfaces = tuple(interface.name for interface in interfaces)
        self.groups = frozenset(group.compressed for group in groups)
        self.port = port
        self.drops = 0  # frames the sockets' full queues dropped (known once closed)
        self.note: str | None = None  # why the watch ended early, if it did
        program = udp_filter(list(dict.fromkeys(groups)), port)
        self.sockets: list[socket.socket] = []
        self.poller = select.poll()
        try:
            for interface in interfaces:
                purpose = f"watching the wire of {interface.name} after the leave"
                sock = open_packet_socket(interface, program, purpose, timestamps=True)
                self.sockets.append(sock)
                request_receive_buffer(sock, _RECEIVE_BUFFER)
                self.poller.register(sock, select.POLLIN)
        except BaseException:
            self.close()
            raise

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a frame; whether one is queued."""
        return bool(self.poller.poll(max(0, math.ceil(timeout * 1000))))

    def read(self) -> list[tuple[str, int]]:
        """The (group, arrival ns) of every datagram queued, in the order they arrived."""
        arrivals = []
        for sock in self.sockets:
            if sock.fileno() < 0:  # given up: see _give_up
                continue
            for _ in range(_READ_LIMIT):
                try:
                    data, ancillary, _, address = sock.recvmsg(SNAP, _ANCILLARY_SPACE)
                except BlockingIOError:
                    break
                except OSError as error:  # its interface went away: what came is counted
                    self._give_up(sock, error)
                    break
                found = parse_udp(data, address[1])
                arrived = arrival_ns(ancillary)
                if found is None or arrived is None:
                    continue
                if found.port == self.port and found.group in self.groups:
                    arrivals.append((found.group, arrived))
        arrivals.sort(key=lambda arrival: arrival[1])
        return arrivals

    def _give_up(self, sock: socket.socket, error: OSError) -> None:
        """Stop watching a socket that failed, saying so in :attr:`note`."""
        self.poller.unregister(sock)
        self._close(sock)
        if self.note is None:
            self.note = f"the wire could not be read to the end: {error.strerror or error}"

    def _close(self, sock: socket.socket) -> None:
        if sock.fileno() >= 0:
            with contextlib.suppress(OSError):  # its count of drops is lost with it
                self.drops += packet_drops(sock)
            sock.close()

    def close(self) -> None:
        for sock in self.sockets:
            self._close(sock)


def joined_interfaces(memberships: Sequence[Membership]) -> list[Interface]:
    """The interfaces ``memberships`` are on: those they name, and for the ones left to the
    routing table, the interface its route picks. Where the route does not tell, the
    interfaces ``/proc`` lists the group on (which may hold other processes' memberships)."""
    chosen: list[str | int | Interface] = [
        *sorted({m.interface for m in memberships if m.interface})
    ]
    untold = []
    for group in dict.fromkeys(m.group for m in memberships if not m.interface):
        routed = routed_interface(group.address)
        if routed is None:
            untold.append(group)
        else:
            chosen.append(routed)
    if untold:
        chosen += sorted({held.interface for held in kernel_view(groups=untold).groups})
    found = (resolve_interface(spec) for spec in chosen)
    return list({interface.index: interface for interface in found}.values())


def open_watch(
    memberships: Sequence[Membership], port: int, wait: float
) -> tuple[WireWatch | None, LeaveMeasure]:
    """A watch of the wire where ``memberships`` (on ``port``) are, for ``wait`` seconds
    after their leave, and how the leave is measured: on that wire, or (None: no
    ``CAP_NET_RAW``, no interface) through the receiving socket, the measure saying why."""
    note = "no interface holds the groups"
    try:
        interfaces = joined_interfaces(memberships)
        if interfaces:
            watch = WireWatch(interfaces, [m.group.address for m in memberships], port)
            return watch, LeaveMeasure(wait, wire=True, interfaces=watch.interfaces)
    except (OSError, MulticastError) as error:
        note = str(error)
    return None, LeaveMeasure(wait, wire=False, note=note)
