"""The wire after a leave, without a socket: the kernel filter (run by an interpreter), the
parsing of what a packet socket returns (hostile bytes), the times kept per group, and what
the report says of them."""

from __future__ import annotations

import random
import socket
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from multicast.core.raw import ETH_P_IP, ETH_P_IPV6, PACKET_OUTGOING, SO_TIMESTAMPNS, assemble
from multicast.tools.latency import ChannelReport, LeaveMeasure, latency_lines
from multicast.tools.wire import (
    FILTERED_GROUPS,
    SNAP,
    LeaveTimes,
    WireDatagram,
    WireLeave,
    arrival_ns,
    parse_udp,
    udp_filter,
)

from support.bpf import run_filter

MS = 1_000_000  # ns


def ipv4_udp(
    group: str = "239.1.2.3",
    port: int = 5000,
    *,
    options: bytes = b"",
    fragment: int = 0,
    protocol: int = 17,
    payload: bytes = b"x" * 20,
) -> bytes:
    """An IPv4 packet of UDP (``fragment``: the flags and offset field)."""
    length = 20 + len(options)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | length // 4, 0, length + 8 + len(payload), 1, fragment, 64, protocol, 0,
        IPv4Address("198.18.1.1").packed, IPv4Address(group).packed,
    )  # fmt: skip
    return header + options + struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload


def ipv6_udp(
    group: str = "ff0e::1:2",
    port: int = 5000,
    *,
    fragment: int | None = None,
    next_header: int = 17,
    payload: bytes = b"x" * 20,
) -> bytes:
    """An IPv6 packet of UDP, after a fragment header (``fragment``: its offset field) if given."""
    body = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    first = next_header
    if fragment is not None:
        body = struct.pack("!BBHI", next_header, 0, fragment, 7) + body
        first = 44
    source, destination = IPv6Address("2001:db8:1::1").packed, IPv6Address(group).packed
    return struct.pack("!IHBB", 6 << 28, len(body), first, 64) + source + destination + body


V4 = [IPv4Address("239.1.2.3"), IPv4Address("239.1.2.4")]
V6 = [IPv6Address("ff0e::1:2"), IPv6Address("ff0e::1:3")]


def test_the_ipv4_filter_keeps_udp_to_the_groups_and_port() -> None:
    program = udp_filter(V4, 5000)
    for group in ("239.1.2.3", "239.1.2.4"):
        assert run_filter(program, ipv4_udp(group), ETH_P_IP) == SNAP
    assert run_filter(program, ipv4_udp(options=b"\x01" * 8), ETH_P_IP) == SNAP  # IHL 7
    assert run_filter(program, ipv4_udp(fragment=0x2000), ETH_P_IP) == SNAP  # a first fragment
    refused = [
        (ipv4_udp("239.1.2.5"), ETH_P_IP, 0),  # another group
        (ipv4_udp(port=5001), ETH_P_IP, 0),
        (ipv4_udp(protocol=6), ETH_P_IP, 0),  # TCP
        (ipv4_udp(fragment=0x2010), ETH_P_IP, 0),  # a later fragment
        (ipv4_udp(), ETH_P_IPV6, 0),
        (ipv4_udp(), ETH_P_IP, PACKET_OUTGOING),  # sent by this host
        (ipv4_udp()[:22], ETH_P_IP, 0),  # cut before the port
    ]
    for packet, ethertype, kind in refused:
        assert run_filter(program, packet, ethertype, kind) == 0


def test_the_ipv6_filter_keeps_udp_to_the_groups_and_port_after_a_fragment_header() -> None:
    program = udp_filter(V6, 5000)
    for group in ("ff0e::1:2", "ff0e::1:3"):
        assert run_filter(program, ipv6_udp(group), ETH_P_IPV6) == SNAP
        assert run_filter(program, ipv6_udp(group, fragment=1), ETH_P_IPV6) == SNAP  # M flag
    refused = [
        (ipv6_udp("ff0e::1:4"), ETH_P_IPV6, 0),  # differs in the last word only
        (ipv6_udp("ff0f::1:2"), ETH_P_IPV6, 0),  # in the first only
        (ipv6_udp(port=5001), ETH_P_IPV6, 0),
        (ipv6_udp(port=5001, fragment=0), ETH_P_IPV6, 0),
        (ipv6_udp(fragment=8), ETH_P_IPV6, 0),  # a later fragment
        (ipv6_udp(next_header=6), ETH_P_IPV6, 0),
        (ipv6_udp(next_header=6, fragment=0), ETH_P_IPV6, 0),
        (ipv6_udp(next_header=0), ETH_P_IPV6, 0),  # hop-by-hop: not followed
        (ipv6_udp(), ETH_P_IP, 0),
        (ipv6_udp(), ETH_P_IPV6, PACKET_OUTGOING),
        (ipv6_udp()[:30], ETH_P_IPV6, 0),
    ]
    for packet, ethertype, kind in refused:
        assert run_filter(program, packet, ethertype, kind) == 0


