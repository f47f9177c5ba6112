"""Building blocks of the ``multicast`` command line, shared by every subcommand.

This is a stable API for subcommands contributed through :data:`multicast.tools.TOOLS`
(each a :class:`Tool`):

* **Converters** for argparse's ``type=``: :func:`group_type`, :func:`port_type`,
  :func:`interface_type`, :func:`ttl_type`, :func:`source_type`, :func:`count_type`,
  :func:`timeout_type`. Each calls the core parser and turns its error into one
  ``argparse.ArgumentTypeError`` line that names the value; none looks anything up in DNS.
  :func:`argument_type` makes such a converter of any parser that raises ``ValueError``.
* **Option adders**, one option each with fixed name, ``dest`` and converter (``help_text=``
  replaces the help): :func:`add_group` (``--group``), :func:`add_groups` (``--groups``),
  :func:`add_port`, :func:`add_iface`, :func:`add_ttl`, :func:`add_source` (``--source``,
  repeatable, ``dest`` ``sources``), :func:`add_count`, :func:`add_timeout`; and
  :func:`add_join_options` for a receiver's five. Defaults come from :mod:`multicast.defaults`
  (the ``MULTICAST_*`` environment) when the parser is built.
* :func:`chosen_groups` and :func:`check_sources` turn ``--group``/``--groups``/``--source``
  into the groups to use, raising :class:`~multicast.exceptions.UsageError` on conflicts.
* :class:`Parser`, whose errors raise :class:`~multicast.exceptions.UsageError` (one line,
  exit code 64) instead of printing usage and exiting.
* :class:`mtool`, the reference package's base class of the SAY/RECV/HEAR/NOOP tools.

>>> parser = Parser(prog="demo")
>>> add_group(parser); add_port(parser, default=5000); add_count(parser)
>>> args = parser.parse_args(["--group", "239.1.2.3"])
>>> [str(g) for g in chosen_groups(args)], args.port, args.count
(['239.1.2.3'], 5000, 1)
>>> parser.parse_args(["--group", "192.0.2.1"])
Traceback (most recent call last):
...
multicast.exceptions.UsageError: demo: argument --group: '192.0.2.1' is not a multicast address (IPv4 multicast is 224.0.0.0/4)
"""

from __future__ import annotations

import abc
import argparse
import functools
import math
import textwrap
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address
from typing import Any, ClassVar, NoReturn, Protocol, TypeVar

from multicast import defaults
from multicast.core import (
    Group,
    Interface,
    IPAddress,
    common_family,
    parse_address,
    parse_group,
    parse_port,
    parse_ttl,
    resolve_interface,
)
from multicast.env import whole_number
from multicast.exceptions import GroupError, OptionError, UsageError

__all__ = [
    "MAX_TIMEOUT",
    "HelpFormatter",
    "Parser",
    "Tool",
    "add_count",
    "add_global_options",
    "add_group",
    "add_groups",
    "add_iface",
    "add_join_options",
    "add_mode_flags",
    "add_port",
    "add_source",
    "add_timeout",
    "add_ttl",
    "argument_type",
    "check_sources",
    "chosen_groups",
    "count_type",
    "distinct_groups",
    "group_type",
    "interface_type",
    "mtool",
    "port_type",
    "source_type",
    "timeout_seconds",
    "timeout_type",
    "ttl_type",
]

