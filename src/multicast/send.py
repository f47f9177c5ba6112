"""Multicast SAY: send a message, or standard input, to one or more groups.

One socket serves the whole run, however many datagrams and groups. A message is sent as
one datagram and must fit in one (65507 bytes on IPv4, 65527 on IPv6), else nothing is sent
and :class:`~multicast.exceptions.MessageSizeError` names the size.

``--pipe`` reads standard input as **bytes** and sends it in datagrams of
``MULTICAST_BUFFER_SIZE`` bytes (default 1316), the last one shorter; empty input sends
nothing. The bytes go out unchanged, so a multi-byte UTF-8 character may be split across two
datagrams (RECV then shows each half escaped). A ``sys.stdin`` without ``.buffer`` (a text
stream such as ``io.StringIO``, as a program may set) is read as text and sent as UTF-8,
cut the same way.

Minimal Acceptance Testing:

>>> import multicast
>>> multicast.send.McastSAY.__proc__
'SAY'
>>> import io
>>> list(multicast.send.chunks(io.BytesIO(b"abcdefg"), 3))
[b'abc', b'def', b'g']
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Iterator
from typing import IO, Any

from multicast import defaults
from multicast.cliargs import add_group, add_groups, add_iface, add_port, add_ttl, mtool
from multicast.core import Group, Sender, check_payload_size, parse_port
from multicast.exceptions import CommandExecutionError
from multicast.recv import requested_groups

__module__ = "multicast"  # the value the reference documents for this module

__all__ = ["McastSAY", "chunks", "text_chunks"]


def chunks(stream: IO[bytes], size: int) -> Iterator[bytes]:
    """``stream`` cut into pieces of ``size`` bytes (the last one shorter) until its end."""
    while piece := stream.read(size):
        yield piece


def text_chunks(stream: IO[str], size: int) -> Iterator[bytes]:
    """A text ``stream`` as UTF-8, cut into pieces of ``size`` bytes like :func:`chunks`."""
    pending = b""
    while text := stream.read(size):
        pending += text.encode()
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


def _standard_input(size: int) -> Iterator[bytes]:
    """Standard input in pieces of ``size`` bytes: its bytes, or its text as UTF-8 when it
    has no ``.buffer``. Closed or unreadable, a ``CommandExecutionError`` with exit code 66
    (no input) that says so."""
    if sys.stdin is None:
        raise CommandExecutionError("--pipe: standard input is closed", 66)
    binary = getattr(sys.stdin, "buffer", None)
    try:
        yield from chunks(binary, size) if binary is not None else text_chunks(sys.stdin, size)
    except OSError as error:
        raise CommandExecutionError(
            f"--pipe: cannot read standard input: {error.strerror or error}", 66
        ) from error


def _payload(data: object) -> bytes:
    """A message as bytes: words joined by spaces, text as UTF-8, bytes unchanged."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, list | tuple):
        return " ".join(str(word) for word in data).encode()
    return str(data).encode()


class McastSAY(mtool):
    """The SAY tool: send a message (or standard input) to the groups on a port."""

    __proc__ = "SAY"
    __prologue__ = "Python Multicast Broadcaster."
    __epilogue__ = (
        "Sends -m/--message (its words joined by spaces) as one datagram to each group, or "
        "with --pipe standard input in datagrams of MULTICAST_BUFFER_SIZE bytes (default 1316)."
    )

    @classmethod
    def setupArgs(cls, parser: argparse.ArgumentParser | None) -> None:
        """Add SAY's options to ``parser`` (None: nothing to do)."""
        if parser is None:
            return
        add_port(parser)
        add_group(parser)
        add_groups(parser)
        add_iface(parser, help_text="interface to send on: name, index or address")
        add_ttl(parser)
        message = parser.add_mutually_exclusive_group()
        message.add_argument(
            "-m",
            "--message",
            dest="data",
            nargs="+",
            default=None,
            metavar="WORD",
            help="the message: its words joined by spaces, sent as one datagram "
            "(default: PING from HOST: group: GROUP, port: PORT)",
        )
        message.add_argument(
            "--pipe",
            dest="data",
            action="store_const",
            const=["-"],
            help="send standard input instead, in datagrams of MULTICAST_BUFFER_SIZE bytes",
        )

    def doStep(self, *args: Any, **kwargs: Any) -> tuple[bool, None]:
        """Send ``data`` to every group on ``port``; returns ``(True, None)``.

        Keywords: ``groups`` (else ``[group]``), ``port``, ``data`` (words, text or bytes;
        ``["-"]``: standard input; None: a PING line), ``iface``, ``ttl``.
        Errors (bad group, message too large, kernel refusal) are raised.
        """
        groups = requested_groups(kwargs.get("groups"), kwargs.get("group"))
        port = parse_port(kwargs.get("port", defaults._MCAST_DEFAULT_PORT))
        data = kwargs.get("data")
        ttl = kwargs.get("ttl")
        with Sender(
            groups[0].family,
            ttl=defaults._MCAST_DEFAULT_TTL if ttl is None else ttl,
            interface=kwargs.get("iface"),
        ) as sender:
            if data == ["-"]:
                for piece in _standard_input(defaults._MCAST_DEFAULT_BUFFER_SIZE):
                    for group in groups:
                        sender.send(piece, group, port)
            else:
                messages = [
                    (group, _payload(_ping(group, port) if data is None else data))
                    for group in groups
                ]
                for _, payload in messages:  # all checked before any is sent
                    check_payload_size(sender.family, len(payload))
                for group, payload in messages:
                    sender.send(payload, group, port)
        return True, None


def _ping(group: Group, port: int) -> str:
    return f"PING from {socket.gethostname()}: group: {group}, port: {port}"
