"""The doctor's querier checks over given kernel state and listens: no socket."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from multicast.core import Interface
from multicast.group_management.observe import HeardQuerier
from multicast.tools.doctor import Check, Status
from multicast.tools.doctor_queriers import KernelState, check_querier_presence, parse_mld_queries

ETH0 = Interface(
    "eth0", 2, True, False, True, 1500, (IPv4Address("198.18.1.3"),), (IPv6Address("fe80::3"),)
)
V4_ONLY = Interface("eth1", 3, True, False, True, 1500, (IPv4Address("198.18.2.3"),))
LOOPBACK = Interface("lo", 1, True, True, True, 65536, (IPv4Address("127.0.0.1"),))
DOWN = Interface("eth2", 4, False, False, True, 1500, (IPv4Address("198.18.3.3"),))
QUIET = KernelState({"eth0": "V3", "eth1": "V3"}, {}, {"eth0": 0})


def found(checks: list[Check], subject: str) -> tuple[Status, str, str | None]:
    (check,) = [c for c in checks if c.subject == subject]
    assert check.area == "querier"
    return check.status, check.detail, check.fix


def test_a_listen_that_heard_queriers_reports_them() -> None:
    heard = [
        HeardQuerier("eth0", "IGMP", "198.18.1.1", 3, 4, 10.0, 125.0, 2, 3.0),
        HeardQuerier("eth0", "MLD", "fe80::1", 1, 2, 10.0, None, None, 3.0),
    ]
    checks = check_querier_presence([ETH0], QUIET, heard, 130)
    status, detail, _ = found(checks, "eth0 IGMP")
    assert status is Status.OK
    assert (
        detail == "heard eth0 IGMPv3 querier 198.18.1.1: 4 queries, response 10 s, interval 125 s"
    )
    assert found(checks, "eth0 MLD")[0] is Status.OK


def test_a_listen_that_heard_none_warns_of_the_snooping_hazard_with_the_fix() -> None:
    checks = check_querier_presence([ETH0, V4_ONLY], QUIET, [], 3)
    status, detail, fix = found(checks, "eth1 IGMP")
    assert status is Status.WARN
    assert detail.startswith("no IGMP querier heard in 3 s (queriers ask every 125 s")
    assert "snooping switch forgets" in detail
    assert fix is not None and fix.startswith("run 'multicast querier --iface eth1'")
    assert (
        "listen longer" not in found(check_querier_presence([ETH0], QUIET, [], 130), "eth0 MLD")[1]
    )
    assert [c.subject for c in checks] == ["eth0 IGMP", "eth0 MLD", "eth1 IGMP"]


def test_without_a_listen_the_kernel_state_speaks() -> None:
    kernel = KernelState({"eth0": "V2", "eth1": "V3"}, {}, {"eth0": 7})
    checks = check_querier_presence([ETH0, V4_ONLY, LOOPBACK, DOWN], kernel, None, 0)
    assert found(checks, "eth0 IGMP")[:2] == (
        Status.OK,
        "an IGMPv2 querier is present (the kernel runs V2)",
    )
    assert found(checks, "eth1 IGMP")[0] is Status.INFO
    assert found(checks, "eth0 MLD")[:2] == (Status.OK, "7 MLD queries received since it came up")
    assert {c.subject for c in checks} == {"eth0 IGMP", "eth0 MLD", "eth1 IGMP"}


def test_no_mld_query_since_the_interface_came_up_is_the_hazard() -> None:
    status, detail, fix = found(check_querier_presence([ETH0], QUIET, None, 0), "eth0 MLD")
    assert status is Status.WARN and "no MLD query received since eth0 came up" in detail
    assert fix is not None and "multicast querier --iface eth0" in fix


def test_a_forced_igmp_version_says_nothing_of_a_querier() -> None:
    kernel = KernelState({"eth0": "V2"}, {"eth0": 2}, {"eth0": 1})
    status, detail, _ = found(check_querier_presence([ETH0], kernel, None, 0), "eth0 IGMP")
    assert status is Status.INFO and "forced to v2" in detail


def test_the_mld_query_counter_is_read_from_dev_snmp6() -> None:
    text = "Icmp6InMsgs                     \t12\nIcmp6InGroupMembQueries         \t5\n"
    assert parse_mld_queries(text) == 5
    assert parse_mld_queries("Icmp6InMsgs 3\n") is None
