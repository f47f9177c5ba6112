"""Keeping the tests of ``tests/unit`` off the network.

Unit tests run anywhere: outside any network namespace and as any user (``make unit-pure``),
so nothing they do may reach a network or change one. While :func:`refusing_the_network` is
active (``tests/unit/conftest.py`` wraps every unit test in it), an audit hook refuses to
create any socket but a local (``AF_UNIX``) one, and to start any program but this Python
interpreter. A test that needs either belongs in ``tests/network``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any


class NetworkRefusedError(Exception):
    """A unit test tried to open a network socket or to start a program."""


_refused: list[str] | None = None  # what the active guard refused; None: no guard active
_hooked = False
_FAMILIES = set(socket.AddressFamily)


def _refusal(event: str, args: tuple[Any, ...]) -> str | None:
    """Why ``event`` is refused to a unit test, or None if it is allowed."""
    if event == "socket.__new__":
        family = args[1]
        if family != socket.AF_UNIX:
            name = socket.AddressFamily(family).name if family in _FAMILIES else family
            return f"open a socket of family {name} (only AF_UNIX ones stay local)"
    elif event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        program = executable if executable is not None else argv
        if not isinstance(program, str | bytes | os.PathLike):
            program = next(iter(program), "")
        if os.fsdecode(program) != sys.executable:
            return f"start {os.fsdecode(program)!r} (only this Python, {sys.executable}, may run)"
    elif event in ("os.system", "os.exec", "os.posix_spawn", "os.spawn"):
        return f"start a program through {event}"
    return None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    refused = _refused
    if refused is None:
        return
    reason = _refusal(event, args)
    if reason is not None:
        refused.append(reason)
        raise NetworkRefusedError(f"a unit test may not {reason}; move it to tests/network")


@contextlib.contextmanager
def refusing_the_network() -> Iterator[list[str]]:
    """While active, network sockets and other programs are refused (NetworkRefusedError);
    yields the list of what was refused, for the caller to fail on."""
    global _refused, _hooked
    if not _hooked:  # an audit hook cannot be removed: one for the whole process
        sys.addaudithook(_audit)
        _hooked = True
    outer, _refused = _refused, []
    try:
        yield _refused
    finally:
        _refused = outer