def test_past_the_filtered_groups_any_group_of_the_port_passes() -> None:
    many4 = [IPv4Address("239.2.0.0") + n for n in range(FILTERED_GROUPS + 1)]
    program = udp_filter(many4, 5000)
    assert len(program) < len(udp_filter(many4[:FILTERED_GROUPS], 5000))
    for group in ("224.0.0.1", "239.255.255.255", "239.9.9.9"):
        assert run_filter(program, ipv4_udp(group), ETH_P_IP) == SNAP
    for group in ("223.255.255.255", "240.0.0.0"):
        assert run_filter(program, ipv4_udp(group), ETH_P_IP) == 0
    many6 = [IPv6Address("ff0e::2:0") + n for n in range(FILTERED_GROUPS + 1)]
    program = udp_filter(many6, 5000)
    assert run_filter(program, ipv6_udp("ff05::9"), ETH_P_IPV6) == SNAP
    assert run_filter(program, ipv6_udp("fe80::9"), ETH_P_IPV6) == 0
    assert run_filter(program, ipv6_udp("ff05::9", port=1), ETH_P_IPV6) == 0


def test_a_filter_needs_groups_of_one_family() -> None:
    with pytest.raises(ValueError, match="at least one group"):
        udp_filter([], 5000)
    with pytest.raises(ValueError, match="one family"):
        udp_filter([V4[0], V6[0]], 5000)


def test_the_assembler_refuses_a_jump_past_255_instructions() -> None:
    ret = 0x06
    far = [(None, (0x15, 1, "end", None)), *[(None, (ret, 0, None, None))] * 256]
    with pytest.raises(ValueError, match="past 255"):
        assemble([*far, ("end", (ret, 1, None, None))])


def test_parse_reads_the_group_and_port_of_a_first_fragment() -> None:
    expected4 = WireDatagram("239.1.2.3", 5000)
    assert parse_udp(ipv4_udp(), ETH_P_IP) == expected4
    assert parse_udp(ipv4_udp(options=b"\x01" * 4), ETH_P_IP) == expected4
    assert parse_udp(ipv4_udp(fragment=0x2000)[:SNAP], ETH_P_IP) == expected4
    expected6 = WireDatagram("ff0e::1:2", 5000)
    assert parse_udp(ipv6_udp(), ETH_P_IPV6) == expected6
    assert parse_udp(ipv6_udp(fragment=1), ETH_P_IPV6) == expected6
    assert parse_udp(ipv6_udp()[:48], ETH_P_IPV6) == expected6  # cut after the UDP header


@pytest.mark.parametrize(
    ("packet", "ethertype"),
    [
        (ipv4_udp(), ETH_P_IPV6),  # the version does not match the EtherType
        (ipv6_udp(), ETH_P_IP),
        (ipv4_udp(), 0x0806),  # ARP
        (ipv4_udp("198.18.1.2"), ETH_P_IP),  # not a group
        (ipv6_udp("2001:db8::2"), ETH_P_IPV6),
        (ipv4_udp(protocol=6), ETH_P_IP),
        (ipv4_udp(fragment=0x0001), ETH_P_IP),  # a later fragment
        (ipv4_udp()[:27], ETH_P_IP),  # the UDP header cut
        (bytes([0x44]) + ipv4_udp()[1:], ETH_P_IP),  # a header length below 20
        (bytes([0x4F]) + ipv4_udp()[1:], ETH_P_IP),  # 60 bytes of header, 48 there
        (ipv6_udp(fragment=8), ETH_P_IPV6),
        (ipv6_udp(fragment=0)[:55], ETH_P_IPV6),
        (ipv6_udp(next_header=0), ETH_P_IPV6),
        (ipv6_udp()[:47], ETH_P_IPV6),
        (b"", ETH_P_IP),
        (b"", ETH_P_IPV6),
    ],
)
def test_parse_refuses_what_is_not_udp_to_a_group(packet: bytes, ethertype: int) -> None:
    assert parse_udp(packet, ethertype) is None


def test_parse_never_raises_on_any_bytes() -> None:
    chance = random.Random(14)
    valid = [ipv4_udp(options=b"\x01" * 4), ipv6_udp(fragment=0)]
    for _ in range(5000):
        base = bytearray(chance.choice(valid))
        for _ in range(chance.randrange(4)):
            base[chance.randrange(len(base))] = chance.randrange(256)
        cut = bytes(base[: chance.randrange(len(base) + 1)])
        found = parse_udp(cut, chance.choice((ETH_P_IP, ETH_P_IPV6)))
        assert found is None or (ip_address(found.group).is_multicast and 0 <= found.port < 65536)


def test_the_arrival_time_is_read_from_a_well_formed_timestamp() -> None:
    stamp = struct.pack("@ll", 1_700_000_000, 123_456_789)
    assert arrival_ns([(socket.SOL_SOCKET, SO_TIMESTAMPNS, stamp)]) == 1_700_000_000_123_456_789
    assert arrival_ns([(0, 8, b"\0" * 4), (socket.SOL_SOCKET, SO_TIMESTAMPNS, stamp)]) is not None
    for hostile in (
        [],
        [(socket.SOL_SOCKET, SO_TIMESTAMPNS, stamp[:-1])],
        [(socket.SOL_SOCKET, SO_TIMESTAMPNS + 1, stamp)],
        [(socket.IPPROTO_IP, SO_TIMESTAMPNS, stamp)],
        [(socket.SOL_SOCKET, SO_TIMESTAMPNS, struct.pack("@ll", 1, 1_000_000_000))],
        [(socket.SOL_SOCKET, SO_TIMESTAMPNS, struct.pack("@ll", -1, 0))],
    ):
        assert arrival_ns(hostile) is None


