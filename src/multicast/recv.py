"""Multicast RECV: join groups and receive datagrams.

Functions: :func:`joinstep` joins groups on a socket bound to a port; :func:`tryrecv`
receives one datagram; :func:`recvstep` receives one datagram or nothing before the timeout.
Class: :class:`McastRECV`, the RECV tool of the command line.

A datagram is received whole, up to the protocol limit; if a caller asks for fewer bytes the
cut is logged as a warning. Payloads are any bytes: text that is not UTF-8 comes back with
the offending bytes escaped (``\\xff``), never an error. Groups are IP literals, checked
before use and never looked up in DNS; IPv6 groups, interfaces by name and source-specific
joins work as well.

Minimal Acceptance Testing:

>>> import multicast
>>> multicast.recv.decode_payload(b"caf\\xc3\\xa9 \\xff")
'café \\\\xff'
>>> sock = multicast.recv.joinstep(["239.0.0.9"], 59991)
>>> sock.getsockname()
('239.0.0.9', 59991)
>>> sock.settimeout(0.1)
>>> multicast.recv.recvstep("nothing: ", None, sock)  # nothing before the timeout
'nothing: '
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Final, Protocol

from multicast import defaults
from multicast.cliargs import add_count, add_join_options, add_timeout, mtool, timeout_seconds
from multicast.core import (
    Group,
    GroupSpec,
    InterfaceSpec,
    IPAddress,
    common_family,
    configure_receiving,
    join_all,
    parse_address,
    parse_group,
    parse_port,
    wildcard_host,
)
from multicast.core.constants import MAX_DATAGRAM
from multicast.env import validate_multicast_address
from multicast.skt import DEFAULT_TIMEOUT, genSocket

__module__ = "multicast"  # the value the reference documents for this module

__all__ = [
    "McastRECV",
    "bind_host",
    "decode_payload",
    "joinstep",
    "printable_line",
    "printable_text",
    "recvstep",
    "requested_groups",
    "tryrecv",
]

module_logger = logging.getLogger(__name__)


class Receivable(Protocol):
    """What :func:`tryrecv` and :func:`recvstep` need of a socket."""

    def recv(self, bufsize: int, /) -> bytes: ...

    def close(self) -> None: ...


def decode_payload(payload: bytes) -> str:
    """A payload as text: UTF-8, with any byte that is not valid UTF-8 escaped as ``\\xNN``."""
    return payload.decode("utf-8", "backslashreplace")


_ESCAPED: Final = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
RESULT_LIMIT: Final = 1 << 20
"""Characters of text :meth:`McastRECV.doStep` keeps for its result: the latest datagrams'."""


def printable_line(payload: bytes) -> str:
    """A payload as one line that shows what came and does nothing to a terminal.

    UTF-8, with each byte that is not valid UTF-8 written ``\\xNN``, each character that is
    not printable (control characters such as ESC, ``\\r`` and ``\\n``, format characters
    such as a right-to-left override, separators other than the space) written ``\\n``,
    ``\\r``, ``\\t``, ``\\xNN`` (below 0x80) or ``\\uNNNN``, and a backslash doubled, so
    that every line is one datagram and reads back to the very bytes.

    >>> printable_line(b"caf\\xc3\\xa9 \\xff\\x1b]0;title\\x07\\r\\nnext \\\\")
    'café \\\\xff\\\\x1b]0;title\\\\x07\\\\r\\\\nnext \\\\\\\\'
    """
    text = payload.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_printable(character) for character in text)


def printable_text(text: str) -> str:
    """Text already decoded (:func:`decode_payload`: bytes that were not UTF-8 are ``\\xNN``
    in it) as one line that does nothing to a terminal: as :func:`printable_line`, but a
    backslash stays as it is.

    >>> printable_text("ok\\r\\n\\x1b[2J \\\\xff")
    'ok\\\\r\\\\n\\\\x1b[2J \\\\xff'
    """
    if text.isprintable():
        return text
    return "".join(_printable(character, backslash="\\") for character in text)


def _printable(character: str, backslash: str = "\\\\") -> str:
    if character == "\\":
        return backslash
    if character in _ESCAPED:
        return _ESCAPED[character]
    if character.isprintable():
        return character
    code = ord(character)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:  # a character and a byte alike
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def requested_groups(groups: Iterable[GroupSpec] | None, group: GroupSpec | None) -> list[Group]:
    """The groups to join: ``groups``, else ``[group]``, else the package's default group.

    Every group is checked (:class:`~multicast.exceptions.GroupError`); they must share a family.
    """
    chosen = [parse_group(g) for g in groups or ()]
    if not chosen:
        chosen = [parse_group(group if group is not None else defaults._MCAST_DEFAULT_GROUP)]
    common_family(chosen)
    return chosen


