"""The exit-code vocabulary of the command line (the reference package's names).

:data:`EXIT_CODES` maps each code to the exception class it stands for;
:func:`get_exit_code_from_exception` picks an exception's code and the decorator
:func:`exit_on_exception` turns whatever escapes a function into ``SystemExit`` with that code.
An exception that carries an ``exit_code`` attribute gets that code; any other gets the code of
the nearest class in its MRO that the table names. :mod:`multicast.exceptions` re-exports these
names, where the reference has them.

>>> from multicast.exceptions import CommandExecutionError, ShutdownCommandReceived
>>> get_exit_code_from_exception(ConnectionRefusedError())  # a ConnectionError: 69, not 2
69
>>> get_exit_code_from_exception(CommandExecutionError("no route", 77))
77
>>> get_exit_code_from_exception(ShutdownCommandReceived())
143
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable
from typing import Final, ParamSpec, TypeVar

__all__ = [
    "COMMAND_EXIT_CODES",
    "EXCEPTION_EXIT_CODES",
    "EXIT_CODES",
    "EXIT_CODE_RANGE_ERROR",
    "describe_exit_codes",
    "exit_on_exception",
    "get_exit_code_from_exception",
    "system_exit_code",
    "validate_exit_code",
]

EXIT_CODE_RANGE_ERROR: Final = "Exit code must be an integer between 0 and 255"

EXIT_CODES: Final[dict[int, tuple[type[BaseException] | None, str]]] = {
    0: (None, "Success"),
    1: (RuntimeError, "General Error"),
    2: (OSError, "Misuse of Shell Builtins"),
    64: (argparse.ArgumentError, "Usage Error"),
    65: (ValueError, "Data Error"),
    66: (FileNotFoundError, "No Input"),
    69: (ConnectionError, "Unavailable Service"),
    70: (Exception, "Internal Software Error"),
    77: (PermissionError, "Permission Denied"),
    125: (BaseException, "Critical Failure"),
    126: (AssertionError, "Command Invoked Cannot Execute"),
    127: (ModuleNotFoundError, "Command Not Found"),
    129: (None, "Hangup (SIGHUP)"),
    130: (KeyboardInterrupt, "Interrupt (SIGINT)"),
    134: (None, "Abort (SIGABRT)"),
    137: (None, "Killed (SIGKILL)"),
    141: (BrokenPipeError, "Broken Pipe (SIGPIPE)"),
    143: (SystemExit, "Terminated (SIGTERM)"),
    255: (None, "Exit Status Out of Range"),
}
"""Exit code -> (the exception class it stands for, or None; its description)."""

EXCEPTION_EXIT_CODES: Final[dict[type[BaseException], int]] = {
    kind: code for code, (kind, _) in EXIT_CODES.items() if kind is not None
}
"""Exception class -> exit code: the reverse of :data:`EXIT_CODES`."""

# What each command's exit status means: the rules every command shares, and its own.
_EVERY_COMMAND: Final = {
    0: "success",
    64: "usage error: a bad option or value, options that conflict (one line says which)",
    130: "ended by SIGINT (Ctrl-C), after printing what it prints when it ends",
    141: "standard output was closed (a broken pipe)",
    143: "ended by SIGTERM, after printing what it prints when it ends",
}
_REFUSED: Final = {2: "the system refused: a bind, a join, a send (no route to the group...)"}
_BAD_DATA: Final = {65: "a value the command cannot use: a message too large, a bad key..."}
_RECEIVING: Final = {  # RECV and HEAR: --daemon makes either the echo server
    **_REFUSED,
    0: "every datagram asked for arrived (--count 0: at least one); --daemon: stopped by an "
    "allowed STOP",
    70: "without --daemon: fewer datagrams than --count arrived in time",
}

COMMAND_EXIT_CODES: Final[dict[str, dict[int, str]]] = {
    name: dict(sorted({**_EVERY_COMMAND, **own}.items()))
    for name, own in {
        "multicast": {0: "--help or --version", 64: "no command, or one it does not know"},
        "NOOP": {},
        "SAY": {
            **_REFUSED,
            0: "sent",
            65: "a message too large for one datagram",
            66: "--pipe: standard input is closed or cannot be read",
        },
        "RECV": _RECEIVING,
        "HEAR": _RECEIVING,
        "stream": {**_REFUSED, **_BAD_DATA, 1: "no datagram could be sent"},
        "monitor": {
            **_BAD_DATA,
            2: "the system refused: a bind, a join; or a line of --log-file or --syslog (the "
            "run went on)",
            1: "no datagram arrived",
            3: "an alarm fired (--alarm-loss, --alarm-silence)",
        },
        "ping": {**_REFUSED, **_BAD_DATA, 1: "no reply arrived"},
        "pong": {**_REFUSED, **_BAD_DATA},
        "doctor": {**_REFUSED, 1: "a problem was found (each is listed with its fix)"},
        "querier": {**_REFUSED, 77: "no raw socket: this process lacks CAP_NET_RAW"},
        "membership": {**_REFUSED, 77: "--wire without CAP_NET_RAW"},
        "send-file": {
            **_REFUSED,
            **_BAD_DATA,
            1: "incomplete: a receiver dropped out or did not get every file",
            3: "the receivers of a closed session did not all join within --wait",
        },
        "receive-file": {
            **_REFUSED,
            **_BAD_DATA,
            1: "incomplete: the sender ended or fell silent first (partial files kept)",
            3: "no session heard within --wait",
            4: "a file refused (an unsafe name, or its digest failed twice)",
        },
    }.items()
}
"""Command name -> {exit code: what it means}: the codes each command documents in its help,
and the only ones it exits with (an unexpected internal error, 70, is a bug). ``multicast``
stands for a command line that runs no command."""


def describe_exit_codes(command: str) -> str:
    """The exit codes of ``command`` as the lines of its help's epilog."""
    lines = ["exit codes:"]
    lines += [f"  {code:<4} {meaning}" for code, meaning in COMMAND_EXIT_CODES[command].items()]
    return "\n".join(lines)


