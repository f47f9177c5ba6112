"""The reference API (documents 000-002) beyond the acceptance files: names, defaults, the
environment, sockets, RECV/SAY/HEAR as a library, the exceptions and the option helpers."""

from __future__ import annotations

import argparse
import doctest
import importlib
import socket
import threading
import warnings
from ipaddress import IPv4Address, IPv6Address

import pytest
from test_cli_helpers import WAIT, free_port

import multicast
from multicast import env
from multicast.cliargs import Parser, add_count, add_timeout, add_ttl, mtool
from multicast.core import Sender, open_receiver
from multicast.exceptions import (
    CommandExecutionError,
    GroupError,
    MessageSizeError,
    PortError,
    ShutdownCommandReceived,
    UsageError,
    validate_exit_code,
)
from multicast.hear import HearUDPHandler, McastServer
from multicast.recv import McastRECV, joinstep, recvstep, tryrecv
from multicast.send import McastSAY

GROUP = "239.1.4.1"

# --- the package -------------------------------------------------------------------------------


def test_the_package_exports_the_reference_names() -> None:
    for name in ("genSocket", "endSocket", "EXIT_CODES", "EXCEPTION_EXIT_CODES", "mtool"):
        assert getattr(multicast, name) is not None
    assert multicast.genSocket is multicast.skt.genSocket
    assert multicast.__prologue__ == f"Python Multicast library version {multicast.__version__}."
    assert (multicast._MCAST_DEFAULT_PORT, multicast._MCAST_DEFAULT_GROUP) == (59259, "224.0.0.1")
    assert (multicast._MCAST_DEFAULT_TTL, multicast._MCAST_DEFAULT_BUFFER_SIZE) == (1, 1316)
    assert multicast.__main__.main is multicast.cli.main
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        multicast.nothing  # noqa: B018


def test_mtool_is_the_abstract_base_of_the_tools() -> None:
    with pytest.raises(TypeError):
        mtool()  # type: ignore[abstract]
    assert issubclass(McastSAY, mtool) and McastSAY.__proc__ == "SAY"
    assert mtool.checkToolArgs(None) == [] and mtool.checkToolArgs("NOOP") == ["NOOP"]
    with pytest.raises(UsageError, match="arguments must be strings, not int"):
        mtool.checkToolArgs(["SAY", 5])  # type: ignore[list-item]
    namespace, unknown = multicast.__main__.McastDispatch.parseArgs(["RECV", "--port", "5000"])
    assert (namespace.cmd_tool, namespace.port, unknown) == ("RECV", 5000, [])


# --- multicast.env -----------------------------------------------------------------------------