def bind_host(groups: Sequence[Group], bind_group: GroupSpec | None = None) -> str:
    """The address to bind for ``groups``: ``bind_group`` if given, else ``MULTICAST_BIND_ADDR``,
    else the group itself when there is one IPv4 group, else every address (``0.0.0.0``/``::``).

    With several groups a multicast ``bind_group`` (or ``MULTICAST_BIND_ADDR``) gives way to
    every address: a socket bound to one group gets nothing sent to the others (the
    reference's defect). A socket bound to every address is isolated by :func:`joinstep`, so
    it still gets only the groups it joined (and datagrams sent to this host's own addresses
    on that port).
    """
    family = common_family(groups) if groups else socket.AF_INET
    for chosen in (bind_group, defaults._MCAST_DEFAULT_BIND_IP):
        if chosen is None:
            continue
        address = parse_address(str(chosen), what="bind address")
        if len(groups) > 1 and address.is_multicast:
            return wildcard_host(family)
        return str(address)
    if len(groups) == 1 and family == socket.AF_INET:
        return str(groups[0].address)
    return wildcard_host(family)


def joinstep(
    groups: Iterable[GroupSpec] | None,
    port: int | str,
    iface: InterfaceSpec | None = None,
    bind_group: GroupSpec | None = None,
    isock: socket.socket | None = None,
    *,
    sources: Sequence[str | IPAddress] = (),
) -> socket.socket:
    """Join multicast groups to prepare for receiving messages.

    Binds ``isock`` (else a new :func:`~multicast.skt.genSocket`) to ``port`` on
    :func:`bind_host` and joins every group of ``groups`` (None or empty: ``bind_group`` if it
    is a group, else the default group) on ``iface`` (name, index or address; None: the
    routing table's choice), from each of ``sources`` only if given. Returns that socket;
    on error a socket made here is closed and the error names what failed.
    """
    fallback = bind_group if validate_multicast_address(bind_group) else None
    chosen = requested_groups(groups, fallback)
    return _joined(chosen, port, iface, bind_group=bind_group, isock=isock, sources=sources)


def _joined(
    groups: list[Group],
    port: int | str,
    iface: InterfaceSpec | None,
    *,
    bind_group: GroupSpec | None = None,
    isock: socket.socket | None = None,
    sources: Sequence[str | IPAddress] = (),
) -> socket.socket:
    """:func:`joinstep` for groups already chosen: the core's receiving recipe, then the joins."""
    number = parse_port(port)
    sock = isock if isock is not None else genSocket(groups[0].family)
    try:
        table = configure_receiving(sock, bind_host(groups, bind_group), number)
        join_all(sock, table, groups, iface, sources)
    except BaseException:
        if isock is None:
            sock.close()
        raise
    return sock


def tryrecv(msgbuffer: str | None, chunk: int | None, sock: Receivable) -> str:
    """Receive one datagram on ``sock`` and return ``msgbuffer`` with its text appended.

    ``chunk`` is the most bytes to keep (None: any datagram whole); a longer datagram is cut
    there and a warning logged. Raises ``TimeoutError`` when the socket's timeout passes.
    """
    limit = MAX_DATAGRAM if chunk is None else chunk
    payload = sock.recv(limit + 1)
    if len(payload) > limit:
        module_logger.warning(
            "a datagram was longer than %d bytes: kept the first %d", limit, limit
        )
        payload = payload[:limit]
    return (msgbuffer or "") + decode_payload(payload)


def recvstep(msgbuffer: str | None, chunk: int | None, sock: Receivable) -> str:
    """Receive one datagram like :func:`tryrecv`, or nothing before the timeout; close ``sock``.

    Returns ``msgbuffer`` with the datagram's text appended, or unchanged after a timeout.
    Other errors (and Ctrl-C) propagate.
    """
    try:
        return tryrecv(msgbuffer, chunk, sock)
    except TimeoutError:
        module_logger.debug("nothing received before the timeout")
        return msgbuffer or ""
    finally:
        sock.close()


