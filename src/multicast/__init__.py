"""Python IP multicast: a library and the ``multicast`` command-line tool.

The reference API of the PyPI ``multicast`` 2.x package lives here, without its defects:
``multicast.skt`` (:func:`genSocket`, :func:`endSocket`), ``multicast.recv`` (RECV),
``multicast.send`` (SAY), ``multicast.hear`` (HEAR), ``multicast.env`` (the ``MULTICAST_*``
variables), ``multicast.exceptions`` (errors and exit codes), the tool base class
:class:`mtool`, the defaults ``_MCAST_DEFAULT_*`` and ``multicast.__main__`` (``main``,
``cli``). The event layer of the older ``multicast`` module (:mod:`multicast.events`) is here
too. Everything is built on :mod:`multicast.core`.

This module is only a face: each of these names is imported on first use, so that
``import multicast.core`` (or any other submodule) costs no more than that submodule. No
submodule imports it. The defaults live in :mod:`multicast.defaults`; reading or assigning
``multicast._MCAST_DEFAULT_*`` reads or assigns them there, so a program that changes one
after import changes what RECV, SAY and HEAR use.

Importing the package changes nothing outside it: no default socket timeout, no warnings
printed, no socket opened. It loads nothing either (not even :mod:`logging`: the package
logger's ``NullHandler`` comes with :mod:`multicast.exceptions`, which every module that
logs imports), so that the ``multicast`` command answers Ctrl-C from its first moments. The ``MULTICAST_*`` variables are read silently (an invalid value
leaves the default); :func:`multicast.env.load_config` warns about them.

Minimal Acceptance Testing:

>>> import multicast
>>> multicast._MCAST_DEFAULT_PORT, multicast._MCAST_DEFAULT_GROUP  # without MULTICAST_* set
(59259, '224.0.0.1')
>>> multicast.__main__.main(["NOOP"])
(0, (True, None))
"""

from __future__ import annotations

import importlib
import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (and re) at import
if TYPE_CHECKING:
    from typing import Any

    from multicast import env, exceptions, hear, recv, send, skt
    from multicast.cliargs import mtool
    from multicast.defaults import _MCAST_DEFAULT_BIND_IP as _MCAST_DEFAULT_BIND_IP
    from multicast.defaults import _MCAST_DEFAULT_BUFFER_SIZE as _MCAST_DEFAULT_BUFFER_SIZE
    from multicast.defaults import _MCAST_DEFAULT_GROUP as _MCAST_DEFAULT_GROUP
    from multicast.defaults import _MCAST_DEFAULT_GROUPS as _MCAST_DEFAULT_GROUPS
    from multicast.defaults import _MCAST_DEFAULT_PORT as _MCAST_DEFAULT_PORT
    from multicast.defaults import _MCAST_DEFAULT_TTL as _MCAST_DEFAULT_TTL
    from multicast.events import (
        Multicaster,
        MulticastListener,
        Poller,
        _defaultPoller,  # noqa: F401 (the default poller of document 003)
        listen,
        loop,
        poll,
        register,
        sendto,
        unregister,
    )
    from multicast.exceptions import CommandExecutionError, ShutdownCommandReceived
    from multicast.exitcodes import (
        EXCEPTION_EXIT_CODES,
        EXIT_CODES,
        exit_on_exception,
        get_exit_code_from_exception,
    )
    from multicast.skt import endSocket, genSocket

__module__ = "multicast"  # as the reference has it (a module attribute, not only the type's)

_FACES = frozenset({"env", "exceptions", "hear", "recv", "send", "skt", "__main__"})
"""The submodules the reference has as attributes of the package."""

_HOMES: dict[str, str] = {
    "mtool": "multicast.cliargs",
    **dict.fromkeys(("genSocket", "endSocket"), "multicast.skt"),
    **dict.fromkeys(("CommandExecutionError", "ShutdownCommandReceived"), "multicast.exceptions"),
    **dict.fromkeys(
        ("EXCEPTION_EXIT_CODES", "EXIT_CODES", "exit_on_exception", "get_exit_code_from_exception"),
        "multicast.exitcodes",
    ),
    # the event layer of the older ``multicast`` module (document 003)
    **dict.fromkeys(
        (
            "Multicaster",
            "MulticastListener",
            "Poller",
            "_defaultPoller",
            "listen",
            "loop",
            "poll",
            "register",
            "sendto",
            "unregister",
        ),
        "multicast.events",
    ),
}
"""Name -> the module that holds it."""


def __getattr__(name: str) -> Any:
    """Import a name of the face on first use (its module is then cached by ``sys.modules``).

    ``__main__`` comes late on purpose too: ``python -m multicast`` must find it unimported
    (runpy warns about a module imported twice). ``__version__`` and ``__prologue__`` read the
    installed metadata then.
    """
    if name in _FACES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    if name in ("__version__", "__prologue__"):
        version = importlib.import_module("multicast.defaults").package_version()
        globals().update(
            __version__=version, __prologue__=f"Python Multicast library version {version}."
        )
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _forwarded(name: str) -> property:
    """``name`` of :mod:`multicast.defaults`, read and assigned there."""

    def read(face: types.ModuleType) -> Any:
        return getattr(importlib.import_module("multicast.defaults"), name)

    def assign(face: types.ModuleType, value: Any) -> None:
        setattr(importlib.import_module("multicast.defaults"), name, value)

    return property(read, assign, doc=f"multicast.defaults.{name}")


class _Face(types.ModuleType):
    """The package's module type: its ``_MCAST_DEFAULT_*`` are those of
    :mod:`multicast.defaults`, where every face reads them, so assigning one here (as the
    reference API allows) changes what RECV, SAY and HEAR use."""

    _MCAST_DEFAULT_BIND_IP = _forwarded("_MCAST_DEFAULT_BIND_IP")
    _MCAST_DEFAULT_BUFFER_SIZE = _forwarded("_MCAST_DEFAULT_BUFFER_SIZE")
    _MCAST_DEFAULT_GROUP = _forwarded("_MCAST_DEFAULT_GROUP")
    _MCAST_DEFAULT_GROUPS = _forwarded("_MCAST_DEFAULT_GROUPS")
    _MCAST_DEFAULT_PORT = _forwarded("_MCAST_DEFAULT_PORT")
    _MCAST_DEFAULT_TTL = _forwarded("_MCAST_DEFAULT_TTL")


sys.modules[__name__].__class__ = _Face

__all__ = [
    "EXCEPTION_EXIT_CODES",
    "EXIT_CODES",
    "CommandExecutionError",
    "MulticastListener",
    "Multicaster",
    "Poller",
    "ShutdownCommandReceived",
    "endSocket",
    "env",
    "exceptions",
    "exit_on_exception",
    "genSocket",
    "get_exit_code_from_exception",
    "hear",
    "listen",
    "loop",
    "mtool",
    "poll",
    "recv",
    "register",
    "send",
    "sendto",
    "skt",
    "unregister",
]
