"""Every error this package raises on purpose, in one hierarchy.

:class:`MulticastError` is the root. Each subclass also derives from the built-in
exception a caller would expect (``ValueError`` for bad input, ``OSError`` for what the
kernel refuses), and every message names the group, interface or option at fault.

This module is the hierarchy, and the ``NullHandler`` of the package's logger (every module
that logs imports this one first): the library says nothing unless the program configures
:mod:`logging`. The exit-code vocabulary of the command line lives in
:mod:`multicast.exitcodes`; its names (:data:`EXIT_CODES`, :func:`exit_on_exception`, ...)
are also reachable here, where the reference package has them, and are loaded on first use.

>>> CommandExecutionError("no route", 77).exit_code, ShutdownCommandReceived().exit_code
(77, 143)
>>> import multicast.exceptions
>>> multicast.exceptions.EXIT_CODES[64]  # from multicast.exitcodes
(<class 'argparse.ArgumentError'>, 'Usage Error')
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from multicast.exitcodes import (
        COMMAND_EXIT_CODES,
        EXCEPTION_EXIT_CODES,
        EXIT_CODE_RANGE_ERROR,
        EXIT_CODES,
        describe_exit_codes,
        exit_on_exception,
        get_exit_code_from_exception,
        system_exit_code,
        validate_exit_code,
    )

__all__ = [
    "COMMAND_EXIT_CODES",
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
    "RawSocketPermissionError",
    "SendError",
    "ShutdownCommandReceived",
    "SocketOptionError",
    "Terminated",
    "UnsupportedError",
    "UsageError",
    "describe_exit_codes",
    "exit_on_exception",
    "get_exit_code_from_exception",
    "system_exit_code",
    "validate_exit_code",
]


logging.getLogger("multicast").addHandler(logging.NullHandler())


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


class RawSocketPermissionError(MulticastError, PermissionError):
    """This process may not open raw or packet sockets (it lacks ``CAP_NET_RAW``)."""


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
        from multicast.exitcodes import validate_exit_code  # noqa: PLC0415 (needs argparse)

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


def __getattr__(name: str) -> Any:
    """The exit-code names of the reference's ``multicast.exceptions``, from
    :mod:`multicast.exitcodes` (imported on first use: it needs ``argparse``)."""
    if name in __all__:  # the names of __all__ not defined here
        return getattr(importlib.import_module("multicast.exitcodes"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
