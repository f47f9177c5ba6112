"""The reference API (documents 000-002) beyond the acceptance files: names, defaults, the
environment, sockets, RECV/SAY/HEAR as a library, the exceptions and the option helpers."""

from __future__ import annotations

import doctest
import importlib
import socket
import threading

import pytest

import multicast
from multicast.core import Sender, open_receiver
from multicast.exceptions import GroupError, MessageSizeError, PortError
from multicast.hear import HearUDPHandler, McastServer
from multicast.recv import McastRECV, joinstep, recvstep, tryrecv
from multicast.send import McastSAY

from support.cli import WAIT, free_port

GROUP = "239.1.4.1"

# --- multicast.skt -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_gensocket_configures_only_its_own_socket(
    family: socket.AddressFamily, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multicast, "_MCAST_DEFAULT_TTL", 7)
    sock = multicast.genSocket(family)
    level, option = (
        (socket.IPPROTO_IP, socket.IP_MULTICAST_TTL)
        if family == socket.AF_INET
        else (socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS)
    )
    with sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.getsockopt(level, option) == 7
        assert sock.gettimeout() == 1.0
        assert socket.getdefaulttimeout() is None
    multicast.endSocket(sock)  # a second end is harmless


# --- multicast.recv ----------------------------------------------------------------------------


def test_joinstep_binds_one_ipv4_group_and_several_to_every_address() -> None:
    port = free_port()
    with joinstep([GROUP], port) as one, joinstep([GROUP, "239.1.4.2"], port) as two:
        assert one.getsockname() == (GROUP, port)
        assert two.getsockname() == ("0.0.0.0", port)
    with joinstep(["ff11::7"], port) as six:
        assert six.family == socket.AF_INET6 and six.getsockname()[:2] == ("::", port)


def test_joinstep_uses_the_bind_group_and_the_socket_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    with joinstep(None, port, "lo", "239.1.4.3") as chosen:
        assert chosen.getsockname() == ("239.1.4.3", port)
    given = multicast.genSocket()
    assert joinstep([GROUP], port, None, "0.0.0.0", given) is given
    given.close()
    monkeypatch.setattr(multicast, "_MCAST_DEFAULT_BIND_IP", "0.0.0.0")
    with joinstep([GROUP], port) as configured:
        assert configured.getsockname() == ("0.0.0.0", port)


def test_joinstep_names_what_is_wrong() -> None:
    with pytest.raises(PortError, match="port 70000 is out of range"):
        joinstep([GROUP], 70000)
    with pytest.raises(GroupError, match="mix IPv4 and IPv6"):
        joinstep([GROUP, "ff11::1"], free_port())


def test_joinstep_joins_source_specifically_on_an_interface_by_name() -> None:
    port, group = free_port(), "232.1.4.1"
    sock = joinstep([group], port, "lo", sources=["127.0.0.1"])
    with sock, Sender(source="127.0.0.2") as stranger, Sender(source="127.0.0.1") as chosen:
        stranger.send(b"from 127.0.0.2", group, port)
        chosen.send(b"from 127.0.0.1", group, port)
        assert tryrecv("", None, sock) == "from 127.0.0.1"


def test_recvstep_returns_the_text_and_closes_the_socket() -> None:
    port = free_port()
    sock = joinstep([GROUP], port)
    with Sender() as sender:
        sender.send(b"hello", GROUP, port)
    assert recvstep("got: ", None, sock) == "got: hello"
    assert sock.fileno() == -1
    with joinstep([GROUP], port) as quiet, pytest.raises(TimeoutError):
        quiet.settimeout(0.05)
        tryrecv(None, None, quiet)


def test_mcastrecv_returns_what_arrived_and_whether_it_was_all() -> None:
    port = free_port()
    assert McastRECV().doStep(groups=[GROUP], port=port, timeout=0.05) == (False, None)
    stop = threading.Event()

    def keep_sending() -> None:  # until RECV has joined and taken its two
        with Sender() as sender:
            while not stop.wait(0.02):
                sender.send(b"again", GROUP, port)

    sending = threading.Thread(target=keep_sending)
    sending.start()
    try:
        outcome = McastRECV().doStep(groups=[GROUP], port=port, count=2, timeout=WAIT)
    finally:
        stop.set()
        sending.join(WAIT)
    assert outcome == (True, "again\nagain")


# --- multicast.send ----------------------------------------------------------------------------


def test_say_formats_the_default_message() -> None:
    port = free_port()
    with open_receiver([GROUP], port) as receiver:
        assert McastSAY()(group=GROUP, port=port) == (True, None)
        assert McastSAY()(group=GROUP, port=port, data=b"\x00raw") == (True, None)
        first = receiver.receive(timeout=WAIT).payload
        second = receiver.receive(timeout=WAIT).payload
    assert first == f"PING from {socket.gethostname()}: group: {GROUP}, port: {port}".encode()
    assert second == b"\x00raw"


def test_say_checks_every_message_before_sending_any() -> None:
    port = free_port()
    with open_receiver([GROUP], port) as receiver:
        with pytest.raises(MessageSizeError, match="65508 bytes"):
            McastSAY().doStep(group=GROUP, port=port, data="x" * 65508)
        assert receiver.receive_ready() == []


# --- multicast.hear ----------------------------------------------------------------------------


def test_mcastserver_defaults_a_missing_host_to_the_default_group() -> None:
    with McastServer(("", 0), None, bind_and_activate=False) as server:
        assert server.server_address == ("224.0.0.1", 59259)
        assert [str(g) for g in server.groups] == ["224.0.0.1"]
    with pytest.raises(ValueError, match="server address 'localhost' is not an IP address"):
        McastServer(("localhost", 0), None)


def test_mcastserver_with_a_unicast_host_joins_nothing() -> None:
    with McastServer(("127.0.0.1", 0), HearUDPHandler) as server:
        assert server.groups == []
        assert server.logger.name == "multicast.hear.McastServer.127.0.0.1"


def test_the_handler_takes_text_or_bytes_and_ignores_empty_requests() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(WAIT)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server_side:
            HearUDPHandler(("text" + " " * 70, server_side), client.getsockname(), None)
            HearUDPHandler((None, server_side), client.getsockname(), None)
            HearUDPHandler((b"\xff" + b" " * 70, server_side), client.getsockname(), None)
        assert client.recv(1024).startswith(b"HEAR [ TEXT SAID")
        assert client.recv(1024).startswith(b"HEAR [ \\XFF SAID")


# --- the examples in the docstrings ------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "multicast",
        "cliargs",
        "defaults",
        "env",
        "skt",
        "recv",
        "send",
        "hear",
        "exceptions",
        "exitcodes",
        "cli",
        "__main__",
    ],
)
def test_the_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name if name == "multicast" else f"multicast.{name}")
    assert doctest.testmod(module).failed == 0