_logger = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def validate_exit_code(code: object) -> None:
    """Raise ``ValueError`` unless ``code`` is an ``int`` from 0 to 255."""
    if not isinstance(code, int) or not 0 <= code <= 255:
        raise ValueError(f"{EXIT_CODE_RANGE_ERROR}, not {code!r}")


def get_exit_code_from_exception(exc: object) -> int:
    """The exit code for ``exc``: its own valid ``exit_code``, else the nearest class in its MRO
    that :data:`EXIT_CODES` names (70 for anything that is not an exception)."""
    if not isinstance(exc, BaseException):
        return 70
    own = getattr(exc, "exit_code", None)
    if type(own) is int and 0 <= own <= 255:
        return own
    for kind in type(exc).__mro__:
        if kind in EXCEPTION_EXIT_CODES:
            return EXCEPTION_EXIT_CODES[kind]
    return 70


def system_exit_code(error: SystemExit) -> int:
    """Python's meaning of ``SystemExit(code)``: None is 0, a non-int is 1, 255 if out of range."""
    if error.code is None:
        return 0
    if not isinstance(error.code, int):
        return 1
    return error.code if 0 <= error.code <= 255 else 255


def exit_on_exception(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate ``func`` so that whatever escapes it becomes ``SystemExit`` with the right code.

    ``SystemExit`` keeps its code (normalised as Python does); any other exception becomes
    ``SystemExit(get_exit_code_from_exception(exc))``. Both are logged on this module's logger.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except SystemExit as error:
            code = system_exit_code(error)
            _logger.debug("%s exited with %d (%s)", func.__name__, code, _describe(code))
            raise SystemExit(code) from error
        except BaseException as error:
            code = get_exit_code_from_exception(error)
            _logger.error("%s: %s: %s", func.__name__, _describe(code), error)
            raise SystemExit(code) from error

    return wrapper


def _describe(code: int) -> str:
    described = EXIT_CODES.get(code)
    return described[1] if described else f"exit status {code}"