class McastRECV(mtool):
    """The RECV tool: join groups and receive datagrams, printing them on request."""

    __proc__ = "RECV"
    __prologue__ = "Python Multicast Receiver. Primitives for a listener for multicast data."
    received = 0  # datagrams the last doStep received
    __epilogue__ = (
        "Joins the groups (--group, --groups; default the MULTICAST_GROUPS) on --port and "
        "waits up to --timeout seconds for each of --count datagrams."
    )

    @classmethod
    def setupArgs(cls, parser: argparse.ArgumentParser | None) -> None:
        """Add RECV's options to ``parser`` (None: nothing to do)."""
        if parser is None:
            return
        add_join_options(parser)
        add_count(
            parser, default=None, help_text="datagrams to receive, 0 for no limit (default 1)"
        )
        add_timeout(
            parser,
            default=None,
            help_text=f"seconds to wait for each datagram, 0 for no limit (default {DEFAULT_TIMEOUT:g})",
        )

    @staticmethod
    def _hearstep(
        groups: Iterable[GroupSpec] | None,
        port: int | str,
        iface: InterfaceSpec | None = None,
        bind_group: GroupSpec | None = None,
    ) -> str:
        """Join, receive one datagram (or nothing before the timeout) and close: its text."""
        return recvstep("", None, joinstep(groups, port, iface, bind_group))

    def doStep(self, *args: Any, **kwargs: Any) -> tuple[bool, str | None]:
        """Receive ``count`` datagrams (0: until the timeout), each within ``timeout`` seconds.

        Keywords: ``groups`` (else ``[group]``), ``port``, ``iface``, ``sources``, ``count``
        (default 1), ``timeout`` (default 1 s; 0: no limit) and ``is_std`` (print each
        datagram as a line, :func:`printable_line`; done anyway when standard output is a
        terminal). Returns ``(True, texts joined by newlines)`` when all ``count`` arrived
        (for 0: any), else ``(False, what arrived or None)``; memory stays bounded however
        many arrive, since only the latest texts, :data:`RESULT_LIMIT` characters at most
        (and at least the last one), are kept for that result.

        With no ``count``, ``timeout`` or ``sources`` (one datagram, the default wait), it
        receives through :meth:`_hearstep` with ``groups``, ``port``, ``iface`` and
        ``group`` as given, as the reference does (so replacing ``_hearstep`` changes what it
        receives), and logs as the reference does on :data:`module_logger`.
        """
        if all(kwargs.get(key) is None for key in ("count", "timeout")) and not kwargs.get(
            "sources"
        ):
            return self._receive_one(**kwargs)
        count = kwargs.get("count")
        count = 1 if count is None else count
        timeout = kwargs.get("timeout")
        timeout = timeout_seconds(DEFAULT_TIMEOUT if timeout is None else timeout)
        show = bool(kwargs.get("is_std")) or (sys.stdout is not None and sys.stdout.isatty())
        texts: deque[str] = deque()
        kept = received = 0
        sock = _joined(
            requested_groups(kwargs.get("groups"), kwargs.get("group")),
            kwargs.get("port", defaults._MCAST_DEFAULT_PORT),
            kwargs.get("iface"),
            sources=kwargs.get("sources") or (),
        )
        with sock:
            sock.settimeout(timeout or None)
            while count == 0 or received < count:
                try:
                    payload = sock.recv(MAX_DATAGRAM)
                except TimeoutError:
                    break
                received += 1
                texts.append(decode_payload(payload))
                kept += len(texts[-1])
                while kept > RESULT_LIMIT and len(texts) > 1:
                    kept -= len(texts.popleft())
                if show:
                    print(printable_line(payload), flush=True)
        complete = received == count or (count == 0 and received > 0)
        if not complete:
            wanted = "any" if count == 0 else str(count)
            module_logger.info(
                "RECV: %d of %s datagrams arrived within %g s each", received, wanted, timeout
            )
        self.received = received
        return complete, "\n".join(texts) if texts else None

    def _receive_one(self, **kwargs: Any) -> tuple[bool, str | None]:
        """One datagram through :meth:`_hearstep`, logged as the reference logs it."""
        module_logger.debug("RECV")
        text = self._hearstep(
            kwargs.get("groups", [defaults._MCAST_DEFAULT_GROUP]),
            kwargs.get("port", defaults._MCAST_DEFAULT_PORT),
            kwargs.get("iface"),
            kwargs.get("group", defaults._MCAST_DEFAULT_GROUP),
        )
        self.received = 1 if text else 0
        if not text:
            module_logger.debug("Nothing Received.")
            return False, None
        module_logger.info("Success")
        if bool(kwargs.get("is_std")) or (sys.stdout is not None and sys.stdout.isatty()):
            module_logger.debug("Will Print to Console.")
            print(printable_text(text), flush=True)
        return True, text
