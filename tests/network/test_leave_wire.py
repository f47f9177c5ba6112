"""Leave latency on the wire (``monitor --leave-wait``): how long the network goes on sending
a group after the monitor left it, seen by a packet socket on the monitor's interface.

A sender, a querier and the monitor share a bridge. With IGMP/MLD snooping on and a querier
(``multicast querier``, last-member interval 0.5 s), the bridge stops forwarding a group to a
port two last-member intervals (its ``mcast_last_member_count``, 2) after the querier's
group-specific query that follows the leave: about 1 s. Without snooping, the bridge floods
the group to every port, and it goes on arriving whatever the monitor does. Without
``CAP_NET_RAW`` the monitor falls back to what still comes through its socket, and says so.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import ExitStack

import pytest

from multicast.testing import Bridge, Host, Testbed
from multicast.tools import Monitor, run_stream
from multicast.tools.stream import StreamReport

from support.hosts import PORT

GROUPS = {socket.AF_INET: "239.8.8.1", socket.AF_INET6: "ff0e::8:1"}
by_family = pytest.mark.parametrize(
    "family", list(GROUPS), ids=lambda family: "ipv4" if family == socket.AF_INET else "ipv6"
)
LAST_MEMBER_INTERVAL = 0.5  # seconds, the querier's; the bridge waits twice that
WAIT = 4.0  # seconds watched after the leave
LIMIT = 20.0  # seconds: the bound on every wait and process here
RATE = 200  # datagrams per second


def querier_seen(bridge: Bridge) -> bool:
    """Whether the bridge has heard a querier: it lists a router port."""
    shown = json.loads(bridge.run(["bridge", "-json", "-d", "mdb", "show"]).stdout or "[]")
    return any(table.get("router") for table in shown)


def start_stream(sender: Host, group: str, seconds: float) -> Future[StreamReport]:
    return sender.start(run_stream, group, PORT, rate=f"{RATE}pps", duration=seconds)


@pytest.fixture
def snooping(testbed: Testbed) -> Iterator[tuple[Host, Host]]:
    """A sender and a monitor on a snooping bridge that a third host queries; (sender, monitor)."""
    sender, querier, monitor = testbed.add_hosts(3)
    link = testbed.bridge(sender, querier, monitor)
    assert link.bridge is not None
    link.bridge.ip(f"link set {Bridge.DEVICE} type bridge mcast_snooping 1 mcast_querier 0")
    interval = str(LAST_MEMBER_INTERVAL)
    querier.popen(
        [
            sys.executable, "-m", "multicast", "querier", "--iface", "eth0",
            "--query-interval", "1", "--response-interval", "0.5",
            "--last-member-interval", interval, "--duration", str(LIMIT),
        ]
    )  # fmt: skip
    deadline = time.monotonic() + LIMIT
    while not querier_seen(link.bridge):
        assert time.monotonic() < deadline, "the bridge never heard the querier"
        time.sleep(0.05)
    yield sender, monitor


@by_family
def test_a_snooping_bridge_stops_the_group_a_last_member_time_after_the_leave(
    snooping: tuple[Host, Host], exit_stack: ExitStack, family: socket.AddressFamily
) -> None:
    sender, host = snooping
    group = GROUPS[family]
    monitor = exit_stack.enter_context(host.call(Monitor, [group], PORT, interfaces=["eth0"]))
    streaming = start_stream(sender, group, 1.5 + WAIT + 0.5)
    report = host.call(monitor.run, duration=1.5, leave_wait=WAIT)
    streaming.result(timeout=LIMIT)

    assert report.leave is not None and report.leave.wire
    assert report.leave.interfaces == ("eth0",) and report.leave.drops == 0
    (channel,) = report.channels
    assert channel.leave_ms is not None and channel.after_leave is not None
    # The bridge forwards for 2 x 0.5 s after the query that follows the leave, no less.
    assert 2 * LAST_MEMBER_INTERVAL * 1000 - 50 < channel.leave_ms < 2500
    assert channel.after_leave >= RATE * 2 * LAST_MEMBER_INTERVAL * 0.8
    assert channel.still_arriving is False
    assert "1 group stopped" in str(report)


def test_without_snooping_the_group_is_still_arriving_when_the_wait_ends(
    testbed: Testbed,
) -> None:
    sender, host = testbed.add_hosts(2)
    testbed.bridge(sender, host)  # snooping off: every group flooded to every port
    group = GROUPS[socket.AF_INET]
    wait = 2.0
    command = [sys.executable, "-m", "multicast", "monitor", group, "--port", str(PORT)]
    monitor = host.popen([*command, "--duration", "1", "--leave-wait", str(wait), "--json"])
    streaming = start_stream(sender, group, 1 + wait + 3)
    out, err = monitor.communicate(timeout=LIMIT)
    streaming.result(timeout=LIMIT)

    assert monitor.returncode == 0, err
    assert err == ""
    report = json.loads(out)
    assert report["leave"] == {
        "wait": wait,
        "measured": "wire",
        "interfaces": ["eth0"],  # joined where the routing table chose: the kernel says where
        "drops": 0,
        "note": None,
    }
    (channel,) = report["channels"]
    assert channel["still_arriving"] is True
    assert wait * 1000 - 200 < channel["leave_ms"] <= wait * 1000
    assert channel["after_leave"] >= RATE * wait * 0.8


def test_without_cap_net_raw_the_socket_measures_and_one_line_says_so(testbed: Testbed) -> None:
    sender, host = testbed.add_hosts(2)
    testbed.bridge(sender, host)
    group = GROUPS[socket.AF_INET]
    dropped = ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"]
    command = [sys.executable, "-m", "multicast", "monitor", group, "--port", str(PORT)]
    options = ["--duration", "1", "--leave-wait", "0.5", "--json"]
    monitor = host.popen([*dropped, *command, *options])
    streaming = start_stream(sender, group, 3)
    try:
        out, err = monitor.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        monitor.kill()
        raise
    streaming.result(timeout=LIMIT)

    assert monitor.returncode == 0, err
    assert err.count("\n") == 1 and "lacks CAP_NET_RAW" in err
    assert "only what was already inside this host" in err
    report = json.loads(out)
    leave = report["leave"]
    assert (leave["measured"], leave["interfaces"], leave["wait"]) == ("socket", [], 0.5)
    assert "lacks CAP_NET_RAW" in leave["note"]
    (channel,) = report["channels"]
    assert channel["left"] is not None
    assert (channel["after_leave"], channel["still_arriving"]) == (None, None)
