"""The ``multicast`` command used carelessly (issue 12, section 4): closed standard streams, a
reader that goes away, hostile bytes to print, values that must be usage errors, and signals at
any moment. Each command runs as a process, as a user or a supervisor runs it."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from multicast.__main__ import main
from multicast.core import Receiver, Sender
from multicast.exitcodes import COMMAND_EXIT_CODES
from multicast.recv import McastRECV

from support.cli import WAIT, Lines, clean_environment, free_port, start_multicast, stderr_lines
from support.tools import finish, wait_joined

GROUP = "239.12.1.1"


def run_with(
    redirect: str, arguments: list[str], **options: Any
) -> subprocess.CompletedProcess[str]:
    """``python -m multicast ARGUMENTS`` with a shell redirection (``>&-`` closes standard
    output, ``<&-`` standard input, ``2>&-`` standard error)."""
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", sys.executable, "-m", "multicast", *arguments],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=clean_environment(),
        check=False,
        **options,
    )


def no_traceback(text: str) -> bool:
    return "Traceback" not in text and "internal error" not in text


# --- closed and vanishing standard streams ----------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (["RECV", "--group", GROUP, "--timeout", "0.2"], 70),
        (["HEAR", "--group", GROUP, "--timeout", "0.2"], 70),
        (["monitor", GROUP, "--duration", "0.2"], 1),
        (["ping", GROUP, "--count", "1", "--wait", "0.1"], 1),
        (["pong", GROUP, "--duration", "0.2"], 0),
        (["stream", GROUP, "--count", "2", "--rate", "max"], 0),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else str(value),
)
def test_a_closed_standard_output_changes_nothing_but_the_output(
    arguments: list[str], code: int
) -> None:
    done = run_with(">&-", arguments)
    assert (done.returncode, done.stdout) == (code, "")
    assert no_traceback(done.stderr), done.stderr


def test_say_pipe_with_standard_input_closed_is_66_and_one_line() -> None:
    done = run_with("<&-", ["SAY", "--group", GROUP, "--pipe"])
    assert done.returncode == 66
    assert stderr_lines(done.stderr) == ["multicast: --pipe: standard input is closed"]


@pytest.mark.parametrize(
    ("arguments", "code"),
    [(["SAY", "--port", "70000"], 64), (["RECV", "--group", GROUP, "--timeout", "0.1"], 70)],
)
def test_with_standard_error_closed_errors_never_reach_standard_output(
    arguments: list[str], code: int
) -> None:
    done = run_with("2>&-", arguments)
    assert (done.returncode, done.stdout) == (code, "")


@contextlib.contextmanager
def unread_output(*arguments: str) -> Iterator[tuple[subprocess.Popen[str], Lines]]:
    """The command started with its standard output a pipe whose reader is gone
    (``| head -c0``); yields it and the lines of its standard error."""
    process = start_multicast(list(arguments), stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    try:
        yield process, Lines(process.stderr)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(WAIT)


def test_the_echo_server_ends_with_141_when_nobody_reads_what_it_shows() -> None:
    """``multicast --daemon HEAR --use-std | head -c0`` ends by itself, datagram or not."""
    port = str(free_port())
    with unread_output("--daemon", "HEAR", "--use-std", "--group", GROUP, "--port", port) as (
        hear,
        lines,
    ):
        assert hear.wait(WAIT) == 141
        assert lines.rest()[-1] == "multicast: standard output was closed (broken pipe)\n"


def test_the_echo_server_ends_with_141_at_the_first_datagram_it_cannot_show() -> None:
    port = free_port()
    with (
        unread_output("--daemon", "HEAR", "--use-std", "--group", GROUP, "--port", str(port)) as (
            hear,
            lines,
        ),
        Sender() as out,
    ):
        lines.wait_for("listening")
        deadline = time.monotonic() + WAIT
        while hear.poll() is None and time.monotonic() < deadline:
            out.send(b"hello", GROUP, port)
            time.sleep(0.02)
        assert hear.wait(WAIT) == 141


# --- what is printed of what was received ----------------------------------------------------


@pytest.mark.parametrize("command", ["RECV", "HEAR"])
def test_recv_prints_one_escaped_line_per_datagram(command: str) -> None:
    """RECV, and HEAR without --daemon (which receives as RECV does)."""
    port = free_port()
    hostile = b"\x1b]0;owned\x07 ok\r\nmulticast: STOP from 10.0.0.1 \x1b[2J\xe2\x80\xae"
    receiving = start_multicast(
        ["--use-std", command, "--group", GROUP, "--port", str(port), "--count", "2"],
        stdout=subprocess.PIPE,
    )
    wait_joined(GROUP, receiving)
    with Sender() as out:
        out.send(hostile, GROUP, port)
        out.send(b"second", GROUP, port)
    code, printed, _ = finish(receiving)
    assert code == 0
    assert printed.splitlines() == [
        "\\x1b]0;owned\\x07 ok\\r\\nmulticast: STOP from 10.0.0.1 \\x1b[2J\\u202e",
        "second",
    ]


class _LineCounter:
    """A standard output that counts the lines written to it and keeps none."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)

    def flush(self) -> None:
        pass


