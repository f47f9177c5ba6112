"""The contract of the reference documents (seeds 000-003), in this project's own words: what
their examples check with sockets: ``main``'s return values, the server's set-up, the socket
helpers, RECV's steps and the event layer's two examples (see also the unit half)."""

from __future__ import annotations

import socket
import socketserver
import types

import pytest

import multicast
from multicast import MulticastListener, listen, poll, sendto
from multicast.hear import HearUDPHandler, McastServer
from multicast.recv import McastRECV, joinstep, recvstep

pytestmark = pytest.mark.usefixtures("default_poller_left_clean")


@pytest.mark.parametrize("command", ["HEAR", "RECV"])
def test_main_returns_an_exit_code_and_a_result(command: str) -> None:
    code, result = multicast.__main__.main([command, "--port=1234"])
    assert type(code) is int and 0 <= code < 256
    assert code == 70 and result == (False, None)  # nothing was sent


def test_main_runs_noop_and_say() -> None:
    assert multicast.__main__.main(["NOOP"]) == (0, (True, None))
    assert multicast.__main__.main(["SAY", "--message", "x"]) == (0, (True, None))


def test_the_server_binds_and_names_its_logger_after_its_address() -> None:
    with McastServer(("224.0.0.1", 12345), None) as server:
        assert isinstance(server, socketserver.UDPServer)
    with McastServer(("239.0.0.9", 23456), None) as server:
        assert server.logger.name == "multicast.hear.McastServer.239.0.0.9"
    with McastServer(("239.0.0.9", 0), HearUDPHandler) as server:
        assert server.logger.name.startswith("multicast.hear.McastServer")


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("239.0.0.9", "multicast.hear.McastServer.239.0.0.9"),
        (None, "multicast.hear.McastServer"),
        ("2001:db8::1", "multicast.hear.McastServer.2001:db8::1"),
    ],
)
def test_sync_logger_follows_the_socket_address(address: str | None, name: str) -> None:
    server = McastServer(("239.0.0.9", 51234), None)
    real = server.socket
    try:
        server.socket = types.SimpleNamespace(getsockname=lambda: (address, 5678))  # type: ignore[assignment]
        server._sync_logger()
        assert server.logger.name == name
    finally:
        real.close()


def test_the_handler_answers_with_a_socket_of_gensocket() -> None:
    with (
        multicast.genSocket() as answering,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        client.bind(("127.0.0.1", 0))
        handler = HearUDPHandler(
            request=("x", None), client_address=client.getsockname(), server=None
        )
        handler.request = ("The Test", answering)
        assert handler.handle() is None
        client.settimeout(5)
        assert client.recv(100) == b"HEAR [ T"  # cut to the question's 8 bytes
    multicast.endSocket(answering)


def test_gensocket_and_endsocket() -> None:
    sock = multicast.skt.genSocket()
    assert type(sock) is socket.socket
    assert multicast.skt.endSocket(sock) is None
    assert sock.fileno() == -1
    assert multicast.skt.endSocket(None) is None


def test_joinstep_binds_a_port_and_joins_with_or_without_a_socket_given() -> None:
    group = multicast._MCAST_DEFAULT_GROUP
    for sock in (joinstep(None, 59991), joinstep([group], 59991, None, group)):
        assert sock.getsockname()[1] == 59991
        multicast.endSocket(sock)
        assert "[closed]" in repr(sock)
    given = multicast.genSocket()
    joined = joinstep([group], 59991, None, group, given)
    assert joined is given and joined.getsockname() == (group, 59991)
    multicast.endSocket(joined)


def test_recvstep_and_hearstep_give_back_nothing_when_nothing_arrives() -> None:
    assert recvstep("test pass-through", None, multicast.genSocket()) == "test pass-through"
    tool = McastRECV()
    group = multicast._MCAST_DEFAULT_GROUP
    assert tool._hearstep(None, 59991) == ""
    assert tool._hearstep([group], 59991, None, group) == ""


def test_the_event_layer_listen_example() -> None:
    """listen() with no handler joins at once; sendto, poll, then next gives the packet."""
    listener = listen()
    sendto(b"test")
    poll()
    assert next(listener) == b"test"


def test_the_event_layer_listener_example(capsys: pytest.CaptureFixture[str]) -> None:
    """A MulticastListener subclass prints the packet the default poller hands it."""

    class Printer(MulticastListener):
        def handle_packet(self, packet: bytes, addr: object) -> bool:
            print(packet)
            return True  # stop listening

    printer = Printer()
    sendto(b"test")
    poll()
    assert capsys.readouterr().out == "b'test'\n"
    assert printer.closed
