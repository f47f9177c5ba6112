"""Batched datagram I/O on Linux: ``recvmmsg`` and ``sendmmsg``, compiled or through ctypes.

One system call moves up to :data:`SLOTS` datagrams. Two backends do it, and
:data:`IO_BACKEND` says which one is in use:

- ``"extension"``: the C extension :mod:`multicast.core._fastio`, built with the package
  where a C compiler was there at install time. It decodes every datagram's metadata in C
  and makes the :class:`~multicast.core.datagram.Datagram` objects there, and sends the
  payloads straight from their buffers, with the GIL released around each system call.
- ``"ctypes"``: :class:`BatchReceiver` and :class:`BatchSender` of
  :mod:`multicast.core.ctypes_io`, the fallback wherever the extension is not built (or
  ``MULTICAST_IO=ctypes`` asks for it).

:func:`~multicast.core.io.receive_ready`, :func:`~multicast.core.io.receive_batch` and
:func:`~multicast.core.io.send_many` use this module when :data:`AVAILABLE`, through
:data:`receivers` (one per buffer size, shared by the threads), :func:`send` and
:func:`send_each`.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Literal, Protocol

from multicast.core import constants, ctypes_io
from multicast.core.ctypes_io import (
    AVAILABLE,
    SLOTS,
    BatchReceiver,
    BatchSender,
    encode_address,
    sender,
)
from multicast.core.datagram import Datagram, Payload, SocketAddress, check_payload_size

__all__ = [
    "AVAILABLE",
    "IO_BACKEND",
    "SLOTS",
    "BatchReceiver",
    "BatchSender",
    "Receiving",
    "encode_address",
    "receivers",
    "send",
    "send_each",
    "sender",
]

_SIZES_KEPT = 4  # buffer sizes batch receivers are kept for

_BACKENDS = ("extension", "ctypes")


def _load_extension() -> ModuleType | None:
    """The C extension, configured; None where it is not built, not Linux, or the variable
    ``MULTICAST_IO`` is ``ctypes`` (``extension`` or ``auto``: use it where built)."""
    wanted = os.environ.get("MULTICAST_IO", "auto").strip().lower() or "auto"
    if wanted not in (*_BACKENDS, "auto"):
        warnings.warn(
            f"MULTICAST_IO={wanted!r} is none of extension, ctypes, auto: using auto",
            stacklevel=2,
        )
    if wanted == "ctypes" or not AVAILABLE:
        return None
    try:
        from multicast.core import _fastio  # noqa: PLC0415 - optional: built where a compiler was
    except ImportError:
        if wanted == "extension":
            warnings.warn(
                "MULTICAST_IO=extension, but multicast.core._fastio is not built: using ctypes "
                "(install the package again where a C compiler and Python's headers are)",
                stacklevel=2,
            )
        return None
    _fastio.configure(Datagram, check_payload_size)
    return _fastio


_fastio = _load_extension()
IO_BACKEND: Literal["extension", "ctypes"] = "extension" if _fastio is not None else "ctypes"
"""Which backend moves batched datagrams: the C extension or the ctypes fallback."""


class Receiving(Protocol):
    """What :data:`receivers` holds: a :class:`BatchReceiver` or the extension's ``Receiver``."""

    @property
    def busy(self) -> bool:
        """Whether a thread reads into its buffers."""

    def receive(
        self,
        fd: int,
        limit: int,
        wait: bool = ...,
        spin: float = ...,
        timeout: float | None = ...,
    ) -> list[Datagram]: ...


class _Receivers(dict[int, Receiving]):
    """The batch receivers of the backend in use, by the size of their buffers: made on
    first use, at most :data:`_SIZES_KEPT` (a plain dict look-up when found: the hot path)."""

    def __missing__(self, size: int) -> Receiving:
        if len(self) >= _SIZES_KEPT:
            self.clear()
        found = self[size] = (
            BatchReceiver(size) if _fastio is None else _fastio.Receiver(size, SLOTS)
        )
        return found


receivers = _Receivers()
"""The batch receiver for datagrams of up to ``size`` bytes is ``receivers[size]``; any thread
may use it (a call made while another thread is inside one gets buffers of its own)."""


def send(sock: socket.socket, payloads: Iterable[Payload], name: bytes) -> int:
    """Send each payload to the destination ``name`` (see :func:`encode_address`), batched.

    Returns how many were sent; stops early when a non-blocking socket would block. A
    payload too large for one datagram, or an error raised by ``payloads``, is raised
    after the payloads before it were sent.
    """
    if _fastio is not None:
        family = sock.family
        return int(
            _fastio.send(sock.fileno(), family, payloads, name, constants.MAX_PAYLOAD[family])
        )
    return sender().send(sock, payloads, name)


def send_each(
    sock: socket.socket,
    family: socket.AddressFamily,
    pairs: list[tuple[Payload, SocketAddress]],
) -> list[tuple[int, int]]:
    """Send each payload to its own numeric address (of ``family``, the socket's): with
    ``sendmmsg`` where the extension is built, else one ``sendto`` each.

    Both backends encode every address first, by one rule (:func:`encode_address`): a host
    that is no numeric address of ``family`` is never looked up, but refused with
    EAFNOSUPPORT. Returns the pairs the kernel refused (or that would block), by index, with
    their errno; the others were sent. A payload too large for one datagram, or an address
    of the wrong shape, raises before any is sent.
    """
    if _fastio is not None:
        limit = constants.MAX_PAYLOAD[family]
        refused: list[tuple[int, int]] = _fastio.send_each(sock.fileno(), family, pairs, limit)
        return refused
    return ctypes_io.send_each(sock.fileno(), family, pairs)
