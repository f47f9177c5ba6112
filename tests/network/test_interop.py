"""Real peers from Debian packages (``make system-deps``): iperf2 and socat.

Our stream is counted by ``iperf -s -u -B GROUP``; ``iperf -c GROUP -u`` is counted by our
monitor as iperf2 reads it; socat sends to our RECV and receives our SAY.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from multicast.cli import main
from multicast.tools import Monitor, run_stream

from support.tools import LIMIT, finish, wait_joined


def needs(program: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which(program) is None,
        reason=f"{program} is not installed (make system-deps installs it)",
    )


def last_csv_row(output: str) -> list[str]:
    """The last line of iperf2's ``-y C`` report, split into its fields."""
    rows = [line.split(",") for line in output.splitlines() if line.count(",") >= 8]
    assert rows, f"no CSV report in iperf's output: {output!r}"
    return rows[-1]


_CSV_BYTES = 7  # iperf2 CSV: time, src, sport, dst, dport, id, interval, bytes, bits/s, ...


@needs("iperf")
def test_iperf_server_counts_our_stream() -> None:
    group, port = "239.6.4.1", 6300
    server = subprocess.Popen(
        ["iperf", "-s", "-u", "-B", group, "-p", str(port), "-t", "1", "-y", "C"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_joined(group, server)
    report = run_stream(group, port, rate="2kpps", size=200, count=300)
    code, output, _ = finish(server)
    assert code == 0, output
    # Our frames are not iperf's, so its loss figures mean nothing; its byte count does.
    assert int(last_csv_row(output)[_CSV_BYTES]) == report.sent * report.size == 60_000


# iperf2 -y C, a UDP server's line: ..., bytes, bits/s, jitter, lost, total, percent, ...
_CSV_LOST, _CSV_TOTAL = 10, 11
# Drop 1 in 20 of the datagrams arriving for PORT, at random, but never iperf2's final one
# (its sequence number is negative: the first bit of the UDP payload is set).
_DROP = """table inet interop_drop {{
    chain input {{
        type filter hook input priority 0;
        udp dport {port} @th,64,1 0 numgen random mod 1000 < 50 drop
    }}
}}
"""


@needs("iperf")
@needs("nft")
def test_monitor_counts_an_iperf_stream_as_iperf_server_does() -> None:
    """A real ``iperf -c GROUP -u`` stream, thinned at random by nftables before either
    receiver sees it: the monitor's loss and total match iperf2's own server report."""
    group, port, size = "239.6.4.2", 6301, 300
    subprocess.run(["nft", "-f", "-"], input=_DROP.format(port=port), text=True, check=True)
    server = subprocess.Popen(
        ["iperf", "-s", "-u", "-B", group, "-p", str(port), "-y", "C"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_joined(group, server)  # before the monitor joins: then the group is listed anyway
        with Monitor([group], port) as monitor:
            subprocess.run(
                [
                    *("iperf", "-c", group, "-u", "-p", str(port), "-T", "1"),
                    *("-b", "4000pps", "-l", str(size), "-n", str(400 * size)),
                ],
                capture_output=True,
                timeout=LIMIT,
                check=True,
            )
            report = monitor.run(duration=0.5)  # everything is queued on the socket by now
    finally:
        subprocess.run(["nft", "delete", "table", "inet", "interop_drop"], check=True)
        server.terminate()
        output = server.communicate(timeout=LIMIT)[0]
    row = last_csv_row(output)
    lost, total = int(row[_CSV_LOST]), int(row[_CSV_TOTAL])
    (flow,) = report.senders
    assert flow.payload == "iperf"
    assert total == 401  # 400 datagrams and the final one
    # The same datagrams arrived; iperf2 knows the total from its client's header, the monitor
    # only up to the highest sequence number seen: a lost tail (the final datagram, on a
    # loaded machine) is iperf2's loss only.
    assert flow.last_sequence is not None
    tail = total - flow.last_sequence
    assert (flow.unique, flow.lost + tail) == (total - lost, lost), (flow, report.drops)
    assert (flow.duplicates, flow.reordered, report.datagrams) == (0, 0, total - lost)
    assert lost > 0, "nftables dropped nothing: the comparison proves little"


@needs("socat")
def test_socat_sends_to_our_recv() -> None:
    group, port = "239.6.4.3", 6302
    receiver = subprocess.Popen(
        [
            *(sys.executable, "-m", "multicast", "RECV", "--group", group, "--port", str(port)),
            *("--count", "1", "--timeout", "10", "--use-std"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_joined(group, receiver)
    subprocess.run(
        ["socat", "-u", "STDIN", f"UDP4-DATAGRAM:{group}:{port},ip-multicast-ttl=1"],
        input="hello from socat",
        text=True,
        timeout=LIMIT,
        check=True,
    )
    code, output, errors = finish(receiver)
    assert code == 0, errors
    assert "hello from socat" in output


@needs("socat")
def test_socat_receives_our_say() -> None:
    group, port = "239.6.4.4", 6303
    receiver = subprocess.Popen(
        ["socat", "-u", f"UDP4-RECVFROM:{port},ip-add-membership={group}:lo,reuseaddr", "STDOUT"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_joined(group, receiver)
    code, _ = main(["SAY", "--group", group, "--port", str(port), "-m", "hello from SAY"])
    assert code == 0
    assert finish(receiver)[:2] == (0, "hello from SAY")
