"""HEAR's batched answers: with its own handler, one wake-up answers every datagram queued
with one ``send_replies`` (one ``sendmmsg``), as the handler would have one by one. Every test
runs on both batch backends (the ``io_backend`` fixture)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator, Sequence

import pytest

from multicast import hear
from multicast.core import Datagram, Payload, receive_ready, send_replies
from multicast.hear import HearUDPHandler, McastServer

GROUP = "239.12.3.1"
WAIT = 5.0

pytestmark = pytest.mark.usefixtures("io_backend")


@pytest.fixture
def client() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as made:
        made.bind(("127.0.0.1", 0))
        made.settimeout(WAIT)
        yield made


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each batch HEAR answered (its calls of ``send_replies``)."""
    sizes: list[int] = []

    def counted(
        sock: socket.socket,
        family: socket.AddressFamily,
        replies: Sequence[tuple[Payload, Datagram]],
    ) -> list[tuple[Datagram, OSError]]:
        sizes.append(len(replies))
        return send_replies(sock, family, replies)

    monkeypatch.setattr(hear, "send_replies", counted)
    return sizes


def _serve(server: McastServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return thread


def _queue(client: socket.socket, port: int, *questions: bytes) -> None:
    """Send ``questions`` (padded: whole answers) before the server serves: they queue."""
    for question in questions:
        client.sendto(question + b" " * 80, (GROUP, port))


def _answers(client: socket.socket, count: int) -> list[bytes]:
    return [client.recv(65535) for _ in range(count)]


def _served(server: McastServer, client: socket.socket, count: int) -> list[bytes]:
    """Serve until ``client`` has ``count`` answers, then shut the server down."""
    serving = _serve(server)
    try:
        return _answers(client, count)
    finally:
        server.shutdown()
        serving.join(WAIT)


def test_a_batch_queued_is_answered_in_one_send(
    client: socket.socket, batches: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    with McastServer((GROUP, 0), HearUDPHandler, allow_stop=False, show=True) as server:
        port = server.server_address[1]
        _queue(client, port, b"one", b"two", b"three")
        answers = _served(server, client, 3)
    host, client_port = client.getsockname()
    assert answers == [
        f"HEAR [ {word} SAID ('{host}', {client_port}) ] from {GROUP}".encode()
        for word in ("ONE", "TWO", "THREE")
    ]
    assert batches == [3]
    shown = capsys.readouterr().out.splitlines()
    assert shown == [
        f"HEAR '{word}' from {host} port {client_port} to {GROUP}"
        for word in ("one", "two", "three")
    ]


def test_a_stop_in_a_batch_stops_after_answering_what_came_before(
    client: socket.socket, batches: list[int]
) -> None:
    with McastServer((GROUP, 0), HearUDPHandler) as server:
        _queue(client, server.server_address[1], b"before", b"STOP", b"after")
        serving = _serve(server)
        serving.join(WAIT)
        stopped = not serving.is_alive()
        answers = _answers(client, 2)
        client.settimeout(0.2)
        with pytest.raises(TimeoutError):  # nothing answered after the STOP
            client.recv(65535)
    assert stopped
    assert [a.split(b" SAID")[0] for a in answers] == [b"HEAR [ BEFORE", b"HEAR [ STOP"]
    assert batches == [2]


def test_what_follows_a_stop_stays_queued_when_shutdown_does_not_stop(
    client: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    with McastServer((GROUP, 0), HearUDPHandler) as server:
        calls: list[None] = []
        monkeypatch.setattr(server, "shutdown", lambda: calls.append(None))
        _queue(client, server.server_address[1], b"STOP", b"after")
        serving = _serve(server)
        try:
            answers = _answers(client, 2)
        finally:
            McastServer.shutdown(server)
            serving.join(WAIT)
    assert calls == [None]
    assert [a.split(b" SAID")[0] for a in answers] == [b"HEAR [ STOP", b"HEAR [ AFTER"]


def test_a_refused_answer_in_a_batch_is_logged_and_the_others_are_sent(
    client: socket.socket, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def first_refused(
        sock: socket.socket,
        family: socket.AddressFamily,
        replies: Sequence[tuple[Payload, Datagram]],
    ) -> list[tuple[Datagram, OSError]]:
        refused = (replies[0][1], PermissionError(1, "Operation not permitted"))
        return [refused, *send_replies(sock, family, replies[1:])]

    monkeypatch.setattr(hear, "send_replies", first_refused)
    with (
        caplog.at_level(logging.ERROR, logger="multicast"),
        McastServer((GROUP, 0), HearUDPHandler, allow_stop=False) as server,
    ):
        _queue(client, server.server_address[1], b"refused", b"sent")
        (answer,) = _served(server, client, 1)
    assert answer.startswith(b"HEAR [ SENT SAID")
    host, client_port = client.getsockname()
    assert f"cannot answer {host} port {client_port}: " in caplog.text


def test_shutdown_does_not_wait_for_a_loop_that_failed_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_watcher() -> None:
        raise OSError(93, "Protocol not supported")

    monkeypatch.setattr(hear, "InterfaceWatcher", no_watcher)
    with McastServer((GROUP, 0), HearUDPHandler) as server:
        with pytest.raises(OSError, match="Protocol not supported"):
            server.serve_forever(0.05)
        stopping = threading.Thread(target=server.shutdown, daemon=True)
        stopping.start()
        stopping.join(WAIT)
        assert not stopping.is_alive()


def test_a_failed_read_is_passed_over_as_socketserver_does(
    client: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = [ConnectionRefusedError(111, "Connection refused")]

    def fails_once(sock: socket.socket, buffer: bytearray, limit: int) -> list[Datagram]:
        if failures:
            raise failures.pop()
        return receive_ready(sock, buffer, limit)

    monkeypatch.setattr(hear, "receive_ready", fails_once)
    with McastServer((GROUP, 0), HearUDPHandler, allow_stop=False) as server:
        _queue(client, server.server_address[1], b"first")
        (answer,) = _served(server, client, 1)
    assert failures == []
    assert answer.startswith(b"HEAR [ FIRST SAID")