_T = TypeVar("_T")


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`UsageError` with one line of text.

    ``add_arguments``, if given, adds the options when the parser is first used (to parse or
    to show help), so a subcommand's module is imported only when that subcommand runs.
    """

    def __init__(
        self,
        *args: Any,
        add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._add_arguments = add_arguments

    def complete(self) -> None:
        """Add the options now, if they are not added yet (parsing and help do it)."""
        add, self._add_arguments = self._add_arguments, None
        if add is not None:
            add(self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.complete()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.complete()
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {' '.join(message.split())}")


class HelpFormatter(argparse.HelpFormatter):
    """Wraps each line of a description or epilog as a paragraph of its own, but keeps lines
    that start with two spaces (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(
            indent + line
            if line.startswith("  ") or not line
            else textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
            for line in text.splitlines()
        )


class Tool(Protocol):
    """A subcommand contributed by ``multicast.tools.TOOLS`` (name -> tool).

    The command line adds a subparser named after the key, with ``help`` as its help line,
    lets the tool add its options, and calls :meth:`run` with the parsed arguments. ``run``
    returns the exit code; it raises a :class:`~multicast.exceptions.MulticastError` subclass
    for bad input, which the command line shows as one line and maps to an exit code.
    """

    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this tool's options to its subparser (a :class:`Parser`)."""

    def run(self, args: argparse.Namespace) -> int:
        """Run with the parsed arguments; return the exit code."""


# --- converters ------------------------------------------------------------------------------


def argument_type(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """Make a parser an argparse converter (``type=``): its ``ValueError`` (every
    :class:`~multicast.exceptions.OptionError` is one) becomes one usage line."""

    @functools.wraps(parse)
    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


@argument_type
def group_type(text: str) -> Group:
    """A multicast group: an IPv4 or IPv6 literal, IPv6 optionally with ``%interface`` (an
    interface of this host: an unknown one is a usage error now, not a failure later)."""
    group = parse_group(text)
    if group.interface is not None:
        resolve_interface(group.interface)
    return group


@argument_type
def port_type(text: str) -> int:
    """A UDP port from 1 to 65535."""
    return parse_port(text)


@argument_type
def interface_type(text: str) -> Interface:
    """An interface of this host by name (``eth0``), index or one of its addresses."""
    return resolve_interface(text)


@argument_type
def ttl_type(text: str) -> int:
    """A TTL (IPv6: hop limit) from 0 to 255; 0 keeps datagrams on this host."""
    return parse_ttl(text)


@argument_type
def source_type(text: str) -> IPAddress:
    """A unicast source address for a source-specific join."""
    address = parse_address(text, what="source")
    if address.is_multicast:
        raise OptionError(f"source {text!r} is a multicast address; a source is a sender's")
    return address


@argument_type
def count_type(text: str) -> int:
    """A number of datagrams: 0 or more (0: no limit)."""
    count = whole_number(text, "count")
    if count < 0:
        raise OptionError(f"count {count} is negative")
    return count


MAX_TIMEOUT = 2_147_483.0
"""The longest wait in seconds (24 days: what the kernel's timers take); 0 waits forever."""


def timeout_seconds(value: object) -> float:
    """A timeout: seconds from 0 (no limit) to :data:`MAX_TIMEOUT`; else :class:`OptionError`."""
    readable = isinstance(value, int | float | str) and not isinstance(value, bool)
    try:
        if not readable or (isinstance(value, str) and not value.isascii()):
            raise ValueError
        seconds = float(value)  # type: ignore[arg-type]  # an int, a float or a str
    except ValueError:
        raise OptionError(f"timeout {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise OptionError(f"timeout {value!r} must be 0 or more seconds")
    if seconds > MAX_TIMEOUT:
        raise OptionError(
            f"timeout {value!r} is over the longest wait, {MAX_TIMEOUT:.0f} s (24 days); "
            "0 waits without a limit"
        )
    return seconds


@argument_type
def timeout_type(text: str) -> float:
    """Seconds: 0 or more (0: no limit), at most :data:`MAX_TIMEOUT`."""
    return timeout_seconds(text)


# --- option adders ---------------------------------------------------------------------------
# Each adds one option with a fixed name, dest and converter; ``help_text`` replaces the help.


def add_group(parser: argparse.ArgumentParser, *, help_text: str | None = None) -> None:
    """``--group GROUP`` (``dest`` ``group``, default None: see :func:`chosen_groups`)."""
    parser.add_argument(
        "--group",
        type=group_type,
        default=None,
        metavar="GROUP",
        help=help_text
        or f"multicast group, IPv4 or IPv6 (default {defaults._MCAST_DEFAULT_GROUP} "
        "unless --groups is given)",
    )


def add_groups(parser: argparse.ArgumentParser, *, help_text: str | None = None) -> None:
    """``--groups GROUP ...`` (``dest`` ``groups``, default ``[]``)."""
    parser.add_argument(
        "--groups",
        type=group_type,
        nargs="*",
        default=[],
        metavar="GROUP",
        help=help_text or "more multicast groups, used together with --group",
    )


def add_port(
    parser: argparse.ArgumentParser, *, default: int | None = None, help_text: str | None = None
) -> None:
    """``--port PORT`` (default: ``default``, else the package's default port)."""
    parser.add_argument(
        "--port",
        type=port_type,
        default=defaults._MCAST_DEFAULT_PORT if default is None else default,
        metavar="PORT",
        help=help_text or "UDP port, 1-65535 (default %(default)s)",
    )


def add_iface(parser: argparse.ArgumentParser, *, help_text: str | None = None) -> None:
    """``--iface IFACE`` (``dest`` ``iface``, default None: the routing table decides)."""
    parser.add_argument(
        "--iface",
        type=interface_type,
        default=None,
        metavar="IFACE",
        help=help_text or "interface by name, index or address (default: the routing table's)",
    )


def add_ttl(
    parser: argparse.ArgumentParser, *, default: int | None = None, help_text: str | None = None
) -> None:
    """``--ttl TTL`` (default: ``default``, else the package's default TTL)."""
    parser.add_argument(
        "--ttl",
        type=ttl_type,
        default=defaults._MCAST_DEFAULT_TTL if default is None else default,
        metavar="TTL",
        help=help_text or "TTL (IPv6 hop limit) of datagrams sent, 0-255 (default %(default)s)",
    )


def add_source(parser: argparse.ArgumentParser, *, help_text: str | None = None) -> None:
    """``--source ADDRESS``, repeatable (``dest`` ``sources``, default ``[]``)."""
    parser.add_argument(
        "--source",
        dest="sources",
        type=source_type,
        action="append",
        default=[],
        metavar="ADDRESS",
        help=help_text or "join source-specifically: only datagrams sent by ADDRESS (repeatable)",
    )


def add_count(
    parser: argparse.ArgumentParser, *, default: int | None = 1, help_text: str | None = None
) -> None:
    """``--count N`` (0: no limit)."""
    parser.add_argument(
        "--count",
        type=count_type,
        default=default,
        metavar="N",
        help=help_text or "datagrams to receive, 0 for no limit (default %(default)s)",
    )


def add_timeout(
    parser: argparse.ArgumentParser, *, default: float | None = 1.0, help_text: str | None = None
) -> None:
    """``--timeout SECONDS`` (0: no limit)."""
    parser.add_argument(
        "--timeout",
        type=timeout_type,
        default=default,
        metavar="SECONDS",
        help=help_text or "seconds to wait for each datagram, 0 for no limit (default %(default)s)",
    )


def add_join_options(parser: argparse.ArgumentParser) -> None:
    """What a receiver joins: ``--port``, ``--iface``, ``--group``, ``--groups``, ``--source``."""
    add_port(parser)
    add_iface(parser, help_text="interface to join on: name, index or address")
    add_group(parser)
    add_groups(parser)
    add_source(parser)


# --- combining options -----------------------------------------------------------------------


def chosen_groups(
    args: argparse.Namespace, default: Sequence[str | Group] | None = None
) -> list[Group]:
    """``--group`` then ``--groups`` (duplicates dropped); if neither was given, ``default``
    (None: the package's default group).

    Raises :class:`UsageError` if the groups mix IPv4 and IPv6.
    """
    given: list[Group] = [args.group] if getattr(args, "group", None) is not None else []
    given += getattr(args, "groups", None) or []
    if not given:
        given = [parse_group(g) for g in default or [defaults._MCAST_DEFAULT_GROUP]]
    return distinct_groups(given)


def distinct_groups(groups: Sequence[Group]) -> list[Group]:
    """``groups`` with duplicates dropped, in order; :class:`UsageError` if they mix IPv4
    and IPv6 (every command refuses that the same way, with exit code 64)."""
    distinct = list(dict.fromkeys(groups))
    try:
        common_family(distinct)
    except GroupError as error:
        raise UsageError(str(error)) from None
    return distinct


def check_sources(groups: Sequence[Group], sources: Sequence[IPAddress]) -> None:
    """Raise :class:`UsageError` if a ``--source`` is not of the groups' family."""
    for source in sources:
        if groups and source.version != groups[0].address.version:
            kinds = ("IPv4", "IPv6") if isinstance(source, IPv4Address) else ("IPv6", "IPv4")
            raise UsageError(f"--source {source} is {kinds[0]} but the groups are {kinds[1]}")


# --- the reference package's tool base class -------------------------------------------------


class mtool(abc.ABC):  # noqa: N801 (the reference name)
    """Base class of the command-line tools (``SAY``, ``RECV``, ``HEAR``, ``NOOP``).

    A tool adds its options in :meth:`setupArgs` and does its work in :meth:`doStep`, which
    returns ``(success, result)``; calling the tool calls :meth:`doStep`.
    """

    __module__ = "multicast"
    __proc__: ClassVar[str | None] = None
    __prologue__: ClassVar[str] = "Add a prologue here."
    __epilogue__: ClassVar[str] = "Add an epilogue here."

    @classmethod
    def buildArgs(
        cls, calling_parser_group: argparse.ArgumentParser | None
    ) -> argparse.ArgumentParser:
        """The parser: ``calling_parser_group``, or a new one with the global options; then a
        ``CMD`` subparser set filled by :meth:`setupArgs`."""
        parser = calling_parser_group
        if parser is None:
            parser = Parser(
                prog=cls.__proc__ or cls.__name__,
                description=cls.__prologue__,
                epilog=cls.__epilogue__,
                add_help=False,
                formatter_class=HelpFormatter,
            )
            add_global_options(parser)
        subparsers = parser.add_subparsers(
            title="commands", dest="cmd_tool", help="the command to run", metavar="CMD"
        )
        cls.setupArgs(subparsers)
        return parser

    @classmethod
    def parseArgs(cls, arguments: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
        """Parse ``arguments`` strictly: any unknown argument is a :class:`UsageError`.

        Returns ``(namespace, [])``: the reference returned the unknown arguments there.
        """
        return cls.buildArgs(None).parse_args(cls.checkToolArgs(arguments)), []

    @classmethod
    def checkToolArgs(cls, args: Sequence[str] | str | None) -> list[str]:
        """``args`` as a list of strings (None is no arguments, a string is one argument)."""
        listed = [] if args is None else [args] if isinstance(args, str) else list(args)
        for item in listed:
            if not isinstance(item, str):
                raise UsageError(f"arguments must be strings, not {type(item).__name__}")
        return listed

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return self.doStep(*args, **kwargs)

    @classmethod
    @abc.abstractmethod
    def setupArgs(cls, parser: Any) -> None:
        """Add this tool's options to ``parser``."""

    @abc.abstractmethod
    def doStep(self, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """Do the tool's work; return ``(success, result)`` (the dispatcher: an exit code)."""


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The options of the whole command line: ``-h``/``-v``, ``--use-std``, ``--daemon``."""
    exclusive = parser.add_mutually_exclusive_group()
    exclusive.add_argument("-h", "--help", action="help", help="show this help and exit")
    exclusive.add_argument("-v", "--version", action=_ShowVersion, help="show the version and exit")
    add_mode_flags(parser, default=False)


class _ShowVersion(argparse.Action):
    """``--version``: print ``<prog> <version>`` and exit (the version is read only then)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {defaults.package_version()}")
        parser.exit()


def add_mode_flags(parser: argparse.ArgumentParser, *, default: Any) -> None:
    """``--use-std`` and ``--daemon``; a subcommand adds them with ``argparse.SUPPRESS`` as the
    default so that they work after the command without undoing them before it."""
    parser.add_argument(
        "--use-std",
        dest="is_std",
        action="store_true",
        default=default,
        help="print received data on standard output (it is printed anyway on a terminal)",
    )
    parser.add_argument(
        "--daemon",
        dest="is_daemon",
        action="store_true",
        default=default,
        help="HEAR (or RECV): run the echo server until stopped",
    )
