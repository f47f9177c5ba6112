"""Socket utility functions for multicast communication: make and end a UDP socket.

:func:`genSocket` configures its socket through :mod:`multicast.core` only, and gives the
timeout to that socket alone (the process-wide default timeout is never touched).

Minimal Acceptance Testing:

>>> import multicast
>>> sock = multicast.skt.genSocket()
>>> sock.gettimeout(), sock.type == socket.SOCK_DGRAM
(1.0, True)
>>> multicast.skt.endSocket(sock)
>>> sock.fileno()
-1
"""

from __future__ import annotations

import contextlib
import socket
from typing import Final

from multicast import defaults
from multicast.core import new_socket, set_reuse, set_ttl

__module__ = "multicast.skt"  # the value the reference documents for this module

__all__ = ["DEFAULT_TIMEOUT", "endSocket", "genSocket"]

DEFAULT_TIMEOUT: Final = 1.0
"""Seconds a :func:`genSocket` socket waits for a datagram (RECV's default ``--timeout``)."""


def genSocket(family: socket.AddressFamily = socket.AF_INET) -> socket.socket:
    """Create and configure a multicast UDP socket.

    Unbound, ``SO_REUSEADDR`` on, the package's default TTL, a timeout of
    :data:`DEFAULT_TIMEOUT` seconds. ``family`` is ``AF_INET`` or ``AF_INET6``.
    """
    sock = new_socket(family)
    try:
        set_reuse(sock)
        set_ttl(sock, defaults._MCAST_DEFAULT_TTL)
        sock.settimeout(DEFAULT_TIMEOUT)
    except BaseException:
        sock.close()
        raise
    return sock


def endSocket(sock: socket.socket | None = None) -> None:
    """Close a multicast socket and release resources; None does nothing.

    Shuts down receiving first; errors of an already closed or unconnected socket are ignored.
    """
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()
