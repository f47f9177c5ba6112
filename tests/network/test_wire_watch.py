"""Where a monitor watches the wire after its leave, and a watch whose interface goes away.

Each test makes a veth pair in the test session's private namespace and deletes it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from multicast.core import open_receiver, resolve_interface, routed_interface
from multicast.tools.wire import WireWatch, joined_interfaces

GROUP = "239.8.9.1"
PORT = 47123


@pytest.fixture
def dummy() -> Iterator[str]:
    """One end of a veth pair, up, with an address; the pair is deleted afterwards."""
    name = "wwatch0"
    for command in (
        ["ip", "link", "add", name, "type", "veth", "peer", "name", "wwatch1"],
        ["ip", "link", "set", "wwatch1", "up"],
        ["ip", "link", "set", name, "up"],
        ["ip", "addr", "add", "198.18.77.1/24", "dev", name],
    ):
        subprocess.run(command, check=True, capture_output=True, timeout=10)
    try:
        yield name
    finally:
        # check=False: a test may have deleted it already
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True, timeout=10)


def test_the_route_names_the_interface_of_a_membership_that_names_none(dummy: str) -> None:
    group = ip_address(GROUP)
    routed = routed_interface(group)
    assert routed is not None and routed.name == "lo"  # the namespace routes 224/4 to lo
    # Another socket (as another process would) holds the group on the veth:
    # the monitor's own membership is still only where the route put it.
    with (
        open_receiver(GROUP, PORT, interfaces=dummy),
        open_receiver(GROUP, PORT + 1) as ours,
    ):
        assert [i.name for i in joined_interfaces(ours.memberships)] == ["lo"]
    assert routed_interface(ip_address("ff02::1")) is None  # link-local: needs a zone


def test_a_watch_whose_interface_is_deleted_ends_with_a_note(dummy: str) -> None:
    watch = WireWatch([resolve_interface(dummy)], [ip_address(GROUP)], PORT)
    try:
        subprocess.run(["ip", "link", "del", dummy], check=True, timeout=10)
        assert watch.read() == []  # no exception: what came before is kept
        assert watch.note == "the wire could not be read to the end: Network is down"
        assert watch.read() == []  # the socket is no longer read
    finally:
        watch.close()
    assert all(sock.fileno() < 0 for sock in watch.sockets)
