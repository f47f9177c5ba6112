"""The package's defaults, read once from the ``MULTICAST_*`` variables, and its version.

The variables are read silently when this module is first imported (an invalid value leaves
the built-in default; :func:`multicast.env.load_config` warns about them). The reference faces
(RECV, SAY, HEAR, :func:`~multicast.skt.genSocket`, the option adders of
:mod:`multicast.cliargs`) read these names when called, never at import, so a program may
change them afterwards: here, or through the package as the reference API does
(``multicast._MCAST_DEFAULT_PORT = 50000`` is forwarded here).

>>> _MCAST_DEFAULT_PORT, _MCAST_DEFAULT_GROUP  # without MULTICAST_* set
(59259, '224.0.0.1')
"""

from __future__ import annotations

import functools
import importlib

from multicast.env import load_config

__all__ = [
    "_MCAST_DEFAULT_BIND_IP",
    "_MCAST_DEFAULT_BUFFER_SIZE",
    "_MCAST_DEFAULT_GROUP",
    "_MCAST_DEFAULT_GROUPS",
    "_MCAST_DEFAULT_PORT",
    "_MCAST_DEFAULT_TTL",
    "package_version",
]

_config = load_config(warn=False)
_MCAST_DEFAULT_PORT: int = _config["port"]
_MCAST_DEFAULT_GROUP: str = _config["group"]
_MCAST_DEFAULT_TTL: int = _config["ttl"]
_MCAST_DEFAULT_BUFFER_SIZE: int = _config["buffer_size"]  # bytes per datagram of SAY --pipe
_MCAST_DEFAULT_BIND_IP: str | None = _config["bind_addr"]  # None: chosen from the groups
_MCAST_DEFAULT_GROUPS: list[str] = _config["groups"]  # what RECV and HEAR join by default
del _config


@functools.cache
def package_version() -> str:
    """The installed version of the package (``0+unknown`` in a source tree not installed).

    Read from the installed metadata on first call: importing :mod:`importlib.metadata` costs
    a quarter of the package's import time.
    """
    metadata = importlib.import_module("importlib.metadata")
    try:
        version: str = metadata.version("multicast")
    except metadata.PackageNotFoundError:
        return "0+unknown"
    return version
