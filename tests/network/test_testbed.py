"""The test bed's own tests: addresses, routes, reachability, link changes, callables, tear-down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import ExitStack
from ipaddress import IPv4Interface, IPv6Interface, ip_address

import pytest

from multicast.core import (
    Datagram,
    Receiver,
    Sender,
    list_interfaces,
    open_receiver,
    resolve_interface,
    send_datagram,
)
from multicast.exceptions import MulticastError
from multicast.testing import Host, Link, Testbed, TestbedError, private_namespace_problem

from support import REPOSITORY

FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"), pytest.param(socket.AF_INET6, id="ipv6")]
TIMEOUT = 5.0  # seconds any one datagram may take; never reached when things work


def exchange(
    client: Host, server: Host, family: socket.AddressFamily, address: str = ""
) -> tuple[Datagram, Datagram]:
    """A unicast UDP 'ping' from ``client`` to ``server`` (at ``address``) and the 'pong' back."""
    with ExitStack() as stack:
        listener = stack.enter_context(server.call(Receiver, 0, family=family))
        caller = stack.enter_context(client.call(Receiver, 0, family=family))
        send_datagram(caller.sock, b"ping", address or server.address(family), listener.port)
        ping = listener.receive(timeout=TIMEOUT)
        send_datagram(listener.sock, b"pong", ping.source[0], ping.source[1])
        pong = caller.receive(timeout=TIMEOUT)
    return ping, pong


def interface_names(host: Host) -> list[str]:
    return host.call(lambda: [i.name for i in list_interfaces()])


def two_hosts(testbed: Testbed, topology: str) -> tuple[Host, Host, Link]:
    """Two hosts joined directly (``"veth"``) or through a bridge (``"bridge"``)."""
    a, b = testbed.add_hosts(2)
    link = testbed.connect(a, b) if topology == "veth" else testbed.bridge(a, b)
    return a, b, link


def test_each_host_has_its_addresses_on_each_link(testbed: Testbed) -> None:
    h1, h2, h3 = testbed.add_hosts(3)
    direct = testbed.connect(h1, h2)
    shared = testbed.bridge(h1, h2, h3)

    assert (direct.number, shared.number) == (1, 2)
    assert [n.name for n in h1.nics] == ["eth0", "eth1"]
    assert shared.nic(h3).name == "eth0"
    assert h1.interface("eth1").ipv4 == IPv4Interface("198.18.2.1/24")
    assert h3.interface("eth0").ipv6 == IPv6Interface("2001:db8:2::3/64")
    assert h2.address(socket.AF_INET) == "198.18.1.2"
    assert h2.address(socket.AF_INET6, "eth1") == "2001:db8:2::2"
    assert all(ip_address(n.address(socket.AF_INET)) in n.link.ipv4 for n in h1.nics)

    seen = {i.name: i for i in h1.call(list_interfaces)}
    assert list(seen) == ["lo", "eth0", "eth1"]
    assert seen["lo"].up
    assert all(seen[n].up and seen[n].multicast for n in ("eth0", "eth1"))
    assert ip_address("198.18.2.1") in seen["eth1"].ipv4
    assert ip_address("2001:db8:2::1") in seen["eth1"].ipv6
    assert any(a.is_link_local for a in seen["eth1"].ipv6)
    assert h1.run(["ip", "-6", "addr", "show", "tentative"]).stdout == ""
    settings = h1.run(["cat", "/proc/sys/net/ipv6/conf/eth1/keep_addr_on_down"]).stdout
    assert settings.strip() == "1"


def test_first_link_carries_the_multicast_and_default_routes(testbed: Testbed) -> None:
    h1, h2, h3 = testbed.add_hosts(3)
    testbed.connect(h1, h2)
    testbed.connect(h1, h3)

    ipv4 = h1.run(["ip", "route", "show"]).stdout
    ipv6 = h1.run(["ip", "-6", "route", "show"]).stdout
    assert "224.0.0.0/4 dev eth0" in ipv4
    assert "default dev eth0" in ipv4
    assert "ff00::/8 dev eth0" in ipv6
    assert "default dev eth0" in ipv6
    assert "224.0.0.0/4 dev eth1" not in ipv4
    assert "ff00::/8 dev eth1" not in ipv6


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("topology", ["veth", "bridge"])
def test_hosts_reach_each_other_by_unicast_udp(
    testbed: Testbed, family: socket.AddressFamily, topology: str
) -> None:
    a, b, _ = two_hosts(testbed, topology)
    ping, pong = exchange(a, b, family)
    assert (ping.payload, ping.source[0]) == (b"ping", a.address(family))
    assert (pong.payload, pong.source[0]) == (b"pong", b.address(family))


@pytest.mark.parametrize("family", FAMILIES)
def test_bridge_floods_multicast_to_every_port(
    testbed: Testbed, exit_stack: ExitStack, family: socket.AddressFamily
) -> None:
    sender, *hosts = testbed.add_hosts(3)
    link = testbed.bridge(sender, *hosts)
    assert link.bridge is not None
    assert "mcast_snooping 0" in link.bridge.run(["ip", "-d", "link", "show", "br0"]).stdout

    group = "239.7.7.7" if family == socket.AF_INET else "ff0e::7:7"
    receivers = [
        exit_stack.enter_context(h.call(open_receiver, [group], 4446, interfaces="eth0"))
        for h in hosts
    ]

    def send() -> None:
        with Sender(family) as out:
            out.send(b"flood", group, 4446)

    sender.call(send)
    for receiver in receivers:
        got = receiver.receive(timeout=TIMEOUT)
        assert (got.payload, got.source[0], got.group) == (b"flood", sender.address(family), group)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("topology", ["veth", "bridge"])
def test_link_goes_down_and_comes_back(
    testbed: Testbed, family: socket.AddressFamily, topology: str
) -> None:
    a, b, _ = two_hosts(testbed, topology)

    a.link_down("eth0")
    assert not a.call(resolve_interface, "eth0").up
    with pytest.raises(OSError):  # the kernel dropped the routes through eth0
        exchange(a, b, family)

    a.link_up("eth0")
    assert a.call(resolve_interface, "eth0").up
    assert "224.0.0.0/4 dev eth0" in a.run(["ip", "route", "show"]).stdout
    ping, _ = exchange(a, b, family)
    assert ping.source[0] == a.address(family)


def test_peer_loses_carrier_while_a_link_is_down(testbed: Testbed) -> None:
    a, b = testbed.add_hosts(2)
    testbed.connect(a, b)
    a.link_down("eth0")
    assert "NO-CARRIER" in b.run(["ip", "link", "show", "eth0"]).stdout
    a.link_up("eth0")
    assert "LOWER_UP" in b.run(["ip", "link", "show", "eth0"]).stdout


@pytest.mark.parametrize("topology", ["veth", "bridge"])
def test_interface_is_deleted_and_created_again_under_its_name(
    testbed: Testbed, topology: str
) -> None:
    a, b, _ = two_hosts(testbed, topology)
    before = a.interface("eth0").index

    a.delete_interface("eth0")
    assert interface_names(a) == ["lo"]
    if topology == "veth":
        assert interface_names(b) == ["lo"]  # a veth pair goes as a whole

    a.create_interface("eth0")
    assert interface_names(a) == ["lo", "eth0"]
    assert a.interface("eth0").index != before
    assert "default dev eth0" in a.run(["ip", "route", "show"]).stdout
    for family in (socket.AF_INET, socket.AF_INET6):
        ping, _ = exchange(a, b, family)
        assert ping.source[0] == a.address(family)


def test_callable_runs_inside_the_host_namespace(testbed: Testbed) -> None:
    a, b = testbed.add_hosts(2)
    testbed.connect(a, b)

    def namespace_inode() -> int:
        return os.stat("/proc/thread-self/ns/net").st_ino

    assert a.call(namespace_inode) == os.stat(f"/run/netns/{a.netns}").st_ino
    assert a.call(namespace_inode) != namespace_inode() != b.call(namespace_inode)
    assert interface_names(a) == ["lo", "eth0"]
    assert [i.name for i in list_interfaces()] == ["lo"]  # the main thread stays where it was
    assert a.start(resolve_interface, "eth0").result(timeout=TIMEOUT).index == (
        a.interface("eth0").index
    )

    def read(path: str) -> str:
        with open(path) as text:
            return text.read()

    # The trap the test bed avoids: /proc/self/net shows the main thread's namespace.
    assert "eth0" not in a.call(read, "/proc/self/net/dev")
    assert "eth0" in a.call(read, "/proc/thread-self/net/dev")


def test_callable_errors_reach_the_caller(testbed: Testbed) -> None:
    (host,) = testbed.add_hosts(1)
    with pytest.raises(ZeroDivisionError):
        host.call(divmod, 1, 0)
    with pytest.raises(OSError):
        host.call(socket.if_nametoindex, "eth0")  # no link yet


def test_commands_run_in_the_host(testbed: Testbed) -> None:
    a, b = testbed.add_hosts(2)
    testbed.connect(a, b)
    assert "198.18.1.1/24" in a.run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
    with pytest.raises(TestbedError, match="nosuch") as failed:
        a.run(["ip", "link", "show", "nosuch"])
    assert isinstance(failed.value, MulticastError)  # one hierarchy for the package's errors
    assert a.run(["ip", "link", "show", "nosuch"], check=False).returncode != 0

    listener = b.popen(["socat", "-u", "UDP4-RECVFROM:4447", "STDOUT"])
    for _ in range(50):  # bounded: socat needs a moment to bind; it ends after one datagram
        a.run(["socat", "-u", "-", "UDP4-SENDTO:198.18.1.2:4447"], input="hello\n")
        try:
            out, _ = listener.communicate(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        break
    else:
        pytest.fail("socat in b never printed what a sent")
    assert "hello" in out


def netns_list() -> str:
    return subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_teardown_removes_hosts_bridges_and_processes() -> None:
    with Testbed() as bed:
        h1, h2, h3 = bed.add_hosts(3)
        bed.connect(h1, h2)
        bed.bridge(h1, h2, h3)
        shell = h1.popen(["sh", "-c", "sleep 60 & echo $!; wait"])
        assert shell.stdout is not None
        child = int(shell.stdout.readline())
        assert _alive(child)
        names = [h.netns for h in (h1, h2, h3)] + [f"{bed.prefix}-br2"]
        listed = netns_list()
        assert all(name in listed for name in names)

    listed = netns_list()
    assert bed.prefix not in listed
    assert shell.returncode is not None
    assert not _alive(child)  # the command's own children end with it
    assert [i.name for i in list_interfaces()] == ["lo"]


def test_teardown_runs_when_the_test_fails() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), Testbed() as bed:
        a, b = bed.add_hosts(2)
        bed.connect(a, b)
        raise RuntimeError("the test failed")
    listed = netns_list()
    assert bed.prefix not in listed


def test_bad_requests_are_refused_with_the_culprit_named(testbed: Testbed) -> None:
    a, b = testbed.add_hosts(2)
    with pytest.raises(ValueError, match="h1"):
        testbed.connect(a, a)
    with pytest.raises(ValueError, match="at least one host"):
        testbed.bridge()
    with pytest.raises(ValueError, match="already"):
        testbed.add_host("h2")
    with pytest.raises(ValueError, match="no good"):
        testbed.add_host("no good")
    testbed.connect(a, b)
    with pytest.raises(KeyError, match="eth9"):
        a.interface("eth9")


def test_guard_accepts_only_the_private_namespace(testbed: Testbed) -> None:
    assert private_namespace_problem() is None
    a, b = testbed.add_hosts(2)
    testbed.connect(a, b)
    assert "(eth0)" in (a.call(private_namespace_problem) or "")


def test_session_stops_with_one_line_outside_the_private_namespace() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "MULTICAST_NETNS"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", __file__],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    said = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 3
    assert len(said) == 1
    assert "MULTICAST_NETNS" in said[0]
    assert "scripts/netns-run" in said[0]
