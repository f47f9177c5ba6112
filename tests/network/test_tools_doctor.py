"""``multicast doctor`` run live: in the test namespace and on a test-bed host with faults."""

from __future__ import annotations

import json
import socket
import time

import pytest

from multicast.cli import main
from multicast.core import list_interfaces, parse_group
from multicast.testing import Host, Testbed
from multicast.tools.doctor import GroupMembership, Status, run_doctor, self_test


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


# Drops UDP to the all-hosts group as it arrives, the self-test's copy included.
DROP_ALL_HOSTS = """\
table inet selftest {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tip daddr 224.0.0.1 meta l4proto udp drop
\t}
}
"""


def test_self_test_waits_its_timeout_for_a_datagram_dropped_on_arrival(testbed: Testbed) -> None:
    h1, h2 = testbed.add_hosts(2)
    testbed.connect(h1, h2)
    (eth0,) = [i for i in h1.call(list_interfaces) if i.name == "eth0"]
    assert h1.call(self_test, eth0, socket.AF_INET, 2.0).status is Status.OK
    h1.run(["nft", "-f", "-"], input=DROP_ALL_HOSTS)
    began = time.monotonic()
    check = h1.call(self_test, eth0, socket.AF_INET, 0.3)
    assert time.monotonic() - began >= 0.3
    assert (check.status, check.subject) == (Status.FAIL, "eth0 224.0.0.1")
    assert check.detail.startswith("a TTL-0 datagram did not come back within 0.3 s")
    assert h1.call(self_test, eth0, socket.AF_INET6, 2.0).status is Status.OK


def routed_to_lo(host: Host, *, interface_local: bool = True) -> None:
    """Multicast routed to lo, as scripts/netns-run does (without the local-table route of
    interface-local IPv6 groups if ``interface_local`` is false)."""
    host.ip("link set lo multicast on", "route add 224.0.0.0/4 dev lo src 127.0.0.1")
    host.run(["ip", "-6", "route", "add", "ff00::/8", "dev", "lo"])
    if interface_local:
        host.run(["ip", "-6", "route", "add", "table", "local", "ff01::/16", "dev", "lo"])


DROP_239 = """\
table inet narrow {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tip daddr 239.0.0.0/8 drop
\t}
}
"""


def test_a_rule_dropping_part_of_multicast_is_named_with_its_range(testbed: Testbed) -> None:
    """A rule that drops 239.0.0.0/8 (not the whole of 224.0.0.0/4) is still found, and for
    the user's own group the self-test fails and the firewall check names the rule."""
    (h1,) = testbed.add_hosts(1)
    routed_to_lo(h1)
    h1.run(["nft", "-f", "-"], input=DROP_239)
    general = h1.call(run_doctor, run_self_test=False)
    (rule,) = [c for c in general.checks if c.area == "firewall" and c.problem]
    assert (
        rule.detail == "inet narrow input: ip daddr 239.0.0.0/8 drop drops multicast to 239.0.0.0/8"
    )
    own = h1.call(run_doctor, timeout=0.3, group=parse_group("239.1.2.3"), port=5000)
    problems = {(c.area, c.subject): c for c in own.problems}
    assert set(problems) == {("firewall", "nft"), ("self-test", "lo 239.1.2.3 port 5000")}
    assert problems["firewall", "nft"].detail.endswith("drops datagrams to 239.1.2.3 port 5000")
    fine = h1.call(run_doctor, timeout=2.0, group=parse_group("238.1.2.3"), port=5000)
    assert not fine.problems, "\n".join(map(str, fine.problems))
    assert [c.subject for c in fine.checks if c.area == "self-test"] == ["lo 238.1.2.3 port 5000"]


def test_interface_local_groups_on_lo_without_their_route_are_named(testbed: Testbed) -> None:
    """Without ``ip -6 route add table local ff01::/16 dev lo`` the kernel delivers no
    interface-local group on lo: doctor says so instead of blaming a firewall."""
    (h1,) = testbed.add_hosts(1)
    routed_to_lo(h1, interface_local=False)
    problems = h1.call(run_doctor, timeout=0.3).problems
    (missing,) = [c for c in problems if "lo" in c.subject]
    assert (missing.area, missing.subject) == ("routes", "lo ff01::/16")
    assert missing.fix == "ip -6 route add table local ff01::/16 dev lo"
    h1.run(["ip", "-6", "route", "add", "table", "local", "ff01::/16", "dev", "lo"])
    assert not h1.call(run_doctor, timeout=2.0).problems


def test_ipv6_groups_lo_cannot_deliver_are_not_blamed_on_a_firewall(testbed: Testbed) -> None:
    """On lo Linux delivers only interface-local IPv6 groups, each prefix with its own
    local-table route: a wider group is said to be untestable there (not a problem), an
    interface-local one without its route names the route to add, not a firewall."""
    (h1,) = testbed.add_hosts(1)
    routed_to_lo(h1)  # the route of ff01::/16 only
    wide = h1.call(run_doctor, timeout=0.3, group=parse_group("ff0e::8:5"), port=5000)
    assert not wide.problems, "\n".join(map(str, wide.problems))
    (on_lo,) = [c for c in wide.checks if c.area == "self-test"]
    assert (on_lo.status, on_lo.subject) == (Status.INFO, "lo ff0e::8:5")
    assert "only interface-local IPv6 groups" in on_lo.detail
    transient = h1.call(run_doctor, timeout=0.3, group=parse_group("ff11::5"), port=5000)
    (missing,) = transient.problems
    assert (missing.area, missing.subject) == ("routes", "lo ff11::/16")
    assert missing.fix == "ip -6 route add table local ff11::/16 dev lo"
    h1.run(["ip", "-6", "route", "add", "table", "local", "ff11::/16", "dev", "lo"])
    assert not h1.call(run_doctor, timeout=2.0, group=parse_group("ff11::5"), port=5000).problems


def test_doctor_self_tests_the_users_own_group_from_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _ = main(["doctor", "--group", "239.1.2.3", "--port", "5999", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (code, report["problems"]) == (0, 0)
    tests = [c for c in report["checks"] if c["area"] == "self-test"]
    assert [(c["subject"], c["status"]) for c in tests] == [("lo 239.1.2.3 port 5999", "ok")]
    (rule,) = [c for c in report["checks"] if c["area"] == "ttl"]
    assert "only when the host is a member of its group" in rule["detail"]
    assert main(["doctor", "--port", "5999"])[0] == 64
