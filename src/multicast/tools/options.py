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
    check_sources,
    count_type,
    source_type,
    ttl_type,
)
from multicast.core import (
    Channel,
    Group,
    IPAddress,
    parse_channel_lines,
    parse_channels,
    parse_ttl,
    resolve_interface,
)
from multicast.core.addresses import MAX_CHANNELS, common_family
from multicast.env import whole_number
from multicast.exceptions import (
    AuthKeyError,
    GroupError,
    MulticastError,
    OptionError,
    UsageError,
)
from multicast.tools.framing import MIN_KEY_SIZE, TIME_WINDOW
from multicast.tools.pacing import parse_rate

__all__ = [
    "MAX_GROUPS_FILE",
    "MAX_KEY_FILE",
    "Report",
    "add_busy_poll",
    "add_duration",
    "add_json",
    "add_key",
    "add_limit",
    "add_receiving",
    "add_sending",
    "add_time_window",
    "argument_type",
    "channels_of",
    "channels_type",
    "emit",
    "key_of",
    "live",
    "load_key",
    "positive_type",
    "rate_type",
    "read_channels_file",
    "read_regular_file",
    "seconds_type",
    "sending_channels",
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


def _unicast_ttl(text: str) -> int:
    return parse_ttl(text, unicast=True)


seconds_type = argument_type(_seconds)
unicast_ttl_type = argument_type(_unicast_ttl)
positive_type = argument_type(_positive)
rate_type = argument_type(parse_rate)


def _channels(text: str) -> list[Channel]:
    """:func:`~multicast.core.parse_channels`, where an IPv6 ``%zone`` must name an interface
    of this host: an unknown one is a usage error now, not a failure later."""
    channels = parse_channels(text)
    zones = {channel.group.interface for channel in channels}
    for zone in zones:
        if zone is not None:
            resolve_interface(zone)
    return channels


channels_type = argument_type(_channels)

_GROUPS_HELP = (
    "multicast groups: GROUP, GROUP+N (N consecutive groups), SOURCE,GROUP (source-specific)"
)


def _add_groups(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``GROUP ...`` in the shorthand of :func:`~multicast.core.parse_channels`, and
    ``--groups-file PATH``; read both with :func:`channels_of`."""
    parser.add_argument("groups", type=channels_type, nargs="*", metavar="GROUP", help=help_text)
    parser.add_argument(
        "--groups-file",
        metavar="PATH",
        help="more groups, from a file: the same words, separated by spaces or lines; "
        "# starts a comment",
    )


MAX_GROUPS_FILE = 4 * 1024 * 1024
"""Bytes a groups file may hold (65,536 groups of the longest form fit many times over)."""


def read_channels_file(path: str) -> list[Channel]:
    """The channels listed in the regular file at ``path`` (see
    :func:`~multicast.core.parse_channel_lines`); a file that cannot be read, is not a
    regular file, holds more than :data:`MAX_GROUPS_FILE` bytes or is not UTF-8 is an
    :class:`OptionError` naming it."""
    data = read_regular_file(path, MAX_GROUPS_FILE, "groups file", OptionError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OptionError(f"cannot read groups file {path!r}: not UTF-8 text") from None
    return parse_channel_lines(text, origin=f"groups file {path!r}")


def channels_of(args: argparse.Namespace) -> list[Channel]:
    """The channels of ``GROUP ...`` and ``--groups-file``, duplicates dropped, order kept;
    a :class:`UsageError` when there are none, too many, or they mix families, or a
    ``--source`` is of the other family."""
    listed: dict[Channel, None] = {}
    for channels in args.groups:
        listed.update(dict.fromkeys(channels))
    if args.groups_file is not None:
        listed.update(dict.fromkeys(read_channels_file(args.groups_file)))
    channels = list(listed)
    if not channels:
        raise UsageError("give at least one GROUP, or --groups-file")
    if len(channels) > MAX_CHANNELS:
        raise UsageError(f"{len(channels)} groups: at most {MAX_CHANNELS} in one run")
    try:
        common_family([channel.group for channel in channels])
    except GroupError as error:
        raise UsageError(str(error)) from None
    check_sources([channels[0].group], getattr(args, "sources", []))
    return channels


def sending_channels(
    args: argparse.Namespace,
) -> tuple[list[Group], IPAddress | None]:
    """The groups a sender sends to, and the address to send from: ``--source``, or the
    source of ``SOURCE,GROUP`` pairs (one for all). A :class:`UsageError` otherwise."""
    channels = channels_of(args)
    sources = {channel.source for channel in channels if channel.source is not None}
    if args.source is not None:
        sources.add(args.source)
    if len(sources) > 1:
        named = ", ".join(sorted(str(source) for source in sources))
        raise UsageError(f"one sender sends from one source address, not {named}")
    if sources and any(channel.source is None for channel in channels) and args.source is None:
        raise UsageError("give SOURCE,GROUP for every group, or --source once")
    groups = list(dict.fromkeys(channel.group for channel in channels))
    source = sources.pop() if sources else None
    check_sources(groups, [source] if source is not None else [])
    return groups, source


def add_sending(parser: argparse.ArgumentParser, *, receivers: str, groups_help: str) -> None:
    """``GROUP ...`` (see :func:`sending_channels`), ``--groups-file``, ``--port``,
    ``--iface``, ``--ttl``, ``--source`` (the address to send from, the S of the (S,G) that
    ``receivers`` join) and ``--no-loopback``."""
    _add_groups(parser, f"{_GROUPS_HELP}; {groups_help}")
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
    """``GROUP ...`` and ``--groups-file`` (read with :func:`channels_of`), ``--port``,
    ``--iface``, ``--source`` (repeatable, for SSM) and ``--ttl`` (no default; what it
    means to the tool is ``ttl_help``; 1-255 for the TTL of unicast datagrams with
    ``unicast_ttl``, else 0-255)."""
    _add_groups(parser, f"{_GROUPS_HELP}; any number")
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
        key = read_regular_file(file, MAX_KEY_FILE, "key file", AuthKeyError)
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


def read_regular_file(
    file: str | os.PathLike[str], limit: int, what: str, error: type[MulticastError]
) -> bytes:
    """The bytes of the regular file ``file`` of at most ``limit`` bytes; anything else (a
    device such as ``/dev/zero``, a FIFO, a directory, a larger file, one that cannot be
    read) is an ``error`` naming ``what`` and the file. Opening never waits for a FIFO's
    writer, and no more than ``limit + 1`` bytes are ever read."""
    name = repr(os.fsdecode(file))
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as failure:
        raise error(f"cannot read {what} {name}: {failure.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{what} {name} is not a regular file ({_kind(mode)})")
        data = b""
        while len(data) <= limit and (piece := os.read(fd, limit + 1 - len(data))):
            data += piece
    except OSError as failure:
        raise error(f"cannot read {what} {name}: {failure.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{what} {name} holds more than {limit} bytes; is it the right file?")
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
    """Whether to print live progress lines: only when standard output is a terminal (never
    when it is closed)."""
    return sys.stdout is not None and sys.stdout.isatty()


def emit(report: Report, args: argparse.Namespace) -> None:
    """Print the final report: JSON with ``--json``, else its text."""
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report)
