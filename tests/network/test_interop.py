"""Real peers from Debian packages (``make system-deps``): iperf2 and socat.

Our stream is counted by ``iperf -s -u -B GROUP``; ``iperf -c GROUP -u`` is counted by our
monitor as foreign datagrams; socat sends to our RECV and receives our SAY.
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


@needs("iperf")
def test_monitor_counts_iperf_client_as_foreign() -> None:
    group, port, size = "239.6.4.2", 6301, 300
    with Monitor([group], port) as monitor:
        client = subprocess.run(
            [
                *("iperf", "-c", group, "-u", "-p", str(port), "-T", "1", "-b", "1000pps"),
                *("-l", str(size), "-n", str(100 * size), "-y", "C"),
            ],
            capture_output=True,
            text=True,
            timeout=LIMIT,
            check=True,
        )
        # iperf's byte count includes its closing datagram; everything is queued on our socket.
        sent = int(last_csv_row(client.stdout)[_CSV_BYTES]) // size
        report = monitor.run(duration=LIMIT, count=sent)
    assert sent >= 100
    assert (report.datagrams, report.foreign, report.senders) == (sent, sent, ())


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
