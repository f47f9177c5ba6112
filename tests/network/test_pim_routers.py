"""Multicast across a line of three PIM-SM routers (FRR ``pimd``), ASM and SSM.

    sender --link 1-- r1 --link 2-- r2 (RP) --link 3-- r3 --link 4-- rcv1
                                                          \\-link 5-- rcv2

Counting hops honestly: Linux forwards a multicast datagram only if its TTL is above 1, and
sends it on with one less. A datagram sent with TTL t reaches r1 with t, r2 with t - 1, r3
with t - 2, and a receiver with t - 3: TTL 4 crosses the three routers (and arrives with 1),
TTL 3 reaches r3 with 1 and goes no further.

One line serves the whole module (it starts in about a second); each test uses groups of
its own. Every wait is bounded.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from multicast.core import Datagram, Receiver, Sender
from multicast.testing import Host, Testbed
from multicast.testing.routers import RoutedLine, frr_problem, routed_line, wait_until

from support import REPOSITORY
from support.hosts import PORT, receiver

LIMIT = 15.0  # seconds: the bound on any one wait here
SOURCE = "198.18.1.1"  # the sender, on link 1


@pytest.fixture(scope="module")
def line() -> Iterator[RoutedLine]:
    problem = frr_problem()
    if problem is not None:
        pytest.skip(problem)
    with Testbed() as testbed:
        routed = routed_line(testbed)
        routed.converge()
        yield routed
        routed.stop()


@pytest.fixture
def sender(line: RoutedLine) -> Iterator[Sender]:
    with line.sender.call(Sender, socket.AF_INET, ttl=8, interface="eth0") as opened:
        yield opened


def until_received(sender: Sender, group: str, waiting: Receiver, payload: bytes) -> Datagram:
    """Send ``payload`` to ``group`` every 50 ms until ``waiting`` gets it (a tree is built on
    the first datagrams); the datagram, once the rest are drained."""
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        sender.send(payload, group, PORT)
        for datagram in waiting.receive_batch(64, timeout=0.05):
            if datagram.payload == payload:
                time.sleep(0.1)
                waiting.receive_ready()
                return datagram
    raise AssertionError(f"{payload!r} to {group} never arrived")


def test_asm_through_the_rp_and_ssm_cross_three_routers(
    line: RoutedLine, sender: Sender, exit_stack: ExitStack
) -> None:
    rcv1, rcv2 = line.receivers
    any_source = receiver(exit_stack, rcv1, ["239.20.0.1"])
    source_specific = receiver(exit_stack, rcv2, ["232.20.0.1"], sources=[SOURCE])
    for group, waiting in (("239.20.0.1", any_source), ("232.20.0.1", source_specific)):
        got = until_received(sender, group, waiting, group.encode())
        assert (got.source[0], got.ttl) == (SOURCE, 8 - 3)
    r1, r2, r3 = line.routers
    assert "yes" in r2.vtysh("show ip pim rp-info")  # r2 is the rendezvous point
    # each router forwards (S,G) on towards the receivers: r3 to rcv1 (eth1) and rcv2 (eth2)
    assert r1.outgoing("239.20.0.1", SOURCE) == r2.outgoing("239.20.0.1", SOURCE) == {"eth1"}
    assert r3.outgoing("239.20.0.1", SOURCE) == {"eth1"}
    assert r3.outgoing("232.20.0.1", SOURCE) == {"eth2"}


def test_ttl_4_crosses_three_routers_and_ttl_3_stops_at_the_last(
    line: RoutedLine, sender: Sender, exit_stack: ExitStack
) -> None:
    group = "232.20.0.2"
    beyond = receiver(exit_stack, line.receivers[0], [group], sources=[SOURCE])
    last_router = receiver(exit_stack, line.routers[2].host, [group], sources=[SOURCE])
    until_received(sender, group, beyond, b"tree")
    last_router.receive_ready()
    for ttl in (3, 4):  # the one that must not cross goes first, on the same path
        with line.sender.call(Sender, socket.AF_INET, ttl=ttl, interface="eth0") as once:
            once.send(f"ttl {ttl}".encode(), group, PORT)
    at_r3 = [last_router.receive(timeout=LIMIT) for _ in range(2)]
    assert [(d.payload, d.ttl) for d in at_r3] == [(b"ttl 3", 1), (b"ttl 4", 2)]
    got = beyond.receive(timeout=LIMIT)
    assert (got.payload, got.ttl) == (b"ttl 4", 1)
    assert beyond.receive_ready() == []


def kernel_routes(router: Host) -> str:
    """The kernel's multicast routing table of ``router`` (``ip mroute show``)."""
    return router.run(["ip", "mroute", "show"]).stdout


def test_a_receiver_that_leaves_stops_the_flow_on_its_branch(
    line: RoutedLine, sender: Sender
) -> None:
    group = "239.20.0.3"
    rcv1, rcv2 = line.receivers
    r2, r3 = line.routers[1:]
    with ExitStack() as first, ExitStack() as second:
        staying = receiver(first, rcv1, [group])
        leaving = receiver(second, rcv2, [group])
        until_received(sender, group, staying, b"both")
        until_received(sender, group, leaving, b"both again")
        assert r3.outgoing(group, SOURCE) == {"eth1", "eth2"}
        second.close()  # rcv2 leaves (an IGMPv3 report changing the group to include {})
        wait_until(
            "r3 stops forwarding to rcv2",
            lambda: r3.outgoing(group, SOURCE) == {"eth1"},
            LIMIT,
        )
        assert f"({SOURCE},{group})" in kernel_routes(r3.host)
        assert "Oifs: eth1 " in kernel_routes(r3.host).split(f"({SOURCE},{group})")[1]
        until_received(sender, group, staying, b"rcv1 still gets it")
    # rcv1 left too: r3 has nobody, prunes upstream, and r2 stops sending down link 3
    wait_until("r2 stops forwarding to r3", lambda: not r2.outgoing(group, SOURCE), LIMIT)


def test_a_router_restarted_mid_stream_recovers(
    line: RoutedLine, sender: Sender, exit_stack: ExitStack
) -> None:
    rcv1, rcv2 = line.receivers
    ssm = receiver(exit_stack, rcv1, ["232.20.0.4"], sources=[SOURCE])
    asm = receiver(exit_stack, rcv2, ["239.20.0.4"])
    flows = (("232.20.0.4", ssm), ("239.20.0.4", asm))
    for group, waiting in flows:
        until_received(sender, group, waiting, b"before")
    r2 = line.routers[1]
    r2.stop()  # pimd leaves: the kernel drops r2's multicast routes
    for _ in range(5):
        for group, _waiting in flows:
            sender.send(b"while down", group, PORT)
        time.sleep(0.05)
    assert all(waiting.receive_batch(64, timeout=0.2) == [] for _, waiting in flows)
    r2.start()
    started = time.monotonic()
    for group, waiting in flows:
        until_received(sender, group, waiting, b"after")
    assert time.monotonic() - started < LIMIT


def test_the_routed_example_runs_in_under_a_minute() -> None:
    problem = frr_problem()
    if problem is not None:
        pytest.skip(problem)
    example = REPOSITORY / "examples" / "routed.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "rcv2 got b'ttl 4' with TTL 1; nothing else: True" in done.stdout
    assert "both groups flow again" in done.stdout
