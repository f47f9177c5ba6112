"""What heard IGMP/MLD messages say (memberships, queriers), the kernel filter that picks
them off a link, and the kernel's own membership tables: all without a socket."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from multicast.group_management import observe
from multicast.group_management.link import Heard, group_management_filter
from multicast.group_management.messages import (
    GroupRecord,
    Leave,
    Message,
    Protocol,
    Query,
    RecordReport,
    RecordType,
    Report,
)
from multicast.group_management.observe import LinkObserver
from multicast.group_management.packets import Packet
from multicast.tools.membership import parse_mcfilter, parse_mcfilter6

A4 = IPv4Address
HOST = A4("198.18.1.2")
GROUP = A4("232.1.2.3")
S1, S2 = A4("198.18.9.1"), A4("198.18.9.2")


def heard(
    message: Message, at: float, source: IPv4Address | IPv6Address = HOST, outgoing: bool = False
) -> Heard:
    destination = message.protocol.report_destination
    packet = Packet(message.protocol, source, destination, 1, True, message)
    return Heard(at, "eth0", outgoing, packet)


def v3(*records: GroupRecord) -> RecordReport:
    return RecordReport(Protocol.IGMP, 3, records)


def record(kind: RecordType, *sources: IPv4Address) -> GroupRecord:
    return GroupRecord(kind, GROUP, sources)


def member_state(observer: LinkObserver) -> tuple[str, tuple[str, ...]] | None:
    member = observer.members.get(("eth0", "IGMP", str(HOST), str(GROUP)))
    return None if member is None else (member.mode, member.sources)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([record(RecordType.IS_INCLUDE, S1)], ("include", (str(S1),))),
        (
            [record(RecordType.IS_INCLUDE, S1), record(RecordType.ALLOW, S2)],
            ("include", (str(S1), str(S2))),
        ),
        ([record(RecordType.ALLOW, S1), record(RecordType.BLOCK, S1)], None),
        ([record(RecordType.TO_EXCLUDE)], ("exclude", ())),
        ([record(RecordType.TO_EXCLUDE, S1), record(RecordType.ALLOW, S1)], ("exclude", ())),
        ([record(RecordType.IS_EXCLUDE), record(RecordType.BLOCK, S2)], ("exclude", (str(S2),))),
        ([record(RecordType.TO_EXCLUDE), record(RecordType.TO_INCLUDE)], None),
        ([record(RecordType.BLOCK, S1)], None),
    ],
)
def test_igmpv3_records_update_what_the_host_receives(
    records: list[GroupRecord], expected: tuple[str, tuple[str, ...]] | None
) -> None:
    observer = LinkObserver(start=10.0)
    for at, each in enumerate(records):
        observer.account(heard(v3(each), 10.0 + at))
    assert member_state(observer) == expected


def test_an_old_report_joins_any_source_and_a_leave_ends_it() -> None:
    observer = LinkObserver(start=0.0)
    observer.account(heard(Report(Protocol.IGMP, 2, GROUP), 1.0))
    member = observer.members[("eth0", "IGMP", str(HOST), str(GROUP))]
    assert (member.version, member.mode, member.sources, member.last_seen) == (
        2,
        "exclude",
        (),
        1.0,
    )
    assert "any source" in str(member)
    observer.account(heard(Leave(Protocol.IGMP, 2, GROUP), 2.0))
    assert member_state(observer) is None


def test_observations_say_who_sent_what_for_which_group_and_version() -> None:
    observer = LinkObserver(start=5.0)
    seen = observer.account(heard(v3(record(RecordType.ALLOW, S1)), 6.5, outgoing=True))
    assert seen is not None
    assert seen.as_dict() == {
        "at": 1.5,
        "interface": "eth0",
        "direction": "out",
        "sender": str(HOST),
        "destination": "224.0.0.22",
        "protocol": "IGMP",
        "version": 3,
        "kind": "report",
        "records": [{"group": str(GROUP), "action": "ALLOW", "sources": [str(S1)]}],
        "ttl": 1,
        "router_alert": True,
        "query": None,
    }
    assert str(seen) == (
        "   1.500 eth0 out 198.18.1.2 -> 224.0.0.22 IGMPv3 report: ALLOW 232.1.2.3 {198.18.9.1}"
    )


def test_a_query_line_shows_its_timers_and_a_missing_router_alert() -> None:
    query = Query(Protocol.IGMP, 3, A4("0.0.0.0"), 10.0, robustness=2, interval=125.0)
    packet = Packet(Protocol.IGMP, HOST, A4("224.0.0.1"), 2, False, query)
    seen = observe.describe(packet, 0.25, "eth1", False)
    assert str(seen) == (
        "   0.250 eth1 in  198.18.1.2 -> 224.0.0.1 IGMPv3 general query "
        "(response 10 s, interval 125 s, QRV 2) [ttl 2, no router alert]"
    )


def test_queriers_are_tabled_with_their_interval() -> None:
    observer = LinkObserver(start=0.0)
    old = Query(Protocol.IGMP, 2, A4("0.0.0.0"), 10.0)
    for at in (1.0, 126.0):
        observer.account(heard(old, at, source=A4("198.18.1.1")))
    new = Query(Protocol.MLD, 2, IPv6Address("::"), 5.0, robustness=3, interval=60.0)
    observer.account(heard(new, 2.0, source=IPv6Address("fe80::1")))
    observer.account(heard(new, 3.0, source=IPv6Address("fe80::9"), outgoing=True))
    queriers = {key[2]: q.as_dict() for key, q in observer.queriers.items()}
    assert queriers == {
        "198.18.1.1": {
            "interface": "eth0",
            "protocol": "IGMP",
            "address": "198.18.1.1",
            "version": 2,
            "queries": 2,
            "max_response": 10.0,
            "interval": 125.0,  # measured between its general queries
            "robustness": None,
            "last_heard": 126.0,
        },
        "fe80::1": {
            "interface": "eth0",
            "protocol": "MLD",
            "address": "fe80::1",
            "version": 2,
            "queries": 1,
            "max_response": 5.0,
            "interval": 60.0,  # as it says
            "robustness": 3,
            "last_heard": 2.0,
        },
    }


def test_with_groups_only_their_messages_and_general_queries_count() -> None:
    observer = LinkObserver(start=0.0, groups=[GROUP])
    other = A4("239.9.9.9")
    both = v3(record(RecordType.TO_EXCLUDE), GroupRecord(RecordType.TO_EXCLUDE, other))
    assert observer.account(heard(Report(Protocol.IGMP, 2, other), 1.0)) is None
    assert observer.account(heard(Query(Protocol.IGMP, 2, other, 1.0), 1.0)) is None
    assert observer.account(heard(Query(Protocol.IGMP, 2, A4("0.0.0.0"), 1.0), 1.0)) is not None
    assert observer.account(heard(both, 2.0)) is not None
    assert [key[3] for key in observer.members] == [str(GROUP)]
    assert len(observer.observations) == 2


def test_problems_are_counted_and_observations_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observe, "MAX_KEPT", 2)
    observer = LinkObserver(start=0.0)
    assert observer.account(Heard(1.0, "eth0", False, None, "IGMP checksum is wrong")) is None
    for at in range(3):
        observer.account(heard(Report(Protocol.IGMP, 2, GROUP), float(at)))
    assert (len(observer.observations), observer.not_kept) == (2, 1)
    assert observer.problems == {"IGMP checksum is wrong": 1}


# --- the kernel filter: run by a small interpreter of the classic BPF it uses -------------------


def run_filter(program: bytes, ethertype: int, packet: bytes) -> int:
    """What the filter returns for ``packet`` (network header first) of ``ethertype``."""
    steps = [struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)]
    accumulator, index = 0, 0
    while True:
        opcode, jt, jf, k = steps[index]
        if opcode == 0x20:  # ld [k]: only the ancillary protocol load is used
            assert k == 0xFFFFF000
            accumulator = ethertype
        elif opcode == 0x30:  # ldb [k]
            if k >= len(packet):
                return 0  # the kernel ends the program on a load past the packet
            accumulator = packet[k]
        elif opcode in (0x15, 0x35, 0x25):  # jeq, jge, jgt
            taken = {0x15: accumulator == k, 0x35: accumulator >= k, 0x25: accumulator > k}
            index += jt if taken[opcode] else jf
        elif opcode == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {opcode:#x}")
        index += 1


def ipv4(protocol: int) -> bytes:
    return bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 1, protocol]) + bytes(18)


def ipv6(following: int, icmp_type: int = 0) -> bytes:
    return (
        bytes([0x60]) + bytes(5) + bytes([following, 1]) + bytes(32) + bytes([icmp_type]) + bytes(7)
    )


@pytest.mark.parametrize(
    ("ethertype", "packet", "accepted"),
    [
        (0x0800, ipv4(2), True),  # IGMP
        (0x0800, ipv4(17), False),  # UDP
        (0x0800, ipv4(103), False),  # PIM
        (0x86DD, ipv6(0), True),  # a hop-by-hop header: MLD carries one
        (0x86DD, ipv6(58, 130), True),
        (0x86DD, ipv6(58, 131), True),
        (0x86DD, ipv6(58, 132), True),
        (0x86DD, ipv6(58, 143), True),
        (0x86DD, ipv6(58, 128), False),  # echo request
        (0x86DD, ipv6(58, 135), False),  # neighbour solicitation
        (0x86DD, ipv6(17), False),
        (0x0806, bytes(28), False),  # ARP
    ],
)
def test_the_filter_passes_igmp_and_mld_and_drops_the_rest(
    ethertype: int, packet: bytes, accepted: bool
) -> None:
    assert bool(run_filter(group_management_filter(), ethertype, packet)) is accepted


# --- /proc/net/mcfilter and mcfilter6, as a namespace with two SSM joins shows them ------------

MCFILTER = """\
Idx Device        MCA        SRC    INC    EXC
100   eth0 0xe8010203 0xc6120102      1      0
 12 ethern 0xe8010204 0xc6120103      0      2
"""

MCFILTER6 = """\
Idx Device                Multicast Address                   Source Address    INC    EXC
100   eth0 ff3e0000000000000000000080000001 20010db8000100000000000000000002      1      0
"""


def test_mcfilter_lines_give_index_group_source_and_counts() -> None:
    found = [(f.index, f.group, f.source, f.include, f.exclude) for f in parse_mcfilter(MCFILTER)]
    assert found == [
        (100, "232.1.2.3", "198.18.1.2", 1, 0),
        (12, "232.1.2.4", "198.18.1.3", 0, 2),
    ]
    (six,) = parse_mcfilter6(MCFILTER6)
    assert (six.group, six.source, six.as_dict()) == (
        "ff3e::8000:1",
        "2001:db8:1::2",
        {"source": "2001:db8:1::2", "include": 1, "exclude": 0},
    )


@pytest.mark.parametrize(
    "line",
    [
        "100 eth0 0xe801020 0xc6120102 1 0",
        "x eth0 0xe8010203 0xc6120102 1 0",
        "100 eth0 0xe8010203",
    ],
)
def test_mcfilter_lines_that_are_not_entries_are_skipped(line: str) -> None:
    assert parse_mcfilter(line + "\n") == []
