"""The nine defects of the reference package (issue 3): each test here fails on multicast 2.1.1.

1. HEAR loses bursts (it replaces its socket after every datagram).
2. SAY opens a socket per datagram.
3. Importing the package sets the default socket timeout and prints warnings.
4. RECV cuts datagrams at 1316 bytes and fails on bytes that are not UTF-8.
5. Groups are not checked and names are looked up in DNS.
6. The exception -> exit-code mapping is wrong in several cases.
7. ``--pipe`` cuts standard input by characters.
8. Any datagram with STOP ends HEAR, and answers may be larger than the question.
9. HEAR ignores ``--groups`` and ``--iface``.

Defects 3 and 6 need no network: their tests are in ``tests/unit/test_reference_defects.py``.
"""

from __future__ import annotations

import io
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import multicast
from multicast.__main__ import main
from multicast.core import (
    Sender,
    open_receiver,
    receive_ready,
    request_receive_buffer,
    send_datagram,
)
from multicast.exceptions import GroupError, ShutdownCommandReceived
from multicast.hear import HearUDPHandler, McastServer
from multicast.recv import joinstep, tryrecv
from multicast.send import McastSAY

from support.cli import WAIT, echo_server, free_port

GROUP = "239.1.2.3"


@pytest.fixture
def client() -> Iterator[socket.socket]:
    """A unicast socket on 127.0.0.1 that sends questions to HEAR and gets the answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request_receive_buffer(sock, 4 * 1024 * 1024)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(WAIT)
        yield sock


# --- 1. HEAR answers every datagram of a burst; kernel drops are counted and logged --------


def test_hear_answers_every_datagram_of_a_10000_per_second_burst(client: socket.socket) -> None:
    count, rate = 10_000, 10_000
    port = free_port()
    client.setblocking(False)
    buffer = bytearray(256)
    answered: set[bytes] = set()

    def collect() -> None:
        answered.update(d.payload[7:12] for d in receive_ready(client, buffer, limit=count))

    with echo_server("--port", str(port), "--group", GROUP) as (_, lines):
        start = time.monotonic()
        sent = 0
        while sent < count:  # paced: by now, (elapsed x rate) datagrams should be out
            due = min(count, int((time.monotonic() - start) * rate) + 1)
            for number in range(sent, due):
                send_datagram(client, b"%05d" % number + b" " * 35, GROUP, port)
            sent = due
            collect()
            time.sleep(0.0005)
        deadline = time.monotonic() + WAIT
        while len(answered) < count and time.monotonic() < deadline:
            time.sleep(0.01)
            collect()
    assert len(answered) == count, f"{count - len(answered)} datagrams were not answered"
    assert answered == {b"%05d" % n for n in range(count)}
    assert not [line for line in lines.rest() if "dropped" in line]


def test_hear_counts_and_logs_what_the_kernel_drops(caplog: pytest.LogCaptureFixture) -> None:
    with McastServer((GROUP, 0), HearUDPHandler) as server, Sender() as sender:
        request_receive_buffer(server.socket, 1)  # the smallest buffer the kernel allows
        port = server.server_address[1]
        for _ in range(50):
            sender.send(b"x" * 1000, GROUP, port)
        server.handle_request()  # the one datagram that fitted
        sender.send(b"after the flood", GROUP, port)
        with caplog.at_level(logging.WARNING, logger="multicast"):
            server.handle_request()  # carries the kernel's count of the drops
    assert server.drops > 0
    assert f"the kernel dropped {server.drops} datagrams" in caplog.text


# --- 2. SAY: one socket per run ----------------------------------------------------------------


def test_say_sends_a_whole_run_through_one_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    groups, port = ["239.1.2.5", "239.1.2.6"], free_port()
    made: list[socket.socket] = []

    class CountedSocket(socket.socket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    with open_receiver(groups, port) as receiver:
        monkeypatch.setattr(multicast, "_MCAST_DEFAULT_BUFFER_SIZE", 10)
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x" * 25)))
        monkeypatch.setattr(socket, "socket", CountedSocket)
        result = McastSAY().doStep(groups=groups, port=port, data=["-"])
        monkeypatch.undo()
        received = sorted(receiver.receive(timeout=WAIT).payload for _ in range(6))
    assert result == (True, None)
    assert len(made) == 1
    assert received == sorted([b"x" * 10, b"x" * 10, b"x" * 5] * 2)


# --- 4. RECV: whole datagrams, any bytes, cuts reported ----------------------------------------


def test_recv_prints_whole_datagrams_and_escapes_what_is_not_utf8(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    payloads = [("é" * 1500 + "end").encode(), b"z" * 65507, b"\xff\xfe not utf-8"]
    stop = threading.Event()

    def keep_sending() -> None:  # until RECV has joined and taken three in a row
        with Sender() as sender:
            while not stop.is_set():
                for payload in payloads:
                    sender.send(payload, GROUP, port)
                stop.wait(0.05)

    sending = threading.Thread(target=keep_sending)
    sending.start()
    receive = ["RECV", "--port", str(port), "--group", GROUP, "--count", "3", "--timeout", "10"]
    try:
        code, (ok, text) = main(["--use-std", *receive])
    finally:
        stop.set()
        sending.join(WAIT)
    expected = {"é" * 1500 + "end", "z" * 65507, "\\xff\\xfe not utf-8"}
    assert (code, ok) == (0, True)
    assert set(text.split("\n")) == expected
    assert set(capsys.readouterr().out.splitlines()) == expected


def test_a_datagram_cut_by_a_small_chunk_is_reported_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    sock = joinstep([GROUP], port)
    with sock, Sender() as sender:
        sender.send("é".encode() * 2000, GROUP, port)  # 4000 bytes
        with caplog.at_level(logging.WARNING, logger="multicast.recv"):
            text = tryrecv("", 1317, sock)  # the cut splits a character
    assert text == "é" * 658 + "\\xc3"
    assert "longer than 1317 bytes" in caplog.text


# --- 5. Groups are checked, never looked up in DNS ---------------------------------------------


@pytest.mark.parametrize(
    "group", ["localhost", "bogus", "'224.0.0.1'", "None", "example.com", "10.0.0.1", "2001:db8::1"]
)
def test_groups_are_checked_and_names_never_looked_up(
    group: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_dns(*args: object) -> None:
        raise AssertionError(f"DNS lookup of {args}")

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        monkeypatch.setattr(socket, name, no_dns)
    code, _ = main(["SAY", "--group", group])
    error = capsys.readouterr().err.splitlines()
    assert code == 64
    assert len(error) == 1
    assert repr(group) in error[0]
    with pytest.raises(GroupError):
        joinstep([group], free_port())
    with pytest.raises(GroupError):
        McastSAY().doStep(group=group)


# --- 7. --pipe cuts standard input by bytes ----------------------------------------------------


@pytest.mark.parametrize(
    ("size", "pieces"), [(1316, [1316] * 6 + [1104]), (4000, [4000, 4000, 1000])]
)
def test_pipe_cuts_standard_input_into_datagrams_of_buffer_size_bytes(
    size: int, pieces: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ("漢" * 3000).encode()  # 9000 bytes
    port = free_port()
    monkeypatch.setattr(multicast, "_MCAST_DEFAULT_BUFFER_SIZE", size)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    with open_receiver([GROUP], port) as receiver:
        assert main(["SAY", "--pipe", "--group", GROUP, "--port", str(port)]) == (0, (True, None))
        received = [receiver.receive(timeout=WAIT).payload for _ in pieces]
    assert [len(d) for d in received] == pieces
    assert b"".join(received) == data


# --- 8. STOP needs permission; answers are never larger than questions -------------------------


def _serve(server: McastServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return thread


def test_the_handler_answers_then_raises_on_stop(client: socket.socket) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server_side:
        request = (b"please STOP now" + b" " * 60, server_side)
        with pytest.raises(ShutdownCommandReceived):
            HearUDPHandler(request, client.getsockname(), None)
        answer = client.recv(1024)
    assert answer.startswith(b"HEAR [ PLEASE STOP NOW SAID ('127.0.0.1', ")
    assert len(answer) <= len(request[0])


def test_a_server_that_may_not_stop_answers_and_logs_stop(
    client: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="multicast"),
        McastServer((GROUP, 0), HearUDPHandler, allow_stop=False) as server,
    ):
        port = server.server_address[1]
        serving = _serve(server)
        try:
            answers = []
            for question in (b"STOP", b"x" * 8192, b"hi"):
                send_datagram(client, question, GROUP, port)
                answers.append(client.recv(65535))
        finally:
            server.shutdown()
            serving.join(WAIT)
    assert answers[0] == b"HEAR"
    assert len(answers[1]) == 8192 and answers[1].startswith(b"HEAR [ XXX")
    assert answers[2] == b"HE"
    host, client_port = client.getsockname()
    assert f"ignored STOP from {host} port {client_port}" in caplog.text


def test_a_server_that_may_stop_stops_and_logs_who_asked(
    client: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="multicast"),
        McastServer((GROUP, 0), HearUDPHandler) as server,
    ):
        serving = _serve(server)
        try:
            send_datagram(client, b"STOP", GROUP, server.server_address[1])
            serving.join(WAIT)
            stopped_by_itself = not serving.is_alive()
        finally:
            server.shutdown()  # returns at once if the server has stopped
    assert stopped_by_itself
    host, client_port = client.getsockname()
    assert f"STOP from {host} port {client_port}: stopping" in caplog.text


def test_the_daemon_ignores_stop_without_allow_stop(client: socket.socket) -> None:
    port = free_port()
    with echo_server("--port", str(port), "--group", GROUP) as (hear, lines):
        send_datagram(client, b"STOP" + b" " * 60, GROUP, port)
        assert client.recv(1024).startswith(b"HEAR [ STOP SAID")
        lines.wait_for("ignored STOP from 127.0.0.1")
        send_datagram(client, b"still there?" + b" " * 60, GROUP, port)
        assert client.recv(1024).startswith(b"HEAR [ STILL THERE? SAID")
    assert hear.returncode == 143  # the SIGTERM at the end
    assert lines.rest()[-1] == "multicast: terminated by SIGTERM\n"


# --- 9. HEAR honours --groups and --iface ------------------------------------------------------


def _ask(client: socket.socket, group: str, port: int, question: bytes) -> bytes:
    """Send ``question`` until an answer comes (the server may still be starting)."""
    client.settimeout(0.1)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        send_datagram(client, question, group, port)
        try:
            return client.recv(65535)
        except TimeoutError:
            continue
    raise AssertionError(f"no answer from HEAR on {group} port {port}")


def test_hear_joins_every_group_on_the_interface_given(client: socket.socket) -> None:
    port, groups = free_port(), ["239.1.2.7", "239.1.2.8"]
    arguments = ["--daemon", "HEAR", "--port", str(port), "--groups", *groups]
    outcome: list[Any] = []
    serving = threading.Thread(
        target=lambda: outcome.append(main([*arguments, "--iface", "lo", "--allow-stop"])),
        daemon=True,  # a server that failed to stop must not keep the tests from ending
    )
    serving.start()
    try:
        answers = [_ask(client, g, port, b"ping" + b" " * 80) for g in groups]
    finally:
        _ask(client, groups[0], port, b"STOP")
        serving.join(WAIT)
    host, client_port = client.getsockname()
    assert answers == [
        f"HEAR [ PING SAID ('{host}', {client_port}) ] from {g}".encode() for g in groups
    ]
    assert outcome == [(0, (True, None))]


def test_hear_serves_ipv6_groups() -> None:
    port, group = free_port(socket.AF_INET6), "ff01::1:2"
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
        client.bind(("::1", 0))
        client_port = client.getsockname()[1]
        with McastServer(("::", port), HearUDPHandler, groups=[group]) as server:
            serving = _serve(server)
            try:
                answer = _ask(client, group, port, b"v6" + b" " * 80)
            finally:
                server.shutdown()
                serving.join(WAIT)
    assert answer == f"HEAR [ V6 SAID ('::1', {client_port}) ] from {group}".encode()