def test_recv_without_a_count_keeps_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """``RECV --count 0`` kept every datagram (20,000 of 60 KB: 721 MB); now what it keeps
    for its result is the latest datagrams, 1 MiB of text at most."""
    port, sent, size = free_port(), 300, 60_000
    shown = _LineCounter()
    monkeypatch.setattr(sys, "stdout", shown)
    result: list[tuple[bool, str | None]] = []
    tracemalloc.start()
    try:
        receiving = threading.Thread(
            target=lambda: result.append(
                McastRECV().doStep(groups=[GROUP], port=port, count=0, timeout=1.0, is_std=True)
            )
        )
        receiving.start()
        time.sleep(0.2)  # joined
        with Sender() as out:
            for n in range(sent):
                out.send(bytes([65 + n % 26]) * size, GROUP, port)
                time.sleep(0.001)
        receiving.join(WAIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (done,) = result
    assert done[0] and done[1] is not None
    assert shown.lines > sent // 2, "most datagrams were received"
    assert len(done[1]) <= 1 << 20
    assert peak < 8_000_000, f"{peak} bytes at the peak for {shown.lines} datagrams"


# --- values that are usage errors (64), whichever command takes them ---------------------------


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["RECV", "--group", GROUP, "--timeout", "1e10"], "over the longest wait"),
        (["RECV", "--group", "ff02::1%nosuch"], "unknown interface 'nosuch'"),
        (["monitor", "ff02::1%nosuch"], "unknown interface 'nosuch'"),
        (["stream", "ff02::1%nosuch", "--count", "1"], "unknown interface 'nosuch'"),
        (["RECV", "--groups", GROUP, "ff02::1"], "mix IPv4 and IPv6"),
        (["monitor", GROUP, "ff02::1", "--duration", "0.1"], "mix IPv4 and IPv6"),
        (["pong", GROUP, "ff02::1", "--duration", "0.1"], "mix IPv4 and IPv6"),
        (["pong", GROUP, "--ttl", "0"], "unicast TTL 0 is out of range"),
        (["stream", GROUP, "--source", "::1", "--count", "1"], "--source ::1 is IPv6"),
        (["ping", GROUP, "--source", "::1", "--count", "1"], "--source ::1 is IPv6"),
        (["monitor", GROUP, "--source", "::1", "--duration", "0.1"], "--source ::1 is IPv6"),
        (["stream", GROUP, "--rate", "100gpps", "--count", "1"], "use --rate max"),
    ],
)
def test_bad_values_are_usage_errors_in_every_command(
    arguments: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, (ok, line) = main(arguments)
    assert (code, ok) == (64, False)
    assert fragment in line
    assert stderr_lines(capsys.readouterr().err) == [line]


def test_a_group_given_twice_is_joined_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = main(["monitor", GROUP, GROUP, "--duration", "0.1", "--json"])
    assert code == 1  # nothing arrived: not "Address already in use" (2)
    assert json.loads(capsys.readouterr().out)["groups"] == [GROUP]


# --- signals: one rule for every command -------------------------------------------------------


def arrives(receiver: Receiver, then: Callable[[], None] = lambda: None) -> None:
    """Wait (bounded) until ``receiver`` gets a datagram, calling ``then`` between looks."""
    with receiver:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            then()
            with contextlib.suppress(TimeoutError):
                receiver.receive(timeout=0.05)
                return
    raise AssertionError(f"nothing arrived on port {receiver.port}")


# command -> its arguments (the port is added), whether it prints a JSON report
RUNNING = {
    "RECV": (["RECV", "--group", GROUP, "--count", "0", "--timeout", "0"], False),
    "HEAR": (["--daemon", "HEAR", "--group", GROUP], False),
    "SAY": (["SAY", "--group", GROUP, "--pipe"], False),
    "stream": (["stream", GROUP, "--rate", "50pps", "--duration", "60", "--json"], True),
    "monitor": (["monitor", GROUP, "--json"], True),
    "ping": (["ping", GROUP, "--count", "5000", "--interval", "0.02", "--json"], True),
    "pong": (["pong", GROUP, "--json"], True),
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", sorted(RUNNING))
def test_a_signal_ends_every_command_with_128_plus_it_after_its_report(
    command: str, signum: int
) -> None:
    arguments, reports = RUNNING[command]
    port = free_port()
    watching = Receiver(port)
    watching.join(GROUP)
    process = start_multicast(
        [*arguments, "--port", str(port)], stdout=subprocess.PIPE, stdin=subprocess.PIPE
    )
    assert process.stdin is not None
    stdin = process.stdin

    def feed() -> None:  # SAY --pipe sends a datagram for each 1316 bytes it reads
        stdin.write("x" * 1316)
        stdin.flush()

    if command in ("SAY", "stream", "ping"):
        arrives(watching, feed if command == "SAY" else lambda: None)
    else:
        watching.close()
        wait_joined(GROUP, process)
    process.send_signal(signum)
    code, out, err = finish(process)
    assert code == 128 + signum
    assert code in COMMAND_EXIT_CODES[arguments[1] if command == "HEAR" else command]
    assert no_traceback(err), err
    if reports:
        assert json.loads(out)["summary" if command == "monitor" else "interrupted"]
        assert err == ""
    else:
        name = "interrupted by SIGINT" if signum == signal.SIGINT else "terminated by SIGTERM"
        assert stderr_lines(err)[-1] == f"multicast: {name}"


def test_a_ctrl_c_at_any_moment_of_the_start_is_130_without_a_traceback() -> None:
    """From the moment the ``multicast`` script has loaded its package: loading the command
    line takes tens of milliseconds more, and a Ctrl-C in them printed a KeyboardInterrupt
    traceback. (Before that moment it is Python's own start, and the package's first two
    milliseconds, in which it loads only ``sys``, ``types`` and ``importlib``.)"""
    script = Path(sys.executable).with_name("multicast")
    for delay in range(1, 101, 4):
        with subprocess.Popen(
            [str(script), "RECV", "--group", GROUP, "--timeout", "5"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=clean_environment(PYTHONPROFILEIMPORTTIME="1"),
        ) as process:
            assert process.stderr is not None
            for line in process.stderr:  # "import time: ... |   multicast" once it is loaded
                if line.rsplit("|", 1)[-1].strip() == "multicast":
                    break
            time.sleep(delay / 1000)
            process.send_signal(signal.SIGINT)
            rest = process.stderr.read()
            assert process.wait(WAIT) == 130, (delay, rest)
        assert "Traceback" not in rest, (delay, rest)