def test_load_config_without_environment_gives_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PORT", "GROUP", "GROUPS", "TTL", "BIND_ADDR", "BUFFER_SIZE"):
        monkeypatch.delenv(f"MULTICAST_{name}", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert env.load_config() == {
            "port": 59259,
            "group": "224.0.0.1",
            "groups": ["224.0.0.1"],
            "ttl": 1,
            "bind_addr": None,
            "buffer_size": 1316,
        }


def test_load_config_reads_valid_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTICAST_PORT", "50000")
    monkeypatch.setenv("MULTICAST_GROUP", "ff11::1")
    monkeypatch.setenv("MULTICAST_GROUPS", "239.2.2.2  239.1.1.1")
    monkeypatch.setenv("MULTICAST_TTL", "126")
    monkeypatch.setenv("MULTICAST_BIND_ADDR", "239.3.3.3")
    monkeypatch.setenv("MULTICAST_BUFFER_SIZE", "65507")
    config = env.load_config()
    assert config == {
        "port": 50000,
        "group": "ff11::1",
        "groups": ["239.1.1.1", "239.2.2.2", "239.3.3.3", "ff11::1"],
        "ttl": 126,
        "bind_addr": "239.3.3.3",
        "buffer_size": 65507,
    }
    assert (env.load_port(), env.load_TTL(), env.load_buffer_size()) == (50000, 126, 65507)
    assert env.load_group() == IPv6Address("ff11::1")


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("MULTICAST_PORT", "1024", "'1024' is not a dynamic port (49152-65535)"),
        ("MULTICAST_PORT", "port", "'port' is not a whole number"),
        ("MULTICAST_GROUP", "10.1.1.1", "'10.1.1.1' is not a multicast address"),
        ("MULTICAST_GROUP", "localhost", "names are never looked up in DNS"),
        ("MULTICAST_TTL", "0", "'0' is not a TTL from 1 to 126"),
        ("MULTICAST_BUFFER_SIZE", "65508", "is not a datagram size from 1 to 65507"),
        ("MULTICAST_BIND_ADDR", "eth0", "bind address 'eth0' is not an IP address"),
        ("MULTICAST_GROUPS", "239.1.1.1 bogus", "skipping 'bogus'"),
    ],
)
def test_an_invalid_value_is_warned_about_and_replaced(
    name: str, value: str, complaint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.warns(UserWarning, match=name) as warned:
        config = env.load_config()
    assert len(warned) == 1 and complaint in str(warned[0].message)
    assert config["port"] == 59259 and config["group"] == "224.0.0.1"
    assert config["ttl"] == 1 and config["buffer_size"] == 1316


def test_the_single_loaders_warn_at_their_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTICAST_TTL", "ttl")
    with pytest.warns(UserWarning, match="MULTICAST_TTL") as warned:
        assert env.load_TTL() == 1
    assert warned[0].filename == __file__


def test_the_validators() -> None:
    assert env.validate_port("49152") and not env.validate_port(65536)
    assert env.validate_buffer_size(1) and not env.validate_buffer_size(0)
    assert env.validate_ttl(" 5 ") and not env.validate_ttl(127)
    with pytest.raises(ValueError, match="not a whole number"):
        env.validate_ttl("five")
    assert env.validate_multicast_address(IPv4Address("224.0.0.1"))
    assert not env.validate_multicast_address(None)


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


# --- multicast.exceptions ----------------------------------------------------------------------


def test_command_execution_error_takes_cause_message_and_code() -> None:
    cause = OSError("refused")
    error = CommandExecutionError(cause, "cannot send", 69)
    assert (error.message, error.exit_code, error.__cause__) == ("cannot send", 69, cause)
    keyword = CommandExecutionError("cannot send", exit_code=77, __cause__=cause)
    assert (keyword.exit_code, keyword.__cause__) == (77, cause)
    assert CommandExecutionError().message == "An error occurred"
    with pytest.raises(TypeError, match="unexpected keywords: message"):
        CommandExecutionError(message="Test")
    with pytest.raises(TypeError, match="__cause__ must be an exception, not int"):
        CommandExecutionError("x", __cause__=42)
    with pytest.raises(ValueError, match="between 0 and 255"):
        CommandExecutionError("x", 256)


def test_shutdown_command_received_is_always_143() -> None:
    cause = RuntimeError("STOP")
    error = ShutdownCommandReceived(cause, "STOP from 192.0.2.1", 5)
    assert (str(error), error.exit_code, error.__cause__) == ("STOP from 192.0.2.1", 143, cause)
    assert str(ShutdownCommandReceived(message="bye")) == "bye"
    with pytest.raises(AttributeError):
        error.exit_code = 0  # type: ignore[misc]
    with pytest.raises(TypeError, match="message must be a string, not int"):
        ShutdownCommandReceived(message=3)


def test_validate_exit_code() -> None:
    validate_exit_code(0)
    validate_exit_code(255)
    for bad in (-1, 256, "1", 1.0, None):
        with pytest.raises(ValueError, match="Exit code must be an integer between 0 and 255"):
            validate_exit_code(bad)


# --- multicast.cliargs -------------------------------------------------------------------------


def test_the_option_adders_give_defaults_and_their_own_errors() -> None:
    parser = Parser(prog="tool")
    add_ttl(parser)
    add_count(parser)
    add_timeout(parser, default=0.5)
    args = parser.parse_args([])
    assert (args.ttl, args.count, args.timeout) == (1, 1, 0.5)
    assert parser.parse_args(["--timeout", "0", "--count", "0", "--ttl", "0"]).timeout == 0
    with pytest.raises(UsageError, match=r"^tool: argument --timeout: timeout '-1'"):
        parser.parse_args(["--timeout", "-1"])
    with pytest.raises(UsageError, match="count 'many' is not a whole number"):
        parser.parse_args(["--count", "many"])
    assert isinstance(parser, argparse.ArgumentParser)


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
