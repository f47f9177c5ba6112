"""SIGINT and SIGTERM while a command runs: recorded, so that the exit code says a run was ended
by a signal, and raised at once or, inside :func:`deferred`, at the loop's next checkpoint.

The command line's rule (``docs/cli.md``): a command that a signal ended exits with 128 plus the
signal's number, 130 for SIGINT (Ctrl-C) and 143 for SIGTERM, after printing what it prints
when it ends (the tools' reports). A supervisor can so tell a run that finished (0, 1, ...)
from one that was stopped. :func:`handling` installs the handler while a command runs as
the process; :func:`exit_code` applies the rule.

A loop whose bookkeeping must not be cut between a system call and the count of what it did
(``stream``'s datagrams sent) runs inside :func:`deferred`: a signal is then recorded and
nothing is raised, and the loop stops at its next check of the function it was given. A short
step that must not be cut (``monitor`` counting a batch it read) runs inside :func:`held`: the
signals wait at the thread's mask and are handled as usual just after.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from multicast.exceptions import Terminated

__all__ = ["SIGNALS", "deferred", "exit_code", "handling", "held", "received", "reset"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that end a command with a report and 128 + their number."""

_received: list[int] = []  # signals the handler saw since the last reset, in order
_deferring = [0]  # depth of deferred() blocks now running


def _handler(signum: int, frame: FrameType | None) -> None:
    """Record the signal; unless deferred, end the work as Ctrl-C does (SIGTERM: Terminated)."""
    _received.append(signum)
    if _deferring[0]:
        return
    if signum == signal.SIGTERM:
        raise Terminated("SIGTERM")
    raise KeyboardInterrupt


def reset() -> None:
    """Forget the signals recorded so far (a new command starts)."""
    _received.clear()


def received() -> int | None:
    """The first signal recorded since :func:`reset`, if any."""
    return _received[0] if _received else None


def exit_code(code: int) -> int:
    """``code``, or 128 + the signal that ended the command if one was recorded."""
    signum = received()
    return code if signum is None else 128 + signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """While a command runs as the process: record SIGINT and SIGTERM and raise
    ``KeyboardInterrupt`` (SIGTERM: :class:`~multicast.exceptions.Terminated`, which unwinds
    the same way, closing sockets). Nothing outside the main thread, where Python cannot set
    signal handlers."""
    if not _in_main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: not set from Python; the default is what was there
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred() -> Iterator[Callable[[], bool]]:
    """Inside, SIGINT and SIGTERM are recorded and not raised; yields a function that says
    whether one came since the block began. Poll it between steps that must not be cut.

    Outside :func:`handling` (a program using the library), Ctrl-C is deferred the same way
    while the block runs, and SIGTERM keeps whatever handling the program gave it. In a
    thread other than the main one nothing changes and the function always says False.
    """
    if not _in_main_thread():
        yield lambda: False
        return
    begun = len(_received)
    own = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous = signal.signal(signal.SIGINT, _handler) if own else None
    _deferring[0] += 1
    try:
        yield lambda: len(_received) > begun
    finally:
        _deferring[0] -= 1
        if own:
            signal.signal(signal.SIGINT, previous)
            del _received[begun:]  # the program's own Ctrl-C, not the command line's


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold :data:`SIGNALS` back from this thread meanwhile: one that comes is handled (as
    ``KeyboardInterrupt``, or :class:`~multicast.exceptions.Terminated` under
    :func:`handling`) just after the block. For short steps only: nothing can stop them."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
