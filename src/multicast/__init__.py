"""Python IP multicast: a library and the ``multicast`` command-line tool.

The reference API of the PyPI ``multicast`` 2.x package lives here, without its defects:
``multicast.skt`` (:func:`genSocket`, :func:`endSocket`), ``multicast.recv`` (RECV),
``multicast.send`` (SAY), ``multicast.hear`` (HEAR), ``multicast.env`` (the ``MULTICAST_*``
variables), ``multicast.exceptions`` (errors and exit codes), the tool base class
:class:`mtool`, the defaults ``_MCAST_DEFAULT_*`` and, on first use,
``multicast.__main__`` (``main``, ``cli``). The event layer of the older ``multicast``
module (:mod:`multicast.events`) is here too, imported on first use. Everything is built on
:mod:`multicast.core`.

Importing the package changes nothing outside it: no default socket timeout, no warnings
printed, no socket opened. The ``MULTICAST_*`` variables are read silently (an invalid value
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
import logging
from typing import TYPE_CHECKING, Any

from multicast import env, exceptions, hear, recv, send, skt
from multicast.cliargs import mtool
from multicast.exceptions import (
    EXCEPTION_EXIT_CODES,
    EXIT_CODES,
    CommandExecutionError,
    ShutdownCommandReceived,
    exit_on_exception,
    get_exit_code_from_exception,
)
from multicast.skt import endSocket, genSocket

if TYPE_CHECKING:
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

# The event layer of the older ``multicast`` module (document 003), imported on first use.
_EVENT_LAYER = frozenset(
    {
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
    }
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

# The defaults. The submodules read them from here when called (never at import), so a
# program may change them after importing the package.
_config = env.load_config(warn=False)
_MCAST_DEFAULT_PORT: int = _config["port"]
_MCAST_DEFAULT_GROUP: str = _config["group"]
_MCAST_DEFAULT_TTL: int = _config["ttl"]
_MCAST_DEFAULT_BUFFER_SIZE: int = _config["buffer_size"]
_MCAST_DEFAULT_BIND_IP: str | None = _config["bind_addr"]  # None: chosen from the groups
_MCAST_DEFAULT_GROUPS: list[str] = _config["groups"]  # what RECV and HEAR join by default
del _config


def __getattr__(name: str) -> Any:
    """Look up on first use what costs time or must come late: the event layer too.

    ``__main__`` is imported then, so that ``python -m multicast`` finds it unimported (runpy
    warns about a module imported twice); ``__version__`` and ``__prologue__`` read the
    installed metadata then (importing :mod:`importlib.metadata` is a quarter of the
    package's import time).
    """
    if name == "__main__":
        return importlib.import_module("multicast.__main__")
    if name in _EVENT_LAYER:
        return getattr(importlib.import_module("multicast.events"), name)
    if name in ("__version__", "__prologue__"):
        metadata = importlib.import_module("importlib.metadata")
        try:
            version = metadata.version(__name__)
        except metadata.PackageNotFoundError:  # a source tree that is not installed
            version = "0+unknown"
        globals().update(
            __version__=version, __prologue__=f"Python Multicast library version {version}."
        )
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