def leave_times(arrivals: list[int]) -> LeaveTimes:
    """A group left at 1 s, its last datagram before 10 ms earlier, watched until 4 s."""
    times = LeaveTimes({"239.1.2.3": 1000 * MS}, {"239.1.2.3": 990 * MS}, 3000 * MS)
    for arrived in arrivals:
        times.account("239.1.2.3", arrived)
    return times


def test_a_group_that_stops_after_the_leave() -> None:
    arrivals = [(1000 + 10 * n) * MS for n in range(-5, 101)]  # every 10 ms, until 1 s on
    assert leave_times(arrivals).result("239.1.2.3") == WireLeave(101, 1000.0, False)


def test_a_group_still_arriving_when_the_wait_ends() -> None:
    arrivals = [(1000 + 10 * n) * MS for n in range(301)]  # until 4 s, the end of the wait
    assert leave_times(arrivals).result("239.1.2.3") == WireLeave(301, 3000.0, True)
    late = leave_times([*arrivals, 4050 * MS])  # after the wait: not counted
    assert late.result("239.1.2.3") == WireLeave(301, 3000.0, True)
    sparse = leave_times([2000 * MS, 3000 * MS])  # a datagram a second: silence of 1 s is no stop
    assert sparse.result("239.1.2.3") == WireLeave(2, 2000.0, True)


def test_a_group_with_nothing_after_the_leave() -> None:
    times = leave_times([900 * MS, 990 * MS])
    assert times.result("239.1.2.3") == WireLeave(0, None, False)
    times.account("239.9.9.9", 1500 * MS)  # a group not left: ignored
    assert times.result("239.9.9.9") is None


def test_the_first_gap_counts_from_the_last_datagram_before_the_leave() -> None:
    times = LeaveTimes({"239.1.2.3": 1000 * MS}, {"239.1.2.3": 400 * MS}, 1000 * MS)
    times.account("239.1.2.3", 1100 * MS)  # 700 ms after the one before: a slow stream
    assert times.result("239.1.2.3") == WireLeave(1, 100.0, True)


def test_each_group_is_watched_for_the_wait_after_its_own_leave() -> None:
    # Groups are left one after another: a wait that began at the first leave would cut the
    # last group's short, and one that began after the last would count past the first's.
    left = {"239.1.2.3": 1000 * MS, "239.1.2.4": 1500 * MS}
    times = LeaveTimes(left, {}, 3000 * MS)
    for group in left:
        times.account(group, 4200 * MS)
    assert times.result("239.1.2.3") == WireLeave(0, None, False)
    assert times.result("239.1.2.4") == WireLeave(1, 2700.0, True)


def channel(leave_ms: float | None, after: int | None, still: bool | None) -> ChannelReport:
    return ChannelReport("239.1.2.3", "239.1.2.3", 1.0, 2.0, 5.0, leave_ms, after, still)


def test_the_report_says_where_the_leave_was_measured() -> None:
    wire = LeaveMeasure(3.0, True, ("eth0", "eth1"), drops=2)
    channels = (channel(1000.0, 100, False), channel(2999.0, 300, True), channel(None, 0, False))
    lines = latency_lines(channels, wire)
    assert lines[-1] == (
        "  leave to last datagram, on the wire of eth0, eth1 for 3.000 s: 1 group stopped, "
        "min 1000.000 / median 1000.000 / max 1000.000 ms; 1 group still arriving when the "
        "wait ended; "
        "1 group with none after the leave; 2 frames dropped by the watch: the last may be "
        "among them"
    )
    assert wire.as_dict() == {
        "wait": 3.0,
        "measured": "wire",
        "interfaces": ["eth0", "eth1"],
        "drops": 2,
        "note": None,
    }
    assert channels[1].as_dict()["still_arriving"] is True
    assert channels[2].as_dict()["after_leave"] == 0
    assert latency_lines((channel(2999.0, 300, True),), wire)[-1].endswith(
        "for 3.000 s: 1 group still arriving when the wait ended; 2 frames dropped by the "
        "watch: the last may be among them"
    )
    socket_only = LeaveMeasure(3.0, False, note="it lacks CAP_NET_RAW")
    lines = latency_lines((channel(2.5, None, None),), socket_only)
    assert lines[-2:] == [
        "  leave to last datagram, through the socket only (what was already inside this host), "
        "1 group: min 2.500 / median 2.500 / max 2.500 ms",
        "  wire not watched: it lacks CAP_NET_RAW",
    ]
    assert socket_only.as_dict()["measured"] == "socket"
    assert latency_lines((channel(None, None, None),), None)[-1].startswith("  join to first")
