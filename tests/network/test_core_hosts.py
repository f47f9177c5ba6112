"""``multicast.core`` across hosts of the test bed, on IPv4 and IPv6 (issue 2, section 4).

Receivers and senders are made inside a host (``host.call``) so that they join, resolve
interfaces and route there; the test then reads them from its own thread.

Negative checks ("never delivered") need no waiting: a datagram meant to be refused is sent
first, and a second socket on the same host is seen to receive it. The kernel hands one
arriving datagram to every matching socket of the host in one pass, so by then the refusing
socket has had its chance, and whatever it got would be read before the datagram it should get.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack
from dataclasses import dataclass
from ipaddress import ip_address

import pytest

from multicast.core import Scope, parse_group
from multicast.testing import Testbed

from support.hosts import receiver, send

TIMEOUT = 5.0  # seconds any one datagram may take; never reached when things work


@dataclass(frozen=True)
class Case:
    """The groups one address family is tested with."""

    family: socket.AddressFamily
    group: str  # any-source
    other_group: str  # any-source, same port
    ssm_group: str  # in the source-specific range

    def __str__(self) -> str:
        return "ipv4" if self.family == socket.AF_INET else "ipv6"


CASES = [
    Case(socket.AF_INET, "239.5.5.1", "239.5.5.2", "232.5.5.1"),
    Case(socket.AF_INET6, "ff0e::5:1", "ff0e::5:2", "ff3e::8000:5"),
]
by_family = pytest.mark.parametrize("case", CASES, ids=str)


@by_family
def test_ssm_receiver_accepts_the_chosen_source_and_refuses_another(
    testbed: Testbed, exit_stack: ExitStack, case: Case
) -> None:
    host, chosen, other = testbed.add_hosts(3)
    testbed.bridge(host, chosen, other)
    source = chosen.address(case.family)
    specific = receiver(exit_stack, host, [case.ssm_group], sources=[source])
    witness = receiver(exit_stack, host, [case.ssm_group])  # any source

    send(other, case.ssm_group, b"other")
    assert witness.receive(timeout=TIMEOUT).source[0] == other.address(case.family)
    send(chosen, case.ssm_group, b"chosen")

    got = specific.receive(timeout=TIMEOUT)
    assert (got.payload, got.source[0], got.group) == (b"chosen", source, case.ssm_group)
    assert specific.receive_ready() == []


@by_family
def test_receiver_joined_on_one_interface_hears_only_that_link(
    testbed: Testbed, exit_stack: ExitStack, case: Case
) -> None:
    host, left, right = testbed.add_hosts(3)
    testbed.connect(host, left)  # host eth0
    testbed.connect(host, right)  # host eth1
    on_eth1 = receiver(exit_stack, host, [case.group], interfaces="eth1")
    witness = receiver(exit_stack, host, [case.group], interfaces=["eth0", "eth1"])

    send(left, case.group, b"left")
    assert witness.receive(timeout=TIMEOUT).interface == host.interface("eth0").index
    send(right, case.group, b"right")

    got = on_eth1.receive(timeout=TIMEOUT)
    assert (got.payload, got.source[0]) == (b"right", right.address(case.family))
    assert got.interface == host.interface("eth1").index
    assert on_eth1.receive_ready() == []


@by_family
@pytest.mark.parametrize("spec", ["name", "index", "address"])
def test_sender_leaves_by_the_interface_given(
    testbed: Testbed, exit_stack: ExitStack, case: Case, spec: str
) -> None:
    host, left, right = testbed.add_hosts(3)
    testbed.connect(host, left)  # host eth0: where the routing table sends multicast
    testbed.connect(host, right)  # host eth1
    on_left = receiver(exit_stack, left, [case.group])
    on_right = receiver(exit_stack, right, [case.group])
    eth1 = host.interface("eth1")
    interface = {"name": "eth1", "index": eth1.index, "address": eth1.address(case.family)}[spec]

    send(host, case.group, b"to-right", interface=interface)
    got = on_right.receive(timeout=TIMEOUT)
    assert (got.payload, got.source[0]) == (b"to-right", eth1.address(case.family))
    send(host, case.group, b"to-left", interface="eth0")
    assert on_left.receive(timeout=TIMEOUT).payload == b"to-left"
    assert on_left.receive_ready() == []


@by_family
def test_isolated_receivers_get_only_their_own_group_on_a_shared_port(
    testbed: Testbed, exit_stack: ExitStack, case: Case
) -> None:
    sender, host = testbed.add_hosts(2)
    testbed.connect(sender, host)
    first = receiver(exit_stack, host, [case.group])
    second = receiver(exit_stack, host, [case.other_group])
    unisolated = receiver(exit_stack, host, [case.group], isolate=False)

    send(sender, case.other_group, b"second")
    assert second.receive(timeout=TIMEOUT).payload == b"second"
    # Without isolation the kernel hands over a group the socket never joined.
    assert unisolated.receive(timeout=TIMEOUT).group == case.other_group
    send(sender, case.group, b"first")

    got = first.receive(timeout=TIMEOUT)
    assert (got.payload, got.group) == (b"first", case.group)
    assert first.receive_ready() == []


@by_family
@pytest.mark.parametrize("reuse_port", [False, True], ids=["reuseaddr", "reuseport"])
def test_every_receiver_on_one_port_gets_each_datagram(
    testbed: Testbed, exit_stack: ExitStack, case: Case, reuse_port: bool
) -> None:
    sender, a, b = testbed.add_hosts(3)
    testbed.bridge(sender, a, b)
    receivers = [
        receiver(exit_stack, host, [case.group], reuse_port=reuse_port) for host in (a, a, b, b)
    ]

    send(sender, case.group, b"all")
    for each in receivers:
        got = each.receive(timeout=TIMEOUT)
        assert (got.payload, got.source[0]) == (b"all", sender.address(case.family))


@pytest.mark.parametrize("group", ["ff02::5:1", "ff05::5:1", "ff0e::5:1"])
def test_ipv6_link_site_and_global_scopes_cross_a_veth(
    testbed: Testbed, exit_stack: ExitStack, group: str
) -> None:
    sender, host = testbed.add_hosts(2)
    testbed.connect(sender, host)
    joined = receiver(exit_stack, host, [group])

    send(sender, group, b"scoped")
    got = joined.receive(timeout=TIMEOUT)
    assert (got.payload, got.group) == (b"scoped", group)
    assert got.interface == host.interface("eth0").index
    # The kernel picks a source of the group's scope: link-local for ff02::, global beyond.
    link_scoped = parse_group(group).scope == Scope.LINK_LOCAL
    assert ip_address(got.source[0]).is_link_local == link_scoped


def test_interface_local_ipv6_group_never_leaves_the_host(
    testbed: Testbed, exit_stack: ExitStack
) -> None:
    sender, host = testbed.add_hosts(2)
    testbed.connect(sender, host)
    joined = receiver(exit_stack, host, ["ff01::5:1", "ff02::5:1"])

    send(sender, "ff01::5:1", b"stays")
    send(sender, "ff02::5:1", b"crosses")
    assert joined.receive(timeout=TIMEOUT).payload == b"crosses"
    assert joined.receive_ready() == []


@by_family
def test_received_ttl_is_the_one_sent(testbed: Testbed, exit_stack: ExitStack, case: Case) -> None:
    sender, host = testbed.add_hosts(2)
    testbed.connect(sender, host)
    joined = receiver(exit_stack, host, [case.group])

    for ttl in (1, 7, 255):
        send(sender, case.group, b"ttl", ttl=ttl)
        assert joined.receive(timeout=TIMEOUT).ttl == ttl


@by_family
def test_destination_group_is_reported_for_two_groups_on_one_socket(
    testbed: Testbed, exit_stack: ExitStack, case: Case
) -> None:
    sender, host = testbed.add_hosts(2)
    testbed.connect(sender, host)
    joined = receiver(exit_stack, host, [case.group, case.other_group])

    send(sender, case.group, b"one")
    send(sender, case.other_group, b"two")
    got = sorted((d.payload, d.group) for d in (joined.receive(timeout=TIMEOUT) for _ in "12"))
    assert got == [(b"one", case.group), (b"two", case.other_group)]
