"""``multicast doctor`` run live: in the test namespace and on a test-bed host with faults."""

from __future__ import annotations

import socket
import time

from multicast.core import list_interfaces
from multicast.testing import Testbed
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
