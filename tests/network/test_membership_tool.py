"""``multicast membership``: which interface a join leaves by, on the wire and in the kernel.

h1 is multi-homed: eth0 to h2 (link 1, where its multicast route points) and eth1 to h3
(link 2). A join that names no interface follows the route and leaves by eth0, whatever link
the sender is on: the failure this tool is for.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from multicast.core import open_receiver
from multicast.testing import Host, Testbed
from multicast.tools.membership import Watch, kernel_view

from support.hosts import receiver

LIMIT = 10.0
ANY_SOURCE = "239.7.7.7"
SSM = "232.7.7.7"
DROP_NET_RAW = ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"]


@pytest.fixture
def multihomed(testbed: Testbed) -> Iterator[Host]:
    h1, h2, h3 = testbed.add_hosts(3)
    testbed.connect(h1, h2)  # h1 eth0
    testbed.connect(h1, h3)  # h1 eth1
    yield h1


def command(*words: str) -> list[str]:
    return [sys.executable, "-m", "multicast", "membership", *words]


def test_the_wire_shows_which_interface_each_join_left_by(
    multihomed: Host, exit_stack: ExitStack
) -> None:
    watch = exit_stack.enter_context(multihomed.call(Watch, ["eth0", "eth1"]))
    receiver(exit_stack, multihomed, [ANY_SOURCE], interfaces=None)  # the route's choice
    receiver(exit_stack, multihomed, [SSM], interfaces="eth1", sources=["198.18.2.3"])
    report = watch.run(duration=1.5)
    reports = [
        (o.interface, record.group, record.action, record.sources)
        for o in report.observations
        if o.outgoing and o.kind == "report"
        for record in o.records
        if record.group in (ANY_SOURCE, SSM)
    ]
    assert ("eth0", ANY_SOURCE, "TO_EXCLUDE", ()) in reports
    assert ("eth1", SSM, "ALLOW", ("198.18.2.3",)) in reports
    assert {(interface, group) for interface, group, _, _ in reports} == {
        ("eth0", ANY_SOURCE),
        ("eth1", SSM),
    }
    members = {(m.interface, m.group): (m.mode, m.sources) for m in report.members}
    assert members[("eth0", ANY_SOURCE)] == ("exclude", ())
    assert members[("eth1", SSM)] == ("include", ("198.18.2.3",))
    igmp = [o for o in report.observations if o.outgoing and o.protocol == "IGMP"]
    assert all(o.ttl == 1 and o.router_alert for o in igmp)
    assert {(o.interface, o.sender) for o in igmp} == {
        ("eth0", "198.18.1.1"),
        ("eth1", "198.18.2.1"),
    }


def test_the_command_line_shows_the_reports_as_json(multihomed: Host) -> None:
    watching = ("--iface", "eth1", "--group", ANY_SOURCE, "--count", "1", "--json")
    process = multihomed.popen(command(*watching))
    deadline = time.monotonic() + LIMIT
    while process.poll() is None:  # join and leave until the watch has seen a report
        assert time.monotonic() < deadline, "no report seen"
        multihomed.call(lambda: open_receiver([ANY_SOURCE], 4446, interfaces="eth1").close())
        time.sleep(0.1)
    out, err = process.communicate(timeout=LIMIT)
    assert process.returncode == 0, err
    report = json.loads(out)
    (message,) = report["messages"]
    assert report["view"] == "wire" and report["interfaces"] == ["eth1"]
    assert (message["interface"], message["direction"], message["sender"]) == (
        "eth1",
        "out",
        "198.18.2.1",
    )
    assert message["records"][0]["group"] == ANY_SOURCE


def test_the_kernel_view_lists_groups_and_sources_per_interface(
    multihomed: Host, exit_stack: ExitStack
) -> None:
    receiver(exit_stack, multihomed, [SSM], interfaces="eth1", sources=["198.18.2.3"])
    receiver(exit_stack, multihomed, ["ff3e::8000:7"], interfaces="eth1", sources=["2001:db8:2::3"])
    view = multihomed.call(kernel_view)
    groups = {(g.interface, g.group): [s.as_dict() for s in g.sources] for g in view.groups}
    assert groups[("eth1", SSM)] == [{"source": "198.18.2.3", "include": 1, "exclude": 0}]
    assert groups[("eth1", "ff3e::8000:7")] == [
        {"source": "2001:db8:2::3", "include": 1, "exclude": 0}
    ]
    assert ("eth0", SSM) not in groups
    assert view.igmp_versions["eth1"] == "V3"
    only = multihomed.call(kernel_view, interfaces=["eth0"])
    assert {g.interface for g in only.groups} == {"eth0"} and set(only.igmp_versions) == {"eth0"}
    ssm_only = multihomed.call(kernel_view, groups=[SSM])
    assert [(g.interface, g.group) for g in ssm_only.groups] == [("eth1", SSM)]


def test_without_cap_net_raw_it_shows_the_kernel_view_with_a_note(multihomed: Host) -> None:
    done = multihomed.run([*DROP_NET_RAW, *command("--json")], check=False)
    assert done.returncode == 0
    assert done.stderr.count("\n") == 1 and "lacks CAP_NET_RAW" in done.stderr
    assert json.loads(done.stdout)["view"] == "kernel"
    forced = multihomed.run([*DROP_NET_RAW, *command("--wire")], check=False)
    assert forced.returncode == 77 and forced.stderr.count("\n") == 1


def test_bad_options_are_one_usage_line() -> None:
    done = subprocess.run(
        command("--iface", "nosuch0"), capture_output=True, text=True, timeout=LIMIT, check=False
    )
    assert done.returncode == 64 and done.stderr.count("\n") == 1
    assert "nosuch0" in done.stderr
