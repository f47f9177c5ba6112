"""Command-line options the tools share (beyond :mod:`multicast.cliargs`), the shared key
they name (:func:`load_key`: the tools' only file read), and the tools' output.

Converters raise ``argparse.ArgumentTypeError`` with one line naming the value, which the
command line reports as a usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import stat
import sys
from typing import Protocol

from multicast.cliargs import (
    add_iface,
    add_port,
    add_source,
    add_ttl,
    argument_type,
    count_type,
    group_type,
    source_type,
    ttl_type,
)
from multicast.core import parse_ttl
from multicast.env import whole_number
from multicast.exceptions import AuthKeyError, OptionError
from multicast.tools.framing import MIN_KEY_SIZE, TIME_WINDOW
from multicast.tools.pacing import parse_rate

__all__ = [
    "MAX_KEY_FILE",
    "Report",
    "add_duration",
    "add_json",
    "add_key",
    "add_limit",
    "add_receiving",
    "add_sending",
    "add_time_window",
    "emit",
    "key_of",
    "live",
    "load_key",
    "positive_type",
    "rate_type",
    "seconds_type",
    "unicast_ttl_type",
]


MAX_KEY_FILE = 4096
"""Bytes a key file may hold (an HMAC key gains nothing past the hash's block, 64 bytes)."""


class Report(Protocol):
    """What a tool run returns: text for people, a dict for ``--json``."""

    def as_dict(self) -> dict[str, object]: ...


def _seconds(text: str) -> float:
    try:
        if not text.isascii():  # float() reads the digits of every script
            raise ValueError
        seconds = float(text)
    except ValueError:
        raise OptionError(f"{text!r} is not a number of seconds") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise OptionError(f"{text!r} must be a number of seconds above zero")
    return seconds


def _positive(text: str) -> int:
    number = whole_number(text)
    if number < 1:
        raise OptionError(f"{number} must be at least 1")
    return number


def _unicast_ttl(text: str) -> int:
    return parse_ttl(text, unicast=True)


seconds_type = argument_type(_seconds)
unicast_ttl_type = argument_type(_unicast_ttl)
positive_type = argument_type(_positive)
rate_type = argument_type(parse_rate)


def add_sending(parser: argparse.ArgumentParser, *, receivers: str) -> None:
    """``GROUP``, ``--port``, ``--iface``, ``--ttl``, ``--source`` (the address to send from,
    the S of the (S,G) that ``receivers`` join) and ``--no-loopback``."""
    parser.add_argument("group", type=group_type, metavar="GROUP", help="multicast group")
    add_port(parser)
    add_iface(parser, help_text="send by this interface (name, index or address)")
    add_ttl(parser)
    parser.add_argument(
        "--source",
        type=source_type,
        default=None,
        metavar="ADDRESS",
        help=f"send from this local address (the S of the (S,G) {receivers} join)",
    )
    parser.add_argument(
        "--no-loopback", action="store_true", help=f"{receivers} on this host get nothing"
    )


def add_receiving(
    parser: argparse.ArgumentParser, *, ttl_help: str, unicast_ttl: bool = False
) -> None:
    """``GROUP [GROUP ...]``, ``--port``, ``--iface``, ``--source`` (repeatable, for SSM) and
    ``--ttl`` (no default; what it means to the tool is ``ttl_help``; 1-255 for the TTL of
    unicast datagrams with ``unicast_ttl``, else 0-255)."""
    parser.add_argument(
        "groups", type=group_type, nargs="+", metavar="GROUP", help="multicast groups"
    )
    add_port(parser)
    add_iface(parser, help_text="join on this interface (name, index or address)")
    add_source(parser)
    parser.add_argument(
        "--ttl",
        type=unicast_ttl_type if unicast_ttl else ttl_type,
        default=None,
        metavar="TTL",
        help=ttl_help,
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print the final report as JSON on standard output"
    )


def add_key(parser: argparse.ArgumentParser) -> None:
    """``--key-file PATH`` or ``--key-env NAME``: the shared HMAC-SHA256 key."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--key-file",
        metavar="PATH",
        help="authenticate frames with the key in this file (at least 16 bytes)",
    )
    where.add_argument(
        "--key-env",
        metavar="NAME",
        help="authenticate frames with the key in this environment variable",
    )


def add_time_window(parser: argparse.ArgumentParser) -> None:
    """``--time-window SECONDS``: how far a keyed frame's send time may be from this host's
    clock (see :class:`~multicast.tools.framing.FrameReader`)."""
    parser.add_argument(
        "--time-window",
        type=seconds_type,
        default=TIME_WINDOW,
        metavar="SECONDS",
        help="with a key: refuse frames sent more than SECONDS from this host's clock, or "
        "before this run started (default %(default)g)",
    )


def key_of(args: argparse.Namespace) -> bytes | None:
    """The key ``--key-file`` or ``--key-env`` names (None without either)."""
    key_file: str | None = args.key_file
    key_env: str | None = args.key_env
    return load_key(key_file, key_env)


def load_key(file: str | os.PathLike[str] | None = None, env: str | None = None) -> bytes | None:
    """The shared key from a file or an environment variable (None when neither is given).

    A file's bytes are taken as they are, less one trailing newline; a variable's text is
    encoded as UTF-8. Either way the key must have at least 16 bytes.
    """
    if file is not None and env is not None:
        raise AuthKeyError("give the key either as a file or as an environment variable, not both")
    if file is not None:
        key = _read_key_file(file)
        key = key.removesuffix(b"\n").removesuffix(b"\r")
        where = f"key file {str(file)!r}"
    elif env is not None:
        value = os.environ.get(env)
        if value is None:
            raise AuthKeyError(f"environment variable {env!r} holding the key is not set")
        key = value.encode()
        where = f"environment variable {env!r}"
    else:
        return None
    if len(key) < MIN_KEY_SIZE:
        raise AuthKeyError(f"{where} holds {len(key)} bytes; a key needs at least {MIN_KEY_SIZE}")
    return key


def _read_key_file(file: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file of at most :data:`MAX_KEY_FILE` bytes; anything else (a
    device such as ``/dev/zero``, a FIFO, a directory, a larger file) is an
    :class:`AuthKeyError` saying so. Opening never waits for a FIFO's writer."""
    name = repr(os.fsdecode(file))
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise AuthKeyError(f"cannot read key file {name}: {error.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise AuthKeyError(f"key file {name} is not a regular file ({_kind(mode)})")
        data = b""
        while len(data) <= MAX_KEY_FILE and (piece := os.read(fd, MAX_KEY_FILE + 1 - len(data))):
            data += piece
    except OSError as error:
        raise AuthKeyError(f"cannot read key file {name}: {error.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE:
        raise AuthKeyError(f"key file {name} holds more than {MAX_KEY_FILE} bytes; is it a key?")
    return data


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a plain file"


def add_duration(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--duration", type=seconds_type, default=None, metavar="SECONDS", help=help_text
    )


def add_limit(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--count N`` where 0 (the default) means no limit; read it with ``args.count or None``."""
    parser.add_argument("--count", type=count_type, default=0, metavar="N", help=help_text)


def live() -> bool:
    """Whether to print live progress lines: only when standard output is a terminal (never
    when it is closed)."""
    return sys.stdout is not None and sys.stdout.isatty()


def emit(report: Report, args: argparse.Namespace) -> None:
    """Print the final report: JSON with ``--json``, else its text."""
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report)
