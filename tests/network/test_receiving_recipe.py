"""The core's one receiving recipe across test-bed hosts: every face filters IPv6 arrivals the
same way, and answers reach a link-local source by the interface it arrived on.

Sockets are made inside a host (``host.call``) and read from the test's own thread.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack
from ipaddress import ip_address

import pytest

from multicast.core import Sender, interfaces, send_reply
from multicast.hear import HearUDPHandler, McastServer
from multicast.testing import Testbed

from support.hosts import PORT, receiver, send

TIMEOUT = 5.0  # seconds any one datagram may take; never reached when things work
GROUP = "ff0e::5:1"


def test_hear_drops_an_ipv6_datagram_that_arrived_where_its_group_was_not_joined(
    testbed: Testbed, exit_stack: ExitStack
) -> None:
    host, left, right = testbed.add_hosts(3)
    testbed.connect(host, left)  # host eth0
    testbed.connect(host, right)  # host eth1
    server = exit_stack.enter_context(
        host.call(McastServer, ("::", PORT), HearUDPHandler, groups=[GROUP], iface="eth1")
    )
    # Joined on both links, the witness makes the kernel deliver the group from eth0 too.
    witness = receiver(exit_stack, host, [GROUP], interfaces=["eth0", "eth1"])

    send(left, GROUP, b"left")
    assert witness.receive(timeout=TIMEOUT).payload == b"left"
    send(right, GROUP, b"right")
    assert witness.receive(timeout=TIMEOUT).payload == b"right"

    (payload, _), source = server.get_request()
    assert (payload, source[0]) == (b"right", right.address(socket.AF_INET6))
    assert server.wrong_interface == 1
    with pytest.raises(BlockingIOError):
        server.get_request()


def test_a_reply_reaches_a_link_local_source_without_looking_up_an_interface(
    testbed: Testbed, exit_stack: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    prober, host = testbed.add_hosts(2)
    testbed.connect(prober, host)
    joined = receiver(exit_stack, host, ["ff02::5:1"])
    asker = exit_stack.enter_context(prober.call(Sender, socket.AF_INET6, interface="eth0"))

    asker.send(b"ping", "ff02::5:1", PORT)
    probe = joined.receive(timeout=TIMEOUT)
    assert ip_address(probe.source[0]).is_link_local  # it needs its interface to be answered

    def no_lookup(*_: object) -> None:
        raise AssertionError("an interface was looked up to answer")

    for name in ("list_interfaces", "index_by_name", "resolve_interface"):
        monkeypatch.setattr(interfaces, name, no_lookup)
    send_reply(joined.sock, b"pong", probe)
    asker.sock.settimeout(TIMEOUT)
    assert asker.sock.recvfrom(16)[0] == b"pong"
