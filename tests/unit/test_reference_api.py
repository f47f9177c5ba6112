"""The reference API (documents 000-002) without the network: the package's names and
defaults, the environment, the exceptions and the option helpers."""

from __future__ import annotations

import argparse
import warnings
from ipaddress import IPv4Address, IPv6Address

import pytest

import multicast
from multicast import env
from multicast.cliargs import Parser, add_count, add_timeout, add_ttl, mtool
from multicast.exceptions import (
    CommandExecutionError,
    ShutdownCommandReceived,
    UsageError,
    validate_exit_code,
)
from multicast.send import McastSAY

# --- the package -------------------------------------------------------------------------------


def test_the_package_exports_the_reference_names() -> None:
    # The reference's package-level names are its submodules' own objects, not copies.
    assert multicast.genSocket is multicast.skt.genSocket
    assert multicast.endSocket is multicast.skt.endSocket
    assert multicast.EXIT_CODES is multicast.exceptions.EXIT_CODES
    assert multicast.EXCEPTION_EXIT_CODES is multicast.exceptions.EXCEPTION_EXIT_CODES
    assert multicast.mtool is mtool
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
    # They take any ArgumentParser: a plain one gives the same defaults and its own errors.
    plain = argparse.ArgumentParser(prog="plain", exit_on_error=False)
    add_ttl(plain)
    add_count(plain)
    add_timeout(plain, default=0.5)
    args = plain.parse_args([])
    assert (args.ttl, args.count, args.timeout) == (1, 1, 0.5)
    with pytest.raises(argparse.ArgumentError, match="count 'many' is not a whole number"):
        plain.parse_args(["--count", "many"])
