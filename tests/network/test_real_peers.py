"""The tools against programs nobody here wrote, for the pairings ``test_interop.py`` leaves
out: socat sending to ``monitor`` and receiving ``stream``; sockperf streaming into
``monitor``; and tshark reading what SAY, ``stream``, ``ping`` and ``pong`` put on the wire
between two test-bed hosts (TTL and hop limit, UDP sizes, and nothing at all for TTL 0).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multicast.testing import Host, Testbed
from multicast.tools.doctor import parse_igmp
from multicast.tools.framing import Frame, parse_frame

from support.hosts import start_capture
from support.tools import LIMIT, command, finish, wait_joined


def needs(program: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which(program) is None,
        reason=f"{program} is not installed (make system-deps installs it)",
    )


def monitor_json(line: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(f"monitor {line} --json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@needs("socat")
def test_monitor_counts_what_socat_sends_as_raw_flows() -> None:
    """Three socat processes (three source ports), a datagram each of a known size: three
    flows of raw payload, each counted whole."""
    group, port = "239.6.7.1", 6601
    monitor = monitor_json(f"{group} --port {port} --count 3 --duration {LIMIT}")
    wait_joined(group, monitor)
    for text in ("a", "bb", "ccc"):
        subprocess.run(
            ["socat", "-u", "STDIN", f"UDP4-DATAGRAM:{group}:{port},ip-multicast-ttl=1"],
            input=text * 100,
            text=True,
            timeout=LIMIT,
            check=True,
        )
    code, output, errors = finish(monitor)
    assert code == 0, errors
    report = json.loads(output)
    flows = sorted((f["payload"], f["datagrams"], f["bytes"]) for f in report["senders"])
    assert flows == [("raw", 1, 100), ("raw", 1, 200), ("raw", 1, 300)]
    assert report["summary"]["datagrams"] == 3


@needs("socat")
def test_socat_receives_a_stream_frame_whole(tmp_path: Path) -> None:
    """socat joins and writes out the one datagram it receives: the bytes are a frame of the
    size asked for, the first of its stream."""
    group, port = "239.6.7.2", 6602
    with (tmp_path / "received").open("wb") as received:
        receiver = subprocess.Popen(
            [
                *("socat", "-u", f"UDP4-RECVFROM:{port},ip-add-membership={group}:lo,reuseaddr"),
                "STDOUT",
            ],
            stdout=received,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_joined(group, receiver)
        sent = subprocess.run(
            command(f"stream {group} --port {port} --count 1 --size 300"),
            capture_output=True,
            text=True,
            timeout=LIMIT,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        code, _, errors = finish(receiver)
    assert code == 0, errors
    payload = (tmp_path / "received").read_bytes()
    frame = parse_frame(payload)
    assert isinstance(frame, Frame), frame
    assert (len(payload), frame.sequence) == (300, 0)


@needs("sockperf")
def test_monitor_counts_every_datagram_sockperf_sends() -> None:
    """``sockperf throughput`` at 1,000 datagrams/s for a second, to a group on lo: the monitor
    counts as many datagrams as sockperf says it sent, of its size, in one raw flow (without
    the warm-up datagrams that sockperf sends first and leaves out of its total)."""
    group, port, size = "239.6.7.3", 6603, 200
    monitor = monitor_json(f"{group} --port {port} --duration 8")
    wait_joined(group, monitor)
    sent = subprocess.run(
        [
            *("sockperf", "tp", "-i", group, "-p", str(port), "--mc-tx-if", "127.0.0.1"),
            *("--mps", "1000", "-t", "1", "-m", str(size), "--dontwarmup"),
        ],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=True,
    )
    total = re.search(r"Total of (\d+) messages sent", sent.stdout + sent.stderr)
    assert total is not None, sent.stdout
    monitor.send_signal(signal.SIGINT)  # Ctrl-C: sockperf is done, and everything it sent is queued
    code, output, errors = finish(monitor)
    assert code == 130, errors
    report = json.loads(output)
    (flow,) = report["senders"]
    assert report["summary"]["drops"] == 0
    assert (flow["payload"], flow["datagrams"]) == ("raw", int(total.group(1)))
    assert flow["bytes"] == flow["datagrams"] * size


# --- on the wire ------------------------------------------------------------------------------

FIELDS = ["ip.dst", "ipv6.dst", "ip.ttl", "ipv6.hlim", "udp.dstport", "udp.length"]


def wire_rows(out: str) -> list[tuple[str, int, int, int]]:
    """(destination, TTL or hop limit, UDP port, UDP length) of each captured datagram."""
    rows = []
    for line in out.splitlines():
        v4, v6, ttl, hops, port, length = line.split("|")
        rows.append((v4 or v6, int(ttl or hops), int(port), int(length)))
    return rows


@needs("tshark")
def test_what_the_commands_put_on_the_wire(testbed: Testbed) -> None:
    """Between two hosts with no member of the groups on the sender: SAY's TTL 1 (IPv4 and
    IPv6) and its message's size, stream's TTL and size, nothing at all for stream's TTL 0
    (Linux would let it leave), ping's probes with their TTL and size, and pong's unicast
    replies with the TTL it is given."""
    near, far = testbed.add_hosts(2)
    testbed.connect(near, far)
    capture = start_capture(far, 20.0, "udp", FIELDS)
    python = [sys.executable, "-m", "multicast"]

    def run(host_words: str) -> None:
        done = near.run([*python, *host_words.split()], check=False, timeout=LIMIT)
        assert done.returncode == 0, done.stdout + done.stderr

    run("SAY --group 239.6.7.10 --port 6610 --iface eth0 -m hello")
    run("SAY --group ff0e::6:7:10 --port 6611 --iface eth0 -m hello-six")
    run("stream 239.6.7.11 --port 6612 --iface eth0 --ttl 5 --size 300 --count 2 --rate max")
    run("stream 239.6.7.12 --port 6613 --iface eth0 --ttl 0 --size 100 --count 2 --rate max")
    run("stream ff0e::6:7:12 --port 6614 --iface eth0 --ttl 0 --size 100 --count 2 --rate max")
    pong = far.popen([*python, "pong", "239.6.7.13", "--port", "6650", "--ttl", "7"])
    joined_on(far, "239.6.7.13", pong)
    probes = "ping 239.6.7.13 --port 6650 --iface eth0 --ttl 3 --size 200 --count 2"
    run(f"{probes} --interval 0.1 --wait 1")
    pong.send_signal(signal.SIGINT)
    assert finish(pong)[0] == 130
    capture.terminate()
    out, _ = capture.communicate(timeout=LIMIT)
    rows = wire_rows(out)
    prober = near.address()
    replies = [row for row in rows if row[0] == prober]
    assert sorted(row for row in rows if row[0] != prober) == sorted(
        [
            ("239.6.7.10", 1, 6610, 8 + len("hello")),
            ("ff0e::6:7:10", 1, 6611, 8 + len("hello-six")),
            *[("239.6.7.11", 5, 6612, 8 + 300)] * 2,
            *[("239.6.7.13", 3, 6650, 8 + 200)] * 2,
        ]
    )  # and no TTL-0 datagram of 239.6.7.12 or ff0e::6:7:12
    assert [ttl for _, ttl, _, _ in replies] == [7, 7], replies


def joined_on(host: Host, group: str, process: subprocess.Popen[str]) -> None:
    """Wait (bounded) until ``host`` lists ``group`` in its /proc/net/igmp."""
    deadline = time.monotonic() + LIMIT
    while True:
        listed = parse_igmp(host.run(["cat", "/proc/net/igmp"]).stdout)[0]
        if group in {membership.group for membership in listed}:
            return
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{group} never joined on {host.name}"
        time.sleep(0.05)
