"""Multicast across a router namespace, and what the sending host itself gets (issue 8).

The router is a host of the test bed running ``smcrouted`` (Debian ``smcroute``), which
installs kernel multicast routes from its eth0 (the senders' link) to its eth1 (the
receivers' link). Its interfaces keep smcroute's default TTL threshold of 1: a datagram is
forwarded only with a TTL (IPv6: hop limit) above 1, and leaves with one less.

Negative checks need no waiting (see ``test_core_hosts.py``): the datagram that must not
arrive is sent first, and one sent after it on the same path is seen to arrive first.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from multicast.testing import WAIT, Host, Testbed
from multicast.testing.routers import multicast_routing_problem
from multicast.tools import Monitor, run_stream

from support.hosts import PORT, receiver, send

TIMEOUT = 5.0  # seconds any one datagram may take; never reached when things work


@dataclass(frozen=True)
class Case:
    family: socket.AddressFamily
    group: str
    ssm_group: str

    def __str__(self) -> str:
        return "ipv4" if self.family == socket.AF_INET else "ipv6"


CASES = [
    Case(socket.AF_INET, "239.7.7.1", "232.7.7.1"),
    Case(socket.AF_INET6, "ff0e::7:1", "ff3e::8000:7"),
]
by_family = pytest.mark.parametrize("case", CASES, ids=str)


@dataclass
class Routed:
    """Senders on link 1, the router between link 1 (its eth0) and link 2 (its eth1), and
    receivers on link 2."""

    senders: list[Host]
    router: Host
    receivers: list[Host]


def start_router(router: Host, directory: Path, routes: list[str]) -> None:
    """Run ``smcrouted`` on ``router`` with ``routes`` (smcroute.conf ``mroute`` lines)."""
    config = directory / "smcroute.conf"
    config.write_text("\n".join(["phyint eth0 enable", "phyint eth1 enable", *routes]) + "\n")
    pid_file = directory / "smcroute.pid"
    log = (directory / "smcroute.log").open("w")
    router.popen(
        [
            "smcrouted", "-n", "-N", "-l", "info",
            "-f", str(config), "-i", router.netns,
            "-u", str(directory / "smcroute.sock"), "-P", str(pid_file),
        ],
        stdout=log,
        stderr=log,
    )  # fmt: skip
    log.close()  # the daemon holds its own copy
    deadline = time.monotonic() + WAIT
    while not pid_file.exists():  # written once the configuration is in the kernel
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"smcrouted did not start: {(directory / 'smcroute.log').read_text()}"
            )
        time.sleep(0.01)


@pytest.fixture
def routed(testbed: Testbed, tmp_path: Path) -> Iterator[Routed]:
    """Two senders and a router on a bridge, two receivers on another; groups of CASES routed."""
    if shutil.which("smcrouted") is None:
        pytest.skip("smcrouted is not installed (Debian package smcroute)")
    problem = multicast_routing_problem()
    if problem is not None:
        pytest.skip(problem)
    s1, s2, router, r1, r2 = testbed.add_hosts(5)
    testbed.bridge(s1, s2, router)  # router eth0
    testbed.bridge(router, r1, r2)  # router eth1
    router.sysctl({"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1"})
    groups = [group for case in CASES for group in (case.group, case.ssm_group)]
    start_router(router, tmp_path, [f"mroute from eth0 group {g} to eth1" for g in groups])
    yield Routed([s1, s2], router, [r1, r2])


@by_family
def test_ttl_1_stops_at_the_router_and_ttl_2_crosses_it(
    routed: Routed, exit_stack: ExitStack, case: Case
) -> None:
    sender = routed.senders[0]
    at_router = receiver(exit_stack, routed.router, [case.group])
    beyond = receiver(exit_stack, routed.receivers[0], [case.group])

    send(sender, case.group, b"ttl 1", ttl=1)
    assert at_router.receive(timeout=TIMEOUT).payload == b"ttl 1"  # it reached the router
    send(sender, case.group, b"ttl 2", ttl=2)

    got = beyond.receive(timeout=TIMEOUT)
    assert (got.payload, got.ttl, got.source[0]) == (b"ttl 2", 1, sender.address(case.family))
    assert beyond.receive_ready() == []


@by_family
def test_ttl_crosses_the_router_less_one(routed: Routed, exit_stack: ExitStack, case: Case) -> None:
    beyond = [receiver(exit_stack, host, [case.group]) for host in routed.receivers]

    for ttl in (2, 64, 255):
        send(routed.senders[0], case.group, b"routed", ttl=ttl)
        for each in beyond:
            assert each.receive(timeout=TIMEOUT).ttl == ttl - 1


@by_family
def test_monitor_counts_the_hops_of_a_stream_across_the_router(
    routed: Routed, exit_stack: ExitStack, case: Case
) -> None:
    host = routed.receivers[0]
    monitor = exit_stack.enter_context(
        host.call(Monitor, [case.group], PORT, interfaces=["eth0"], sent_ttl=8)
    )
    routed.senders[0].call(run_stream, case.group, PORT, rate="1000pps", count=20, ttl=8)
    report = host.call(monitor.run, count=20, duration=WAIT)

    (sender,) = report.senders
    assert (sender.received, sender.lost, sender.ttl_min, sender.ttl_max) == (20, 0, 7, 7)
    assert (sender.hops_min, sender.hops_max) == (1, 1)
    assert "hops 1-1" in str(report)
    assert sender.as_dict()["hops"] == {"min": 1, "max": 1}


@by_family
def test_ssm_receiver_beyond_the_router_gets_only_its_source(
    routed: Routed, exit_stack: ExitStack, case: Case
) -> None:
    chosen, other = routed.senders
    host = routed.receivers[0]
    specific = receiver(exit_stack, host, [case.ssm_group], sources=[chosen.address(case.family)])
    witness = receiver(exit_stack, host, [case.ssm_group])  # any source

    send(other, case.ssm_group, b"other", ttl=2)
    assert witness.receive(timeout=TIMEOUT).source[0] == other.address(case.family)
    send(chosen, case.ssm_group, b"chosen", ttl=2)

    got = specific.receive(timeout=TIMEOUT)
    assert (got.payload, got.source[0], got.ttl) == (b"chosen", chosen.address(case.family), 1)
    assert specific.receive_ready() == []


@by_family
def test_loopback_decides_whether_the_sending_host_hears_itself(
    testbed: Testbed, exit_stack: ExitStack, case: Case
) -> None:
    """On a veth (not lo): the sender's own receivers get a datagram only with loopback on."""
    host, peer = testbed.add_hosts(2)
    testbed.connect(host, peer)
    own = receiver(exit_stack, host, [case.group])
    remote = receiver(exit_stack, peer, [case.group])

    send(host, case.group, b"loopback off", loopback=False, interface="eth0")
    send(host, case.group, b"loopback on", loopback=True, interface="eth0")

    assert [remote.receive(timeout=TIMEOUT).payload for _ in "12"] == [
        b"loopback off",
        b"loopback on",
    ]
    got = own.receive(timeout=TIMEOUT)
    assert (got.payload, got.source[0]) == (b"loopback on", host.address(case.family))
    assert own.receive_ready() == []
