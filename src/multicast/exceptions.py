"""Every error this package raises on purpose, in one hierarchy.

:class:`MulticastError` is the root. Each subclass also derives from the built-in
exception a caller would expect (``ValueError`` for bad input, ``OSError`` for what the
kernel refuses), and every message names the group, interface or option at fault.

The second half is the exit-code vocabulary of the command line (the reference package's
names): :data:`EXIT_CODES`, :func:`get_exit_code_from_exception` and the decorator
:func:`exit_on_exception`. An exception that carries an ``exit_code`` attribute gets that code;
any other gets the code of the nearest class in its MRO that the table names.

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
from typing import Final, ParamSpec, TypeVar, cast

__all__ = [
    "EXCEPTION_EXIT_CODES",
    "EXIT_CODES",
    "EXIT_CODE_RANGE_ERROR",
    "AddressError",
    "AuthKeyError",
    "BindError",
    "ClosedError",
    "CommandExecutionError",
    "GroupError",
    "InterfaceError",
    "MessageSizeError",
    "MulticastError",
    "OptionError",
    "PortError",
    "SendError",
    "ShutdownCommandReceived",
    "SocketOptionError",
    "Terminated",
    "UnsupportedError",
    "UsageError",
    "exit_on_exception",
    "get_exit_code_from_exception",
    "system_exit_code",
    "validate_exit_code",
]


class MulticastError(Exception):
    """Root of every error raised on purpose by :mod:`multicast`."""


class AddressError(MulticastError, ValueError):
    """An address that is not a valid IP literal of the kind needed."""


class GroupError(AddressError):
    """A group address that is not multicast, not an IP literal, or of the wrong family."""


class PortError(MulticastError, ValueError):
    """A port number outside 0-65535 (or 1-65535 where 0 makes no sense)."""


class InterfaceError(MulticastError, ValueError):
    """An interface name, index or address that matches no interface on this host."""


class MessageSizeError(MulticastError, ValueError):
    """A message too large for one UDP datagram."""


class OptionError(MulticastError, ValueError):
    """An option value out of its range, or options that contradict each other."""

    exit_code = 64  # a usage error on the command line


class UsageError(OptionError):
    """A command line that cannot be run: unknown command or option, missing or bad value."""


class AuthKeyError(MulticastError, ValueError):
    """A shared authentication key that is missing, unreadable or too short."""


class SocketOptionError(MulticastError, OSError):
    """The kernel refused a socket option or a membership: ``errno`` is the kernel's; the text
    names the option and its subject."""


class BindError(MulticastError, OSError):
    """The kernel refused to bind a socket (address in use, not local...): ``errno`` is the
    kernel's; the text names the address and port."""


class SendError(MulticastError, OSError):
    """The kernel refused to send a datagram (no route, unreachable...): ``errno`` is the
    kernel's; the text names the destination."""


class ClosedError(MulticastError, OSError):
    """An operation on a socket or peer that is not open (``errno`` is ``EBADF``)."""


class UnsupportedError(MulticastError, NotImplementedError):
    """A feature this platform does not support; the message names the feature."""


class CommandExecutionError(MulticastError, RuntimeError):
    """A command that failed, with the exit code it should end the process with.

    ``CommandExecutionError([cause,] message, ..., [exit_code])``: a leading exception becomes
    ``__cause__``, a trailing ``int`` the exit code; both can also be given by keyword
    (``__cause__=``, ``exit_code=``; default 1).

    >>> error = CommandExecutionError(OSError("refused"), "cannot send", 69)
    >>> error.message, error.exit_code, type(error.__cause__).__name__
    ('cannot send', 69, 'OSError')
    >>> CommandExecutionError(None).message
    'An error occurred'
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        rest = list(args)
        cause = _pop_cause(rest, kwargs.pop("__cause__", None))
        code = rest.pop() if rest and type(rest[-1]) is int else kwargs.pop("exit_code", 1)
        if kwargs:
            raise TypeError(f"CommandExecutionError got unexpected keywords: {', '.join(kwargs)}")
        validate_exit_code(code)
        super().__init__(*rest)
        self.message = str(rest[0]) if rest and rest[0] else "An error occurred"
        self.exit_code = cast(int, code)  # validated just above
        self.__cause__ = cause


def _pop_cause(args: list[object], default: object) -> BaseException | None:
    """Take a leading exception off ``args`` as the cause; else ``default`` (None or exception)."""
    first = args[0] if args else None
    if isinstance(first, BaseException):
        del args[0]
        return first
    if default is None or isinstance(default, BaseException):
        return default
    raise TypeError(f"__cause__ must be an exception, not {type(default).__name__}")


class ShutdownCommandReceived(MulticastError, RuntimeError):  # noqa: N818 (the reference name)
    """A STOP command reached HEAR; ends the process with 143 (the code cannot be changed).

    ``ShutdownCommandReceived([cause,] [message], ...)``; the message defaults to
    ``"SHUTDOWN"`` (also ``message=``) and must be a string.

    >>> str(ShutdownCommandReceived()), ShutdownCommandReceived("STOP from 192.0.2.1").exit_code
    ('SHUTDOWN', 143)
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        rest = list(args)
        cause = _pop_cause(rest, None)
        message = (
            rest.pop(0) if rest and isinstance(rest[0], str) else kwargs.pop("message", "SHUTDOWN")
        )
        if not isinstance(message, str):
            raise TypeError(f"message must be a string, not {type(message).__name__}")
        if kwargs:
            raise TypeError(f"ShutdownCommandReceived got unexpected keywords: {', '.join(kwargs)}")
        super().__init__(message, *rest)
        self.message = message
        self.__cause__ = cause

    @property
    def exit_code(self) -> int:
        return 143

    def __str__(self) -> str:
        return self.message


class Terminated(KeyboardInterrupt):
    """SIGTERM reached the command line: like Ctrl-C it unwinds (closing sockets), exit 143.

    A ``KeyboardInterrupt`` (not a :class:`MulticastError`) so that ``except Exception``
    blocks let it pass, as they let Ctrl-C pass.
    """

    exit_code = 143


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
