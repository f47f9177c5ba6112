"""Behaviours of the reference package (PyPI ``multicast`` 2.x) that its own tests rely on
(issue 12): adopted as they are, beside this package's stricter checks elsewhere."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import multicast
from multicast import recv
from multicast.cli import McastDispatch, cli, main
from multicast.core import Receiver, parse_group
from multicast.hear import HearUDPHandler, McastHEAR, McastServer
from multicast.recv import McastRECV, joinstep
from multicast.send import McastSAY

TIMEOUT = 5.0


@pytest.fixture
def server() -> Iterator[McastServer]:
    with McastServer(("239.12.2.1", 0), HearUDPHandler) as made:
        yield made


# --- McastServer ------------------------------------------------------------------------------


def test_a_second_server_activate_does_nothing(
    server: McastServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="multicast")
    server.server_activate()  # the constructor activated already
    assert [str(m) for m in server.table.joined] == ["239.12.2.1"]
    assert caplog.records == []


def test_shutdown_returns_at_once_when_no_loop_runs(server: McastServer) -> None:
    began = time.monotonic()
    server.shutdown()
    assert time.monotonic() - began < 1.0


def test_shutdown_from_the_serving_thread_does_not_wait(server: McastServer) -> None:
    class Stopper(HearUDPHandler):
        def handle(self) -> None:
            self.server.shutdown()  # the serving thread itself

    server.RequestHandlerClass = Stopper
    done = threading.Event()
    runner = threading.Thread(target=lambda: (server.serve_forever(0.05), done.set()))
    runner.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"anything", ("239.12.2.1", server.server_address[1]))
    assert done.wait(TIMEOUT), "serve_forever did not end"
    runner.join(TIMEOUT)


def test_shutdown_from_another_thread_stops_the_loop(server: McastServer) -> None:
    runner = threading.Thread(target=server.serve_forever, args=(0.05,))
    runner.start()
    while server._serving is None:
        time.sleep(0.01)
    server.shutdown()
    runner.join(TIMEOUT)
    assert not runner.is_alive()


@pytest.mark.parametrize("data", [b"please STOP now", "STOP"], ids=["bytes", "text"])
def test_handle_error_with_stop_calls_shutdown_once_with_no_exception_in_flight(
    server: McastServer, monkeypatch: pytest.MonkeyPatch, data: bytes | str
) -> None:
    calls: list[None] = []
    monkeypatch.setattr(server, "shutdown", lambda: calls.append(None))
    server.handle_error((data, None), ("192.0.2.1", 5000))
    assert calls == [None]
    server.allow_stop = False
    server.handle_error((data, None), ("192.0.2.1", 5000))
    assert calls == [None]


def test_handle_error_without_stop_does_not_shut_down(
    server: McastServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[None] = []
    monkeypatch.setattr(server, "shutdown", lambda: calls.append(None))
    server.handle_error((b"hello", None), ("192.0.2.1", 5000))
    assert calls == []


# --- McastHEAR from Python --------------------------------------------------------------------


def test_hear_from_python_honours_stop_unless_told_not_to() -> None:
    port = _free_port()
    result: list[tuple[bool, None]] = []
    runner = threading.Thread(
        target=lambda: result.append(McastHEAR().doStep(groups=["239.12.2.2"], port=port))
    )
    runner.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        deadline = time.monotonic() + TIMEOUT
        while runner.is_alive() and time.monotonic() < deadline:
            client.sendto(b"STOP", ("239.12.2.2", port))
            runner.join(0.05)
    assert result == [(True, None)]


def _free_port() -> int:
    with Receiver(0) as probe:
        return probe.port


# --- McastSAY with a text standard input -------------------------------------------------------


def test_say_reads_a_text_standard_input_without_buffer(
    monkeypatch: pytest.MonkeyPatch, changed_defaults: None
) -> None:
    multicast._MCAST_DEFAULT_BUFFER_SIZE = 4
    with Receiver(0) as receiver:
        receiver.join("239.12.2.3")
        monkeypatch.setattr("sys.stdin", io.StringIO("héllo!"))  # 7 bytes in UTF-8
        assert McastSAY().doStep(group="239.12.2.3", port=receiver.port, data=["-"]) == (
            True,
            None,
        )
        got = [receiver.receive(TIMEOUT).payload for _ in range(2)]
        assert got == ["héllo!".encode()[:4], "héllo!".encode()[4:]]
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        assert McastSAY().doStep(group="239.12.2.3", port=receiver.port, data=["-"]) == (
            True,
            None,
        )
        assert receiver.receive_ready() == []


# --- the package and the dispatcher ------------------------------------------------------------


def test_the_package_has_its_module_name() -> None:
    assert vars(multicast)["__module__"] == "multicast"


@pytest.mark.parametrize(
    "argv", [["BOGUS"], ["SAY", "--message"], ["RECV", "--port", "abc"], ["SAY", "--hex"]]
)
def test_the_dispatcher_returns_usage_errors_as_main_does(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, (success, line) = McastDispatch().doStep(argv)
    assert (code, success) == (64, False)
    assert line.startswith("multicast")
    assert capsys.readouterr().err == line + "\n"
    assert main(argv) == (code, (success, line))


# --- McastRECV's one-datagram case -------------------------------------------------------------


class Recorded(McastRECV):
    """A RECV whose ``_hearstep`` is replaced, as the reference's tests replace it."""

    calls: list[tuple[Any, ...]]

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = []

    def _hearstep(self, *args: Any) -> str:  # type: ignore[override]
        self.calls.append(args)
        return self.text


