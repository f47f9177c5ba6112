"""``multicast doctor``: its parsers on captured kernel output, and live runs in namespaces."""

from __future__ import annotations

import sys

import pytest

from multicast.core import Interface
from multicast.testbed import Testbed
from multicast.tools.doctor import (
    Check,
    GroupMembership,
    Status,
    check_forced_versions,
    check_interfaces,
    check_queriers,
    check_reverse_path,
    firewall_checks,
    parse_igmp,
    parse_igmp6,
    run_doctor,
)

little_endian = pytest.mark.skipif(sys.byteorder != "little", reason="sample from x86")

IGMP = """\
Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter
1\tlo        :     1      V3
\t\t\t\t010000E0     1 0:00000000\t\t0
3\teth0      :     2      V2
\t\t\t\t030201EF     2 0:00000000\t\t1
\t\t\t\t010000E0     1 0:00000000\t\t0
"""

IGMP6 = """\
1    lo              ff020000000000000000000000000001     1 0000000C 0
3    eth0            ff0200000000000000000001ffb43b03     1 00000004 0
3    eth0            ff3e0000000000000000000000008001     2 00000004 0
"""

IPTABLES = """\
-P INPUT DROP
-P FORWARD DROP
-P OUTPUT ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -d 224.0.0.0/4 -p udp -j DROP
"""

NFT_OPEN = """\
table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept
\t\tmeta pkttype multicast accept
\t}
}
"""


def by_subject(checks: list[Check]) -> dict[str, Check]:
    return {check.subject: check for check in checks}


@little_endian
def test_parse_igmp() -> None:
    memberships, versions = parse_igmp(IGMP)
    assert memberships == [
        GroupMembership("lo", "224.0.0.1", 1),
        GroupMembership("eth0", "239.1.2.3", 2),
        GroupMembership("eth0", "224.0.0.1", 1),
    ]
    assert versions == {"lo": "V3", "eth0": "V2"}
    assert parse_igmp("") == ([], {})
    assert parse_igmp("header\ngarbage : here\n\t\tZZZZ 1\n") == ([], {})


def test_parse_igmp6() -> None:
    assert parse_igmp6(IGMP6) == [
        GroupMembership("lo", "ff02::1", 1),
        GroupMembership("eth0", "ff02::1:ffb4:3b03", 1),
        GroupMembership("eth0", "ff3e::8001", 2),
    ]
    assert parse_igmp6("1 lo nothex 1\n\n") == []


def test_interfaces_without_multicast_flag() -> None:
    checks = by_subject(
        check_interfaces(
            [
                Interface("lo", 1, up=True, loopback=True, multicast=False, mtu=65536),
                Interface("eth0", 2, up=True, loopback=False, multicast=False, mtu=1500),
                Interface("eth1", 3, up=False, loopback=False, multicast=False, mtu=1500),
            ]
        )
    )
    assert checks["lo"].status is Status.OK  # loopback works without the flag for IPv4
    assert checks["eth0"].fix == "ip link set dev eth0 multicast on"
    assert checks["eth1"].status is Status.OK  # down: nothing to say about it here


def test_reverse_path_takes_the_larger_of_all_and_the_interface() -> None:
    checks = by_subject(check_reverse_path({"all": 1, "default": 1, "lo": 0, "eth0": 2}))
    assert set(checks) == {"lo", "eth0"}
    assert checks["lo"].status is Status.WARN
    assert "net.ipv4.conf.lo.rp_filter=2" in (checks["lo"].fix or "")
    assert (checks["eth0"].status, checks["eth0"].detail) == (Status.OK, "loose")


def test_forced_versions_and_queriers() -> None:
    checks = check_forced_versions({"eth0": 2, "eth1": 0, "eth2": 3}, {"eth0": 1})
    problems = [(c.area, c.subject, c.fix) for c in checks if c.problem]
    assert problems == [
        ("igmp", "eth0", "sysctl -w net.ipv4.conf.eth0.force_igmp_version=0"),
        ("mld", "eth0", "sysctl -w net.ipv6.conf.eth0.force_mld_version=0"),
    ]
    queriers = by_subject(check_queriers({"eth0": "V2", "eth1": "V2", "lo": "V3"}, {"eth0": 2}))
    assert set(queriers) == {"eth1", "lo"}  # eth0's forced version is reported elsewhere
    assert queriers["eth1"].status is Status.WARN
    assert queriers["lo"].status is Status.OK


def test_firewall_rules() -> None:
    found = firewall_checks(IPTABLES, "iptables")
    details = [check.detail for check in found]
    assert len(found) == 2 and all(check.status is Status.WARN for check in found)
    assert "-A INPUT -d 224.0.0.0/4 -p udp -j DROP" in details[1]
    assert "dropped by default" in details[0]
    assert found[0].fix == "iptables -I INPUT -m pkttype --pkt-type multicast -j ACCEPT"
    assert [c.status for c in firewall_checks(NFT_OPEN, "nft")] == [Status.OK]
    closed = NFT_OPEN.replace("meta pkttype multicast accept", "ip protocol igmp drop")
    assert [c.detail for c in firewall_checks(closed, "nft")] == [
        "incoming traffic is dropped by default and no rule accepts multicast: "
        "type filter hook input priority filter; policy drop;",
        "rule drops multicast: ip protocol igmp drop",
    ]


def test_doctor_here_finds_no_problem() -> None:
    """The test namespace (lo with multicast on and routed) is healthy; self-tests pass."""
    report = run_doctor(timeout=2.0)
    assert not report.problems, "\n".join(str(check) for check in report.problems)
    tests = {check.subject for check in report.checks if check.area == "self-test"}
    assert tests == {"lo 224.0.0.1", "lo ff01::1"}
    assert GroupMembership("lo", "224.0.0.1", 1) in report.memberships
    first = report.checks[0].as_dict()
    assert report.as_dict()["problems"] == 0
    assert set(first) == {"area", "subject", "status", "detail", "fix"}


def test_doctor_finds_problems_on_a_host(testbed: Testbed) -> None:
    """A host with a flag off, strict rp_filter, IGMPv2 forced and no route: each is found."""
    h1, h2 = testbed.add_hosts(2)
    testbed.connect(h1, h2)
    testbed.connect(h1, h2)
    h1.ip("link set eth1 multicast off", "route del 224.0.0.0/4 dev eth0", "route del default")
    h1.run(["sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=1"])
    h1.run(["sysctl", "-qw", "net.ipv4.conf.eth0.force_igmp_version=2"])
    report = h1.call(run_doctor, timeout=2.0)
    problems = {(check.area, check.subject): check for check in report.problems}
    assert set(problems) == {
        ("interfaces", "eth1"),
        ("routes", "224.0.0.0/4"),
        ("rp_filter", "eth0"),
        ("igmp", "eth0"),
        ("querier", "eth0 MLD"),  # no MLD query reached eth0: the snooping hazard
    }, "\n".join(str(check) for check in report.problems)
    assert problems["routes", "224.0.0.0/4"].fix == "ip -4 route add 224.0.0.0/4 dev eth0"
    # Only interfaces with the MULTICAST flag are self-tested (this host's lo has none).
    tested = {c.subject for c in report.checks if c.area == "self-test" and not c.problem}
    assert tested == {"eth0 224.0.0.1", "eth0 ff01::1"}
    # The memberships are the host's own (read through /proc/thread-self), not the caller's.
    assert {m.interface for m in report.memberships} == {"lo", "eth0", "eth1"}
