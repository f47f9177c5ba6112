"""``multicast querier`` on a snooping bridge: memberships kept, queries as asked, election.

The segment is a Linux bridge with IGMP/MLD snooping on and its own querier off, the hosts
h1 and h2 (queriers) and h3 (a member) on it. Its membership interval is set to 3 s (260 s
by default), so that a group nobody refreshes is forgotten within seconds; the querier asks
every second. h1 and h2 have fixed link-local addresses (fe80::1, fe80::2) so that the MLD
election has a known winner, as the IPv4 one has (198.18.1.1 below 198.18.1.2).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from multicast.testing import Bridge, Host, Testbed

from support.hosts import receiver, start_capture

GROUPS = ("239.5.5.5", "ff0e::5:5")
MEMBERSHIP_INTERVAL = 3.0  # seconds, set on the bridge
FAST = ["--query-interval", "1", "--response-interval", "0.5"]
# tshark's display filter: general queries only (a leave gets group-specific ones)
GENERAL_QUERIES = (
    "(igmp.type == 0x11 and igmp.maddr == 0.0.0.0) or "
    "(icmpv6.type == 130 and icmpv6.mld.multicast_address == ::)"
)
LIMIT = 15.0  # seconds: the bound on every wait and command here


@dataclass
class Segment:
    bridge: Bridge
    queriers: tuple[Host, Host]
    member: Host


@pytest.fixture
def segment(testbed: Testbed) -> Iterator[Segment]:
    h1, h2, h3 = testbed.add_hosts(3)
    link = testbed.bridge(h1, h2, h3)
    assert link.bridge is not None
    centiseconds = int(MEMBERSHIP_INTERVAL * 100)
    link.bridge.ip(
        f"link set {Bridge.DEVICE} type bridge mcast_snooping 1 mcast_querier 0 "
        f"mcast_membership_interval {centiseconds} mcast_querier_interval {centiseconds}"
    )
    for number, host in ((1, h1), (2, h2)):
        host.ip("addr flush dev eth0 scope link", f"addr add fe80::{number}/64 dev eth0 nodad")
    yield Segment(link.bridge, (h1, h2), h3)


def memberships(bridge: Bridge) -> set[tuple[str, str]]:
    """(port, group) of every entry of the bridge's membership database."""
    shown = json.loads(bridge.run(["bridge", "-json", "mdb", "show"]).stdout or "[]")
    return {(entry["port"], entry["grp"]) for table in shown for entry in table.get("mdb", [])}


