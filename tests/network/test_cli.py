"""The ``multicast`` command line: every error is one line on standard error and a documented
exit code (docs/cli.md), never a traceback; options work before and after the command."""

from __future__ import annotations

import contextlib
import io
import signal
import socket
import sys
import threading
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multicast.__main__ import cli, main
from multicast.core import open_receiver
from multicast.hear import McastHEAR
from multicast.recv import McastRECV

from support.cli import (
    WAIT,
    Lines,
    echo_server,
    free_port,
    recording,
    run_multicast,
    send_until_exit,
    start_multicast,
    stderr_lines,
)

GROUP = "239.1.2.9"

# --- a table of bad command lines, run through cli() in-process --------------------------------

BAD_INPUT = [
    (["SAY", "--group", "10.0.0.1"], 64, "'10.0.0.1' is not a multicast address"),
    (["SAY", "--group", "localhost"], 64, "names are never looked up in DNS"),
    (["RECV", "--group", "ff02::1%"], 64, "empty %zone"),
    (["SAY", "--port", "70000"], 64, "port 70000 is out of range"),
    (["SAY", "--port", "abc"], 64, "port 'abc' is not a whole number"),
    (["RECV", "--port", "0"], 64, "port 0 is out of range"),
    (["RECV", "--iface", "nosuch0"], 64, "unknown interface 'nosuch0'"),
    (["SAY", "--iface", "99"], 64, "unknown interface '99'"),
    (["SAY", "--ttl", "256"], 64, "TTL 256 is out of range"),
    (["RECV", "--count", "-1"], 64, "count -1 is negative"),
    (["RECV", "--timeout", "nan"], 64, "timeout 'nan' must be 0 or more seconds"),
    (["RECV", "--source", "224.0.0.9"], 64, "is a multicast address"),
    (["RECV", "--source", "2001:db8::1"], 64, "--source 2001:db8::1 is IPv6 but the groups"),
    (["SAY", "--group", GROUP, "--groups", "ff01::1"], 64, "mix IPv4 and IPv6"),
    (["SAY", "-m", "hello", "--pipe"], 64, "not allowed with argument -m/--message"),
    (["SAY", "--message"], 64, "expected at least one argument"),
    (["RECV", "--allow-stop"], 64, "--allow-stop needs --daemon"),
    (["--daemon", "HEAR", "--count", "3"], 64, "--count and --timeout are for receiving"),
    (["HEAR", "--daemon", "--timeout", "1"], 64, "--count and --timeout are for receiving"),
    (["NOOP", "extra"], 64, "unrecognized arguments: extra"),
    (["BOGUS"], 64, "invalid choice: 'BOGUS'"),
    ([], 64, "no command given; choose one of HEAR, NOOP, RECV, SAY"),
    (["--use-std"], 64, "no command given"),
    (["SAY", "-m", "x" * 65508], 65, "message of 65508 bytes is over the 65507-byte limit"),
    (["SAY", "--group", "ff01::1", "-m", "x" * 65528], 65, "over the 65527-byte limit"),
    (["RECV", "--timeout", "0.05"], 70, "RECV: 0 of 1 datagrams arrived within 0.05 s each"),
]


@pytest.mark.parametrize(("arguments", "code", "text"), BAD_INPUT)
def test_bad_input_is_one_line_and_its_exit_code(
    arguments: list[str], code: int, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(arguments) == code
    error = stderr_lines(capsys.readouterr().err)
    assert len(error) == 1, error
    assert text in error[0]
    assert error[0].startswith("multicast")


def test_an_address_in_use_is_an_os_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("0.0.0.0", 0))  # no SO_REUSEADDR: nobody else may bind the port
        port = holder.getsockname()[1]
        assert cli(["--daemon", "HEAR", "--port", str(port)]) == 2
    assert stderr_lines(capsys.readouterr().err) == [
        f"multicast: [Errno 98] cannot bind to 224.0.0.1 port {port}: Address already in use"
    ]


# --- options before and after the command; the extended options --------------------------------


def test_options_reach_the_receiver_resolved() -> None:
    arguments = ["RECV", "--group", "232.1.1.1", "--groups", "232.1.1.2", "232.1.1.1"]
    arguments += ["--source", "192.0.2.7", "--iface", "lo", "--count", "0", "--timeout", "2.5"]
    with recording(McastRECV) as calls:
        assert main(arguments) == (0, (True, None))
    options = calls[0]
    assert [str(g) for g in options["groups"]] == ["232.1.1.1", "232.1.1.2"]
    assert [str(s) for s in options["sources"]] == ["192.0.2.7"]
    assert options["iface"].name == "lo"
    assert (options["count"], options["timeout"], options["is_daemon"]) == (0, 2.5, False)


