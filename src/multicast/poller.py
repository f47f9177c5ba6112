"""The poller of the event layer: calls ``handle_read()``/``handle_write()`` of ready objects.

A :class:`Poller` watches objects that have a ``fileno()`` and a ``handle_read()`` and/or
``handle_write()`` method, through :mod:`selectors` (epoll on Linux), and calls the handler
of each event that occurred. It never busy-waits: :meth:`Poller.loop` sleeps in the selector
until a socket is ready, a paused writer is due, or ``polling`` is set to False (from any
thread, which wakes it at once). A handler may close its object mid-poll; the poller skips
events of objects that are gone. A poller opens its selector on first use.

:mod:`multicast.events` re-exports :class:`Poller` and drives its default poller.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from multicast.core import Closing
from multicast.exceptions import OptionError

__all__ = ["Pollable", "Poller"]

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class Pollable(Protocol):
    """What a poller watches: a file descriptor, plus ``handle_read`` and/or ``handle_write``."""

    def fileno(self) -> int: ...


@dataclass(slots=True, eq=False)
class _Registration:
    target: Pollable
    on_read: Callable[[], object] | None
    on_write: Callable[[], object] | None
    events: int  # the events asked for (EVENT_READ | EVENT_WRITE)
    write_paused_until: float | None = None  # time.monotonic() at which writing resumes

    @property
    def watched(self) -> int:
        """The events the selector watches now: writing is left out while paused."""
        return self.events & ~_WRITE if self.write_paused_until is not None else self.events


def _release(*resources: selectors.BaseSelector | socket.socket | None) -> None:
    for resource in resources:
        if resource is not None:
            resource.close()


class Poller(Closing):
    """Calls ``handle_read()`` / ``handle_write()`` of registered objects when their fd is ready.

    ``polling`` is True while :meth:`loop` should go on. Setting it to False from any thread
    (or a handler) stops a running loop at once; unregistering the last object sets it too.
    A poller is driven by one thread at a time.
    """

    def __init__(self) -> None:
        self._registered: dict[int, _Registration] = {}
        self._selector: selectors.BaseSelector | None = None
        self._wake_receiver: socket.socket | None = None
        self._wake_sender: socket.socket | None = None
        self._open_lock = threading.Lock()
        self._stopped = threading.Event()  # set while polling is False: ends interval sleeps
        self._polling = True

    @property
    def polling(self) -> bool:
        return self._polling

    @polling.setter
    def polling(self, value: bool) -> None:
        self._polling = value
        if value:
            self._stopped.clear()
            return
        self._stopped.set()
        if self._wake_sender is not None:
            with contextlib.suppress(OSError):  # full or closed: a wake-up is pending anyway
                self._wake_sender.send(b"\0")

    def _open(self) -> selectors.BaseSelector:
        """The selector, made on first use, with the wake-up socket that ``polling`` writes."""
        with self._open_lock:
            if self._selector is None:
                selector = selectors.DefaultSelector()
                receiver, sender = socket.socketpair()
                receiver.setblocking(False)
                sender.setblocking(False)
                selector.register(receiver, _READ, None)
                self._selector, self._wake_receiver, self._wake_sender = selector, receiver, sender
                # Released when the poller goes, or at exit for one that lives as long as the
                # process (the default poller): closing twice is harmless.
                weakref.finalize(self, _release, selector, receiver, sender)
            return self._selector

    def close(self) -> None:
        """Forget every registration (closing none of them) and release the selector."""
        self._registered.clear()
        with self._open_lock:
            _release(self._selector, self._wake_receiver, self._wake_sender)
            self._selector = self._wake_receiver = self._wake_sender = None

    def register(self, fd: Pollable, flags: int = 0) -> None:
        """Watch ``fd`` for the events it has handlers for.

        ``fd`` needs ``fileno()`` and ``handle_read()`` (called when readable) and/or
        ``handle_write()`` (called when writable). ``flags`` (``selectors.EVENT_READ``,
        ``selectors.EVENT_WRITE`` or both) narrows the events watched; 0 watches all of them.
        """
        fileno = _fileno_of(fd)
        on_read = _handler(fd, "handle_read")
        on_write = _handler(fd, "handle_write")
        available = (_READ if on_read else 0) | (_WRITE if on_write else 0)
        if not available:
            raise TypeError(f"{fd!r} has neither a handle_read() nor a handle_write() method")
        if flags & ~(_READ | _WRITE):
            raise OptionError(
                f"flags {flags!r}: use selectors.EVENT_READ and/or selectors.EVENT_WRITE"
            )
        events = flags or available
        if events & ~available:
            wanted = "handle_read()" if events & _READ & ~available else "handle_write()"
            raise OptionError(f"flags {flags!r} ask for events that {fd!r} has no {wanted} for")
        previous = self._registered.get(fileno)
        if previous is not None:
            if _fileno_of(previous.target) == fileno:
                raise OptionError(f"{fd!r} (fd {fileno}) is already registered with this poller")
            self._forget(fileno)  # its file was closed without unregistering; the fd is reused
        registration = _Registration(fd, on_read, on_write, events)
        self._registered[fileno] = registration
        self._watch(fileno, registration)

    def unregister(self, fd: Pollable | int) -> None:
        """Stop watching ``fd`` (the registered object, or its fd number); it is not closed.

        Raises :class:`KeyError` if it is not registered.
        """
        for fileno, registration in self._registered.items():
            if registration.target is fd or fileno == fd:
                break
        else:
            raise KeyError(f"{fd!r} is not registered with this poller")
        self._forget(fileno)
        if not self._registered:
            self.polling = False

    def pause_writing(self, fd: Pollable, until: float) -> None:
        """Stop watching ``fd`` for writing until ``time.monotonic()`` reaches ``until``.

        This is how a paced sender waits without spinning on an always-writable socket.
        """
        for fileno, registration in self._registered.items():
            if registration.target is fd:
                registration.write_paused_until = until
                self._watch(fileno, registration)
                return
        raise KeyError(f"{fd!r} is not registered with this poller")

    def _forget(self, fileno: int) -> None:
        del self._registered[fileno]
        if self._selector is not None:
            with contextlib.suppress(KeyError):  # not watched while its writing is paused
                self._selector.unregister(fileno)

    def _watch(self, fileno: int, registration: _Registration) -> None:
        """Make the selector watch what ``registration`` wants now (nothing: not at all)."""
        selector = self._open()
        wanted = registration.watched
        try:
            key = selector.get_key(fileno)
        except KeyError:
            if wanted:
                selector.register(fileno, wanted, registration)
            return
        if not wanted:
            selector.unregister(fileno)
        elif key.events != wanted or key.data is not registration:
            selector.modify(fileno, wanted, registration)

    def _wait_time(self, timeout: float | None) -> float | None:
        """``timeout``, shortened to the moment the first paused writer is due."""
        due = [
            r.write_paused_until
            for r in self._registered.values()
            if r.write_paused_until is not None
        ]
        if not due:
            return timeout
        until_due = max(0.0, min(due) - time.monotonic())
        return until_due if timeout is None else min(timeout, until_due)

    def _resume_due_writers(self) -> None:
        now = time.monotonic()
        for fileno, registration in list(self._registered.items()):
            paused = registration.write_paused_until
            if paused is not None and paused <= now:
                registration.write_paused_until = None
                self._watch(fileno, registration)

    def poll(self, timeout: float | None = 0) -> None:
        """Wait up to ``timeout`` seconds (0: not at all; None: until an event) and dispatch.

        Each object gets ``handle_read()`` and then ``handle_write()`` for the events that
        occurred, both when both occurred, unless a handler unregistered it first.
        Exceptions from handlers propagate to the caller.
        """
        selector = self._open()
        for key, mask in selector.select(self._wait_time(timeout)):
            registration: _Registration | None = key.data
            if registration is None:
                self._drain_wake_ups()
                continue
            if mask & _READ and registration.on_read and self._current(key.fd, registration):
                registration.on_read()
            if mask & _WRITE and registration.on_write and self._current(key.fd, registration):
                registration.on_write()
        self._resume_due_writers()

    def _current(self, fileno: int, registration: _Registration) -> bool:
        return self._registered.get(fileno) is registration

    def _drain_wake_ups(self) -> None:
        assert self._wake_receiver is not None
        with contextlib.suppress(BlockingIOError):
            while self._wake_receiver.recv(4096):
                pass

    def loop(self, timeout: float = 0, interval: float = 0) -> None:
        """Set ``polling`` and poll until it is False again or nothing is registered.

        ``timeout`` is the longest one poll waits (0, the default: until something
        happens; the loop sleeps in the selector and does not spin). ``interval`` is a pause
        in seconds after each poll. Setting ``polling`` to False ends both at once.
        """
        self.run_until(lambda: False, timeout=timeout, interval=interval)

    def run_until(
        self,
        done: Callable[[], bool],
        *,
        timeout: float = 0,
        interval: float = 0,
        deadline: float | None = None,
    ) -> bool:
        """Poll until ``done()`` (True), or polling stops, nothing is registered or ``deadline``."""
        self.polling = True
        while not done():
            if not (self._polling and self._registered):
                return False
            wait = timeout or None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                wait = left if wait is None else min(wait, left)
            self.poll(wait)
            if interval:
                self._stopped.wait(interval)
        return True


def _fileno_of(target: object) -> int:
    fileno = getattr(target, "fileno", None)
    if not callable(fileno):
        raise TypeError(f"{target!r} has no fileno() method, so it cannot be polled")
    number = fileno()
    if not isinstance(number, int):
        raise TypeError(f"{target!r}.fileno() returned {number!r}, not an int")
    return number


def _handler(target: object, name: str) -> Callable[[], object] | None:
    method = getattr(target, name, None)
    return method if callable(method) else None