def wait_for(condition: str, check: Callable[[], bool], limit: float = LIMIT) -> float:
    """Poll ``check()`` until it is true; the seconds it took."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit, f"not within {limit} s: {condition}"
        time.sleep(0.05)
    return time.monotonic() - start


def querier(host: Host, *options: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "multicast", "querier", "--iface", "eth0", "--json"]
    return host.popen([*command, *options])


def finished(process: subprocess.Popen[str], code: int = 0) -> dict[str, object]:
    out, err = process.communicate(timeout=LIMIT)
    assert process.returncode == code, err
    report: dict[str, object] = json.loads(out)
    return report


def join_both(stack: ExitStack, segment: Segment) -> set[tuple[str, str]]:
    """h3 joins both groups; wait until the bridge lists them; the (port, group) entries."""
    for group in GROUPS:
        receiver(stack, segment.member, [group])
    wanted = {(segment.member.name, group) for group in GROUPS}
    wait_for("the bridge learns both groups", lambda: wanted <= memberships(segment.bridge))
    return wanted


def test_without_a_querier_the_bridge_forgets_the_groups(
    segment: Segment, exit_stack: ExitStack
) -> None:
    wanted = join_both(exit_stack, segment)
    took = wait_for(
        "both groups expire",
        lambda: not wanted & memberships(segment.bridge),
        limit=MEMBERSHIP_INTERVAL + 3,
    )
    assert took > 0.5  # they lasted (the joins' own reports refresh them for about a second)


def test_the_querier_keeps_them_past_the_membership_interval(
    segment: Segment, exit_stack: ExitStack
) -> None:
    running = querier(segment.queriers[0], *FAST)
    wanted = join_both(exit_stack, segment)
    start = time.monotonic()
    while time.monotonic() - start < 2 * MEMBERSHIP_INTERVAL:
        assert wanted <= memberships(segment.bridge), "a group was forgotten"
        time.sleep(0.1)
    running.send_signal(signal.SIGTERM)  # it ends as after Ctrl-C: with its report, and 143
    report = finished(running, 143)
    assert report["interrupted"] is True
    protocols = report["protocols"]
    assert isinstance(protocols, list)
    for side in protocols:
        assert side["role"] == "querier" and side["sent"]["general"] >= 7


QUERY_FIELDS = [
    "ip.src", "ipv6.src", "ip.ttl", "ipv6.hlim", "ip.opt.ra", "ipv6.opt.router_alert",
    "igmp.version", "igmp.max_resp", "igmp.qqic", "igmp.qrv",
    "icmpv6.mld.maximum_response_delay", "icmpv6.mld.maximum_response_code",
    "icmpv6.mld.qqi", "icmpv6.mld.flag.qrv",
]  # fmt: skip


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_queries_on_the_wire_have_the_versions_and_timers_asked_for(segment: Segment) -> None:
    capture = start_capture(
        segment.member, 3.5, "igmp.type == 0x11 or icmpv6.type == 130", QUERY_FIELDS
    )
    timers = ["--query-interval", "7", "--response-interval", "2.3", "--robustness", "3"]
    for igmp, mld in (("3", "1"), ("2", "2")):  # one general query each (the next is 1.75 s on)
        finished(
            querier(segment.queriers[0], "--igmp", igmp, "--mld", mld, *timers, "--duration", "0.5")
        )
    out, _ = capture.communicate(timeout=LIMIT)
    rows = [line.split("|") for line in out.splitlines()]
    ipv4 = [row for row in rows if row[0]]
    ipv6 = [row for row in rows if row[1]]
    assert sorted(row[6] for row in ipv4) == ["2", "3"]
    for row in ipv4:
        # source, TTL 1, Router Alert present, response in tenths, QQIC and QRV (IGMPv3 only)
        new = row[6] == "3"
        expected = ["198.18.1.1", "1", "0", "23"] + (["7", "3"] if new else ["", ""])
        assert [row[0], row[2], row[4], row[7], row[8], row[9]] == expected
    assert sorted(bool(row[10]) for row in ipv6) == [False, True]  # an MLDv1 and an MLDv2 query
    for row in ipv6:
        # source, hop limit 1, Router Alert, response in ms (MLDv1 delay or MLDv2 code), QQI, QRV
        new = not row[10]
        expected = ["fe80::1", "1", "0"] + (["", "2300", "7", "3"] if new else ["2300", "", "", ""])
        assert [row[1], row[3], row[5], row[10], row[11], row[12], row[13]] == expected


def test_the_lower_address_wins_and_the_other_takes_over_when_it_stops(segment: Segment) -> None:
    low, high = segment.queriers
    running_high = querier(high, *FAST, "--duration", "8")
    time.sleep(1.0)
    finished(querier(low, *FAST, "--duration", "2"))
    report = finished(running_high)
    protocols = report["protocols"]
    assert isinstance(protocols, list)
    for side, lower in zip(protocols, ("198.18.1.1", "fe80::1"), strict=True):
        changes = side["changes"]
        assert [(c["role"], c["querier"]) for c in changes] == [
            ("querier", side["address"]),
            ("non-querier", lower),
            ("querier", side["address"]),
        ]
        stood_down, took_over = changes[1]["at"], changes[2]["at"]
        # it stands down at the lower one's first query; that one's last query comes 1.25 s
        # later (startup queries at 0 and 0.25 s, then one a second, for 2 s), and then the
        # other-querier-present interval passes: 2 x 1 + 0.5 / 2 = 2.25 s
        assert 0.8 < stood_down < 2.5
        assert stood_down + 3.5 - 0.3 < took_over < stood_down + 3.5 + 1.0
        assert side["role"] == "querier"
        (heard,) = side["others"]
        assert (heard["address"], heard["interval"]) == (lower, 1.0)


def test_without_cap_net_raw_one_line_and_exit_77(segment: Segment) -> None:
    dropped = ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"]
    done = segment.member.run(
        [*dropped, sys.executable, "-m", "multicast", "querier", "--iface", "eth0"], check=False
    )
    assert done.returncode == 77
    assert done.stderr.count("\n") == 1 and "lacks CAP_NET_RAW" in done.stderr


def test_an_interface_without_the_protocols_address_is_a_usage_error(segment: Segment) -> None:
    segment.member.ip("addr flush dev eth0 scope global")
    command = [sys.executable, "-m", "multicast", "querier", "--iface", "eth0", "--duration", "1"]
    done = segment.member.run(command, check=False)
    assert done.returncode == 64 and done.stderr.count("\n") == 1
    assert "eth0 has no IPv4 address to send IGMP from; --igmp off" in done.stderr
