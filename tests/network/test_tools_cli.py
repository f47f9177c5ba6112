"""The tools on the ``multicast`` command line: JSON output, error lines, live lines on a tty."""

from __future__ import annotations

import json
import os
import pty
import re
import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multicast.cli import McastDispatch, main
from multicast.exceptions import MulticastError
from multicast.tools import TOOLS, run_stream

from support.tools import LIMIT, command, finish, wait_joined


def test_stream_to_monitor_with_json() -> None:
    monitor = subprocess.Popen(
        command("monitor 239.6.3.1 --port 6200 --count 200 --duration 10 --json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_joined("239.6.3.1", monitor)
    sent = subprocess.run(
        command("stream 239.6.3.1 --port 6200 --count 200 --rate 20kpps --size 100 --json"),
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=True,
    )
    code, out, err = finish(monitor)
    assert (code, err) == (0, "")
    stream_report = json.loads(sent.stdout)
    assert (stream_report["sent"], stream_report["bytes"], stream_report["errors"]) == (
        200,
        20000,
        0,
    )
    report = json.loads(out)
    summary = report["summary"]
    assert {k: summary[k] for k in ("received", "lost", "duplicates", "reordered", "foreign")} == {
        "received": 200,
        "lost": 0,
        "duplicates": 0,
        "reordered": 0,
        "foreign": 0,
    }
    assert report["schema"] == "multicast.monitor/1"
    (sender,) = report["senders"]
    assert (sender["stream"], sender["payload"]) == (stream_report["sender"], "frames")


def udp_datagrams_read() -> int:
    """UDP datagrams that sockets of this namespace have read so far (/proc/net/snmp)."""
    header, values = (
        line.split()
        for line in Path("/proc/net/snmp").read_text().splitlines()
        if line.startswith("Udp:")
    )
    return int(values[header.index("InDatagrams")])


def test_interrupted_monitor_reports(capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C ends the monitor with its report, as --duration would, and exit status 130 (a
    supervisor tells a stopped run from one that finished)."""
    monitor = subprocess.Popen(
        command("monitor 239.6.3.5 --port 6204 --json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_joined("239.6.3.5", monitor)
    before = udp_datagrams_read()
    run_stream("239.6.3.5", 6204, rate="max", size=100, count=30)
    deadline = time.monotonic() + LIMIT
    while udp_datagrams_read() < before + 30:  # until the monitor has read them all
        assert time.monotonic() < deadline, "the monitor never read the stream"
        time.sleep(0.02)
    monitor.send_signal(signal.SIGINT)
    code, out, err = finish(monitor)
    assert (code, err) == (130, "")
    summary = json.loads(out)["summary"]
    assert (summary["received"], summary["interrupted"]) == (30, True)


def test_ping_and_pong_with_json(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("a key that is long enough\n")
    pong = subprocess.Popen(
        command("pong 239.6.3.2 --port 6201 --count 3 --duration 10 --json --key-file", str(key)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_joined("239.6.3.2", pong)
    ping = subprocess.run(
        command(
            "ping 239.6.3.2 --port 6201 --count 3 --interval 0.05 --wait 1 --json --key-file",
            str(key),
        ),
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
    )
    code, out, _ = finish(pong)
    assert (code, json.loads(out)["replies"]) == (0, 3)
    assert ping.returncode == 0, ping.stderr
    report = json.loads(ping.stdout)
    assert (report["sent"], report["received"]) == (3, 3)
    (responder,) = report["responders"]
    assert set(responder["rtt_ms"]) >= {"min", "p50", "p90", "p99", "max"}


def test_ping_without_answer_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = main(
        [
            "ping",
            "239.6.3.3",
            "--port",
            "6202",
            "--count",
            "2",
            "--interval",
            "0.01",
            "--wait",
            "0.1",
            "--json",
        ]
    )
    assert code == 1
    assert json.loads(capsys.readouterr().out)["received"] == 0


def test_doctor_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = main(["doctor", "--json", "--timeout", "2"])
    report = json.loads(capsys.readouterr().out)
    assert (code, report["problems"]) == (0, 0)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["stream", "10.1.2.3"], "not a multicast address"),
        (["stream", "239.1.1.1", "--rate", "fast"], "rate 'fast'"),
        (["stream", "239.1.1.1", "--size", "10"], "below the 32-byte minimum"),
        (["stream", "239.1.1.1", "--size", "big"], "'big' is not a whole number"),
        (["stream", "239.1.1.1", "--size", "70000"], "over the 65507-byte limit"),
        (["stream", "239.1.1.1", "--burst", "0"], "--burst"),
        (["stream", "239.1.1.1", "--key-file", "/nonexistent/key"], "cannot read key file"),
        (["stream", "239.1.1.1", "--iface", "nosuch0"], "unknown interface 'nosuch0'"),
        (["monitor", "239.1.1.1", "ff11::1"], "mix IPv4 and IPv6"),
        (["monitor", "239.1.1.1", "--source", "::1"], "--source ::1 is IPv6"),
        (["monitor", "239.1.1.1", "--duration", "0"], "above zero"),
        (["ping", "239.1.1.1", "--count", "0"], "--count"),
        (["ping", "239.1.1.1", "--size", "20"], "below the 41-byte minimum"),
        (["ping", "239.1.1.1", "--key-env", "MULTICAST_NO_SUCH_KEY"], "is not set"),
        (["pong"], "GROUP"),
        (["doctor", "--timeout", "soon"], "'soon'"),
    ],
)
def test_bad_input_is_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, (success, line) = main(argv)
    err = capsys.readouterr().err
    assert code not in (0, 1) and not success
    assert fragment in line
    assert err.count("\n") == 1 and "Traceback" not in err


def run_on(stdout_is_terminal: bool, *options: str) -> str:
    """Run a monitor for a second with a stream going, its output on a tty or a pipe."""
    argv = command("monitor 239.6.3.4 --port 6203 --duration 1.2", *options)
    if not stdout_is_terminal:
        monitor = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_joined("239.6.3.4", monitor)
        run_stream("239.6.3.4", 6203, rate="200pps", size=64, duration=0.6)
        return finish(monitor)[1]
    main_end, terminal = pty.openpty()
    try:
        monitor = subprocess.Popen(argv, stdout=terminal, stderr=subprocess.PIPE, text=True)
        os.close(terminal)
        wait_joined("239.6.3.4", monitor)
        run_stream("239.6.3.4", 6203, rate="200pps", size=64, duration=0.6)
        output = b""
        with selectors.DefaultSelector() as selector:
            selector.register(main_end, selectors.EVENT_READ)
            deadline = time.monotonic() + LIMIT
            while time.monotonic() < deadline and selector.select(deadline - time.monotonic()):
                try:
                    chunk = os.read(main_end, 4096)
                except OSError:  # the terminal's other end closed: the monitor is done
                    break
                if not chunk:
                    break
                output += chunk
        finish(monitor)
        return output.decode()
    finally:
        os.close(main_end)


INTERVAL_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+ \[\s*[\d.]+-\s*[\d.]+ s\] datagrams")


def test_the_live_view_only_on_a_terminal_and_interval_lines_when_asked() -> None:
    on_terminal = run_on(True)
    assert "payload" in on_terminal and "Mbit/s" in on_terminal, on_terminal  # rich's table
    assert "\x1b[?1049h" in on_terminal  # the whole screen, given back at the end
    piped = run_on(False)
    assert "received" in piped
    assert not any(INTERVAL_LINE.match(line) for line in piped.splitlines()), piped
    asked = run_on(False, "--interval", "0.2")
    assert sum(bool(INTERVAL_LINE.match(line)) for line in asked.splitlines()) >= 3, asked


_TOKENS = st.sampled_from(
    [
        *TOOLS,
        "239.1.1.1",
        "ff11::1",
        "10.0.0.1",
        "--port",
        "--rate",
        "--size",
        "--count",
        "--duration",
        "--interval",
        "--iface",
        "--source",
        "--ttl",
        "--burst",
        "--json",
        "--key-env",
        "--wait",
        "lo",
        "0",
        "1",
        "-1",
        "65536",
        "max",
        "1Mbps",
        "x",
        "",
    ]
)


_PARSER = McastDispatch.buildArgs(None)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(TOOLS)), st.lists(_TOKENS, max_size=8))
def test_any_tool_command_line_parses_or_fails_with_our_error(tool: str, rest: list[str]) -> None:
    """Parsing a tool's command line gives arguments or one of the package's errors."""
    try:
        arguments = _PARSER.parse_args([tool, *rest])
    except MulticastError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert arguments.cmd_tool == tool
