"""The ``multicast`` command line: SAY, RECV, HEAR, NOOP and the tools of ``multicast.tools``.

``multicast [-h | -v] [--use-std] [--daemon] CMD [options]``; ``--use-std`` and ``--daemon``
are also accepted after ``CMD``. :func:`main` runs one command line and returns
``(exit_code, result)``; :func:`cli` is the console script and returns the exit code. Every
error is one line on standard error and an exit code from the table in ``docs/cli.md``; a
traceback is never shown.

>>> main(["NOOP"])
(0, (True, None))
>>> main(["SAY", "--port", "70000"])
(64, (False, 'multicast SAY: argument --port: port 70000 is out of range (1-65535)'))
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from multicast import defaults, interrupts
from multicast.cliargs import (
    HelpFormatter,
    Tool,
    add_mode_flags,
    check_sources,
    chosen_groups,
    mtool,
)
from multicast.env import load_config
from multicast.exceptions import MulticastError, Terminated, UsageError
from multicast.exitcodes import (
    COMMAND_EXIT_CODES,
    describe_exit_codes,
    exit_on_exception,
    get_exit_code_from_exception,
    system_exit_code,
)
from multicast.hear import McastHEAR, add_stop_option
from multicast.recv import McastRECV
from multicast.send import McastSAY
from multicast.skt import DEFAULT_TIMEOUT

__all__ = [
    "TASK_OPTIONS",
    "McastDispatch",
    "McastNope",
    "McastRecvHearDispatch",
    "cli",
    "contributed_tools",
    "main",
]

_logger = logging.getLogger("multicast")


class McastNope(mtool):
    """The NOOP tool: does nothing, successfully."""

    __module__ = "multicast.__main__"
    __proc__ = "NOOP"
    __prologue__ = "No Operation."
    __epilogue__ = "Does nothing; exits with 0."

    @classmethod
    def setupArgs(cls, parser: argparse.ArgumentParser | None) -> None:
        """NOOP has no options."""

    def doStep(self, *args: Any, **kwargs: Any) -> tuple[bool, None]:
        return True, None


class McastRecvHearDispatch(mtool):
    """RECV and HEAR: receive (RECV, or HEAR without ``--daemon``) or serve (``--daemon``).

    ``command`` (``RECV`` or ``HEAR``, default :attr:`__proc__`) names the command in the
    messages it logs.
    """

    __module__ = "multicast.__main__"
    __proc__ = "HEAR"
    __prologue__ = "Receive datagrams, or with --daemon answer each one (the echo server)."
    __epilogue__ = "Without --daemon, HEAR receives like RECV, as in the reference."

    def __init__(self, command: str | None = None) -> None:
        self.command = command or str(self.__proc__)

    @classmethod
    def setupArgs(cls, parser: argparse.ArgumentParser | None) -> None:
        """RECV's options and HEAR's ``--allow-stop`` (None: nothing to do)."""
        if parser is None:
            return
        McastRECV.setupArgs(parser)
        add_stop_option(parser)

    @staticmethod
    def _help_daemon_dispatch(**kwargs: Any) -> bool:
        """Whether to serve (``is_daemon``) rather than receive."""
        return bool(kwargs.get("is_daemon", False))

    def doStep(self, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        """Serve with :class:`McastHEAR` under ``--daemon``, else receive with
        :class:`McastRECV`; options of the other mode are a :class:`UsageError`."""
        if self._help_daemon_dispatch(**kwargs):
            if kwargs.get("count") is not None or kwargs.get("timeout") is not None:
                raise UsageError(
                    "--count and --timeout are for receiving; --daemon serves until stopped"
                )
            return McastHEAR().doStep(**kwargs)
        if kwargs.get("allow_stop"):
            raise UsageError("--allow-stop needs --daemon: only the echo server can be stopped")
        receiver = McastRECV()
        result = receiver.doStep(**kwargs)
        if not result[0]:
            count, timeout = kwargs.get("count"), kwargs.get("timeout")
            wanted = "any" if count == 0 else str(1 if count is None else count)
            seconds = DEFAULT_TIMEOUT if timeout is None else timeout
            _logger.info(
                "%s: %d of %s datagrams arrived within %g s each",
                self.command,
                receiver.received,
                wanted,
                seconds,
            )
        return result


TASK_OPTIONS: dict[str, mtool] = {
    "NOOP": McastNope(),
    "RECV": McastRecvHearDispatch("RECV"),
    "SAY": McastSAY(),
    "HEAR": McastRecvHearDispatch("HEAR"),
}
"""The built-in commands: name -> tool."""


@dataclass(frozen=True)
class _Page:
    """The help of a built-in command: one line for the list, what it does, an example."""

    line: str
    description: str
    examples: str
    mode_flags: bool = False  # --use-std and --daemon mean something for it

    def epilog(self, command: str) -> str:
        """The examples, and the exit codes of ``command`` (``multicast.exitcodes``)."""
        return f"examples:\n{self.examples}\n\n{describe_exit_codes(command)}"


_PAGES = {
    "SAY": _Page(
        "send a message, or standard input, to groups",
        "Send -m/--message (its words joined by spaces) as one datagram to each group, or with "
        "--pipe standard input in datagrams of MULTICAST_BUFFER_SIZE bytes (default 1316). "
        "--ttl 0 keeps the datagrams on this host.",
        "  multicast SAY --group 239.1.2.3 --port 5000 -m hello world\n"
        "  printf 'STOP' | multicast SAY --group 239.1.2.3 --port 5000 --pipe\n"
        "  multicast SAY --group ff02::1%eth0 --port 5000 --ttl 1 -m on eth0's link",
    ),
    "RECV": _Page(
        "receive datagrams from groups and print them",
        "Join the groups (--group, --groups; default the MULTICAST_GROUPS) on --port and wait "
        "up to --timeout seconds for each of --count datagrams. Each datagram is printed as "
        "one line with --use-std, or when standard output is a terminal. With --daemon, RECV "
        "is the echo server of HEAR (as in the reference).",
        "  multicast --use-std RECV --group 239.1.2.3 --port 5000 --count 0 --timeout 0\n"
        "  (in another terminal) multicast SAY --group 239.1.2.3 --port 5000 -m hello",
        mode_flags=True,
    ),
    "HEAR": _Page(
        "the echo server (with --daemon): answer every datagram to its sender",
        "The echo server: with --daemon, join the groups on --port and answer every datagram "
        "to its sender "
        "with 'HEAR [ TEXT SAID (host, port) ] from GROUP', never larger than the datagram, "
        "until interrupted; with --allow-stop a datagram containing STOP ends it. Without "
        "--daemon, HEAR receives one datagram like RECV (as in the reference).",
        "  multicast --daemon HEAR --group 239.1.2.3 --port 5000 --allow-stop\n"
        "  (in another terminal) multicast SAY --group 239.1.2.3 --port 5000 -m STOP",
        mode_flags=True,
    ),
    "NOOP": _Page("do nothing", "Do nothing, successfully.", "  multicast NOOP"),
}


def contributed_tools() -> Mapping[str, Tool]:
    """``multicast.tools.TOOLS``: the subcommands beyond SAY/RECV/HEAR/NOOP (none if the
    ``multicast.tools`` package is not installed)."""
    try:
        module = importlib.import_module("multicast.tools")
    except ModuleNotFoundError as error:
        if error.name != "multicast.tools":
            raise
        return {}
    tools: Mapping[str, Tool] = module.TOOLS
    return tools


class McastDispatch(mtool):
    """The whole command line: parse it and run the command it names."""

    __module__ = "multicast.__main__"
    __proc__ = "multicast"
    __prologue__ = (
        "Send, receive and measure IP multicast, IPv4 and IPv6: SAY sends, RECV receives, "
        "HEAR --daemon answers (the echo server); stream, monitor, ping, pong and doctor "
        "measure and check; querier and membership keep and show the IGMP/MLD memberships "
        "of a link; send-file and receive-file deliver files whole. Each command has its own "
        "--help."
    )
    __epilogue__ = (
        "examples (two terminals):\n"
        "  multicast --use-std RECV --group 239.1.2.3 --port 5000 --count 0 --timeout 0\n"
        "  multicast SAY --group 239.1.2.3 --port 5000 -m hello world\n"
        "  multicast doctor\n\n"
        "exit codes: 0 success; 2 the system refused; 64 usage error; 65 bad data; "
        "70 the command did not succeed; 130 ended by SIGINT (Ctrl-C) and 143 by SIGTERM, "
        "for every command, after what it prints when it ends; 141 standard output closed; "
        "each command's own (see its --help). Every error is one line on standard error."
    )

    @classmethod
    def setupArgs(cls, parser: Any) -> None:
        """One subparser per built-in command and per contributed tool (``parser`` is the
        subparsers action)."""
        for name, task in sorted(TASK_OPTIONS.items()):
            page = _PAGES[name]
            sub = parser.add_parser(
                name,
                help=page.line,
                description=page.description,
                epilog=page.epilog(name),
                formatter_class=HelpFormatter,
            )
            type(task).setupArgs(sub)
            if page.mode_flags:
                add_mode_flags(sub, default=argparse.SUPPRESS)
        for name, tool in sorted(contributed_tools().items()):
            parser.add_parser(
                name,
                help=tool.help,
                description=tool.help,
                epilog=describe_exit_codes(name) if name in COMMAND_EXIT_CODES else None,
                formatter_class=HelpFormatter,
                add_arguments=tool.add_arguments,
            )

    @staticmethod
    def useTool(tool: str | None, **kwargs: Any) -> tuple[bool, Any]:
        """Run the built-in command ``tool`` with ``kwargs``; ``(False, None)`` if unknown.

        Errors propagate (the reference turned them into text here and lost the exit code).
        """
        if tool not in TASK_OPTIONS:
            return False, None
        return TASK_OPTIONS[tool](**kwargs)

    def doStep(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """Parse ``args[0]`` (a list of strings) and run it: ``(exit_code, result)``.

        A usage error is printed as one line on standard error and returned as
        ``(64, (False, that line))``, as :func:`main` returns it; other errors propagate.
        """
        try:
            return self._run(args[0] if args else None)
        except UsageError as error:
            line = _error_line(error)
            _say(line)
            return get_exit_code_from_exception(error), (False, line)

    def _run(self, argv: Sequence[str] | None) -> tuple[int, Any]:
        parser = self.buildArgs(None)
        arguments = parser.parse_args(self.checkToolArgs(argv))
        command: str | None = arguments.cmd_tool
        if command is None:
            parser.print_help()
            raise UsageError(f"multicast: no command given; choose one of {_choices()}")
        if command not in TASK_OPTIONS:
            code = contributed_tools()[command].run(arguments)
            return code, (code == 0, None)
        options = vars(arguments)
        del options["cmd_tool"]
        groups = chosen_groups(
            arguments, default=None if command == "SAY" else defaults._MCAST_DEFAULT_GROUPS
        )
        check_sources(groups, options.get("sources") or [])
        options["groups"] = groups
        result = self.useTool(command, **options)
        return (0 if result[0] else 70), result


def _choices() -> str:
    return ", ".join(sorted({*TASK_OPTIONS, *contributed_tools()}))


def _error_line(error: BaseException) -> str:
    """One line of text for the error that ended a command."""
    if isinstance(error, Terminated):
        text = "multicast: terminated by SIGTERM"
    elif isinstance(error, KeyboardInterrupt):
        text = "multicast: interrupted by SIGINT"
    elif isinstance(error, BrokenPipeError):
        text = "multicast: standard output was closed (broken pipe)"
    elif isinstance(error, MulticastError | OSError | ValueError):
        text = str(error)  # a parser's error starts with its name, "multicast ..."
        text = text if text.startswith("multicast") else f"multicast: {text}"
    else:
        text = f"multicast: internal error: {type(error).__name__}: {error}"
    return " ".join(text.split())


def _say(line: str) -> None:
    """Write ``line`` on standard error; nowhere if it is closed (never on standard output)."""
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            print(line, file=sys.stderr, flush=True)


def _report_environment() -> None:
    """Show each invalid ``MULTICAST_*`` variable as one warning line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config()
    for warning in caught:
        _say(f"multicast: warning: {warning.message}")