def recv_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "multicast.recv"]


def test_recv_receives_through_hearstep_and_logs_as_the_reference(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="multicast.recv")
    tool = Recorded("hello")
    result = tool.doStep(groups=["224.0.0.2"], port=5000, iface="lo", group="224.0.0.2")
    assert result == (True, "hello")
    assert tool.calls == [(["224.0.0.2"], 5000, "lo", "224.0.0.2")]
    records = recv_records(caplog)
    assert records[0] == (logging.DEBUG, "RECV")
    assert [m for level, m in records if level == logging.INFO] == ["Success"]


def test_recv_with_nothing_logs_no_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="multicast.recv")
    assert Recorded("").doStep(groups=["224.0.0.2"], port=5000) == (False, None)
    assert recv_records(caplog) == [(logging.DEBUG, "RECV"), (logging.DEBUG, "Nothing Received.")]


def test_recv_says_when_it_prints(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="multicast.recv")
    Recorded("shown").doStep(groups=["224.0.0.2"], port=5000, is_std=True)
    assert (logging.DEBUG, "Will Print to Console.") in recv_records(caplog)
    assert capsys.readouterr().out == "shown\n"


def test_the_command_line_hides_the_success_line(capfd: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    threading.Timer(0.3, _say, ("239.12.2.4", port)).start()
    assert cli(["RECV", "--group", "239.12.2.4", "--port", str(port)]) == 0
    assert "Success" not in capfd.readouterr().err


def _say(group: str, port: int) -> None:
    main(["SAY", "--group", group, "--port", str(port), "-m", "hi"])


def test_hear_without_daemon_times_out_in_its_own_name(
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert cli(["HEAR", "--group", "239.12.2.5", "--port", str(_free_port())]) == 70
    assert capfd.readouterr().err == "multicast: HEAR: 0 of 1 datagrams arrived within 1 s each\n"


# --- several groups bind every address ---------------------------------------------------------


def test_hearstep_and_joinstep_bind_every_address_for_several_groups() -> None:
    port = _free_port()
    sock = joinstep(["239.12.2.6", "239.12.2.7"], port, None, "239.12.2.6")
    with sock:
        assert sock.getsockname() == ("0.0.0.0", port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"to the second", ("239.12.2.7", port))
        sock.settimeout(TIMEOUT)
        assert sock.recv(100) == b"to the second"
    with joinstep(["239.12.2.6"], port, None, "239.12.2.6") as one:
        assert one.getsockname() == ("239.12.2.6", port)
    threading.Timer(0.2, _say, ("239.12.2.7", port)).start()
    heard = recv.McastRECV._hearstep(
        [parse_group("239.12.2.6"), "239.12.2.7"], port, None, "239.12.2.6"
    )
    assert heard == "hi"