def test_say_and_recv_round_trip_ipv6_with_ttl_and_interface(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, group = free_port(socket.AF_INET6), "ff11::42"
    stop = threading.Event()

    def keep_saying() -> None:
        while not stop.wait(0.05):
            main(["SAY", "--group", group, "--port", str(port), "--iface", "lo", "--ttl", "0"])

    saying = threading.Thread(target=keep_saying)
    saying.start()
    try:
        code, (ok, text) = main(
            ["--use-std", "RECV", "--group", group, "--port", str(port), "--timeout", "5"]
        )
    finally:
        stop.set()
        saying.join(WAIT)
    assert (code, ok) == (0, True)
    assert text == f"PING from {socket.gethostname()}: group: {group}, port: {port}"
    assert capsys.readouterr().out == text + "\n"


def test_say_sends_to_every_group() -> None:
    port, groups = free_port(), ["239.1.3.1", "239.1.3.2"]
    with open_receiver(groups, port) as receiver:
        assert main(["SAY", "--port", str(port), "--groups", *groups, "-m", "to", "both"]) == (
            0,
            (True, None),
        )
        received = {receiver.receive(timeout=WAIT).group for _ in groups}
    assert received == set(groups)


# --- never a traceback: generated command lines ------------------------------------------------

WORDS = [
    "SAY", "RECV", "HEAR", "NOOP", "BOGUS", "--port", "--group", "--groups", "--iface", "--ttl",
    "--source", "--count", "--timeout", "-m", "--message", "--pipe", "--use-std", "--daemon",
    "--allow-stop", "-h", "-v", "0", "1", "59259", "65536", "-1", "abc", "224.0.0.1",
    "239.1.2.10", "ff01::1", "ff02::1%lo", "10.0.0.1", "localhost", "127.0.0.1", "lo",
    "eth9", "1.5", "nan", "inf", "", "--", "=", "%", "::",
]  # fmt: skip


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.one_of(st.sampled_from(WORDS), st.text(max_size=8)).filter(lambda w: "\x00" not in w),
        max_size=8,
    )
)
def test_generated_command_lines_never_show_a_traceback(arguments: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with (
        recording(McastRECV),
        recording(McastHEAR),
        mock.patch.object(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"piped"))),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code, result = main(arguments)
    assert 0 <= code <= 255
    assert isinstance(result, tuple) and len(result) == 2
    assert "Traceback" not in err.getvalue()
    if code != 0:
        assert len(stderr_lines(err.getvalue())) == 1, err.getvalue()


# --- through a real process --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "code", "text"),
    [
        ([], 64, "no command given"),
        (["SAY", "--group", "bogus"], 64, "group 'bogus' is not an IP address"),
        (["RECV", "--iface", "eth9"], 64, "unknown interface 'eth9'"),
    ],
)
def test_a_process_shows_one_line_and_exits_with_the_code(
    arguments: list[str], code: int, text: str
) -> None:
    done = run_multicast(arguments)
    assert done.returncode == code
    assert [text in line for line in stderr_lines(done.stderr)] == [True]


def test_a_process_says_and_another_receives() -> None:
    port = free_port()
    receiving = start_multicast(
        ["--use-std", "RECV", "--port", str(port), "--group", GROUP, "--timeout", "5"],
        stdout=-1,
    )
    try:
        send_until_exit(receiving, b"\xffhello from SAY", GROUP, port)
    finally:
        out, _ = receiving.communicate(timeout=WAIT)
    assert (receiving.returncode, out) == (0, "\\xffhello from SAY\n")


def test_a_closed_standard_output_is_141_and_one_line() -> None:
    port = free_port()
    receiving = start_multicast(
        ["--use-std", "RECV", "--port", str(port), "--group", GROUP, "--count", "0"], stdout=-1
    )
    assert receiving.stdout is not None and receiving.stderr is not None
    receiving.stdout.close()
    lines = Lines(receiving.stderr)
    send_until_exit(receiving, b"into a closed pipe", GROUP, port)
    assert receiving.returncode == 141
    assert lines.rest() == ["multicast: standard output was closed (broken pipe)\n"]


def test_sigint_ends_the_echo_server_with_130_and_one_line() -> None:
    with echo_server("--port", str(free_port())) as (hear, lines):
        hear.send_signal(signal.SIGINT)
        assert hear.wait(WAIT) == 130
    assert lines.rest()[-1] == "multicast: interrupted by SIGINT\n"