@exit_on_exception
def main(argv: Sequence[str] | None = None) -> tuple[int, Any]:
    """Run one command line (None: ``sys.argv[1:]``); return ``(exit_code, result)``.

    ``result`` is the command's ``(success, value)``; for an error it is ``(False, the
    error line)``, and that line is also printed on standard error (never on standard
    output; nowhere when standard error is closed). A command that SIGINT or SIGTERM ended
    (under :func:`cli`, which records them) returns 128 plus the signal's number.
    """
    interrupts.reset()
    _report_environment()
    try:
        code, result = McastDispatch()(sys.argv[1:] if argv is None else argv)
    except SystemExit as done:  # --help, --version, or a tool that called sys.exit()
        code = system_exit_code(done)
        result = (code == 0, None)
    except BaseException as error:
        line = _error_line(error)
        _say(line)
        code, result = get_exit_code_from_exception(error), (False, line)
    return interrupts.exit_code(code), result


@contextlib.contextmanager
def _process_settings() -> Iterator[None]:
    """While a command runs as the process: log lines on standard error (if it is open),
    SIGINT and SIGTERM recorded and unwinding (:func:`multicast.interrupts.handling`)."""
    handler = logging.StreamHandler(sys.stderr) if sys.stderr is not None else None
    level = _logger.level
    if handler is not None:
        handler.setFormatter(logging.Formatter("multicast: %(message)s"))
        _logger.addHandler(handler)
    _logger.setLevel(logging.INFO)
    # RECV's own INFO lines are the reference's ("Success"): the dispatcher reports instead.
    receiving = logging.getLogger("multicast.recv")
    receiving_level = receiving.level
    receiving.setLevel(logging.WARNING)
    try:
        with interrupts.handling():
            yield
    finally:
        if handler is not None:
            _logger.removeHandler(handler)
        _logger.setLevel(level)
        receiving.setLevel(receiving_level)


def cli(argv: Sequence[str] | None = None) -> int:
    """The ``multicast`` command (None: ``sys.argv[1:]``); returns the exit code."""
    with _process_settings():
        code, _ = main(argv)
    if code == 141 and sys.stdout is not None:  # a closed pipe: nothing more can be written
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code
