"""Every error this package raises on purpose, in one hierarchy.

:class:`MulticastError` is the root. Each subclass also derives from the built-in
exception a caller would expect (``ValueError`` for bad input, ``OSError`` for what the
kernel refuses), and every message names the group, interface or option at fault.
"""

from __future__ import annotations

__all__ = [
    "AddressError",
    "GroupError",
    "InterfaceError",
    "MessageSizeError",
    "MulticastError",
    "PortError",
    "SocketOptionError",
    "UnsupportedError",
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


class SocketOptionError(MulticastError, OSError):
    """The kernel refused a socket operation: ``errno`` is the kernel's; the text names it."""


class UnsupportedError(MulticastError, NotImplementedError):
    """A feature this platform does not support; the message names the feature."""
