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
import sys
from pathlib import Path
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
from multicast.env import whole_number
from multicast.exceptions import AuthKeyError, OptionError
from multicast.tools.framing import MIN_KEY_SIZE
from multicast.tools.pacing import parse_rate

__all__ = [
    "Report",
    "add_busy_poll",
    "add_duration",
    "add_json",
    "add_key",
    "add_limit",
    "add_receiving",
    "add_sending",
    "emit",
    "key_of",
    "live",
    "load_key",
    "positive_type",
    "rate_type",
    "seconds_type",
]


class Report(Protocol):
    """What a tool run returns: text for people, a dict for ``--json``."""

    def as_dict(self) -> dict[str, object]: ...


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise OptionError(f"{text!r} is not a number of seconds") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise OptionError(f"{text!r} must be a number of seconds above zero")
    return seconds


_MAX_BUSY_POLL = 1_000_000  # microseconds: one second of spinning per wait at most


def _busy_microseconds(text: str) -> int:
    number = whole_number(text)
    if not 0 <= number <= _MAX_BUSY_POLL:
        raise OptionError(f"busy-poll time {number} µs is outside 0-{_MAX_BUSY_POLL}")
    return number


def _positive(text: str) -> int:
    number = whole_number(text)
    if number < 1:
        raise OptionError(f"{number} must be at least 1")
    return number


seconds_type = argument_type(_seconds)
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


def add_receiving(parser: argparse.ArgumentParser, *, ttl_help: str) -> None:
    """``GROUP [GROUP ...]``, ``--port``, ``--iface``, ``--source`` (repeatable, for SSM) and
    ``--ttl`` (no default; what it means to the tool is ``ttl_help``)."""
    parser.add_argument(
        "groups", type=group_type, nargs="+", metavar="GROUP", help="multicast groups"
    )
    add_port(parser)
    add_iface(parser, help_text="join on this interface (name, index or address)")
    add_source(parser)
    parser.add_argument("--ttl", type=ttl_type, default=None, metavar="TTL", help=ttl_help)


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
        try:
            key = Path(file).read_bytes()
        except OSError as error:
            raise AuthKeyError(f"cannot read key file {str(file)!r}: {error.strerror}") from None
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


def add_busy_poll(parser: argparse.ArgumentParser) -> None:
    """``--busy-poll MICROSECONDS``: the latency mode (0, the default: off)."""
    parser.add_argument(
        "--busy-poll",
        type=argument_type(_busy_microseconds),
        default=0,
        metavar="MICROSECONDS",
        help="latency mode: before sleeping, poll the socket this long without blocking (and "
        "ask the kernel for SO_BUSY_POLL): lower round trips for a CPU kept busy (default 0: off)",
    )


def add_duration(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--duration", type=seconds_type, default=None, metavar="SECONDS", help=help_text
    )


def add_limit(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--count N`` where 0 (the default) means no limit; read it with ``args.count or None``."""
    parser.add_argument("--count", type=count_type, default=0, metavar="N", help=help_text)


def live() -> bool:
    """Whether to print live progress lines: only when standard output is a terminal."""
    return sys.stdout.isatty()


def emit(report: Report, args: argparse.Namespace) -> None:
    """Print the final report: JSON with ``--json``, else its text."""
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report)
