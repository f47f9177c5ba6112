"""Multicast HEAR: a UDP server that answers every datagram sent to its groups.

Classes: :class:`McastServer` (a ``socketserver.UDPServer``), :class:`HearUDPHandler` (the
answer) and :class:`McastHEAR` (the HEAR tool of the command line, ``--daemon HEAR``).

The server keeps **one** socket, joined to all its groups, for its whole life: nothing queued
is lost between datagrams. It asks for a 4 MiB receive buffer (the kernel may grant less) to
ride out bursts, and counts the datagrams the kernel still had to drop, logging each increase
as a warning. Like every receiver of the package it leaves unanswered (and counts, in
:attr:`McastServer.wrong_interface`) an IPv6 datagram of a group that arrived on an
interface the group was not joined on.

The answer to a datagram is ``HEAR [ <ITS TEXT IN UPPER CASE> SAID (host, port) ] from
<group>``, sent from the server's socket to the datagram's source address and port, and cut
to the size of the datagram it answers (at a character boundary): an answer is never larger
than its question, so the server cannot amplify traffic sent with a forged source. Trailing
white space of the text is left out of the answer, so a client that wants the whole answer
pads its datagram with spaces (about 60 bytes more than its text is enough on IPv4).

A datagram whose text contains ``STOP`` makes :class:`HearUDPHandler` raise
:class:`~multicast.exceptions.ShutdownCommandReceived` after answering. The server then stops
if it was made with ``allow_stop=True`` (the default, as in the reference; the command line
needs ``--allow-stop``) and ignores it otherwise; either way it logs who sent it.

As in the reference, :meth:`McastServer.handle_error` for a request whose data contains
``STOP`` calls :meth:`~McastServer.shutdown` once when stopping is allowed, whether or not an
exception is in flight; ``shutdown`` never blocks when no serve loop runs or when the serving
thread itself calls it; a second ``server_activate`` does nothing.

Minimal Acceptance Testing:

>>> import multicast
>>> multicast.hear.fit("HEAR [ ABC SAID ('192.0.2.1', 5000) ] from 224.0.0.1", 3)
b'HEA'
>>> server = multicast.hear.McastServer(("239.0.0.9", 0), multicast.hear.HearUDPHandler)
>>> server.logger.name, [str(g) for g in server.groups]
('multicast.hear.McastServer.239.0.0.9', ['239.0.0.9'])
>>> server.server_close()
"""

from __future__ import annotations

import argparse
import errno
import logging
import select
import socket
import socketserver
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

from multicast import defaults
from multicast.cliargs import add_join_options, mtool
from multicast.core import (
    Datagram,
    Group,
    GroupSpec,
    InterfaceSpec,
    InterfaceWatcher,
    IPAddress,
    MembershipTable,
    configure_receiving,
    family_of,
    follow_interfaces,
    join_all,
    new_socket,
    parse_address,
    parse_group,
    parse_port,
    receive_ready,
    reply_address,
    send_replies,
)
from multicast.core.constants import MAX_DATAGRAM
from multicast.core.membership import rejoin
from multicast.exceptions import ShutdownCommandReceived
from multicast.recv import bind_host, decode_payload, requested_groups

__module__ = "multicast"  # the value the reference documents for this module

__all__ = ["HearUDPHandler", "McastHEAR", "McastServer", "add_stop_option", "fit"]

module_logger = logging.getLogger(__name__)

RECEIVE_BUFFER: Final = 4 * 1024 * 1024
"""Bytes of kernel receive buffer a server asks for (granted up to ``net.core.rmem_max``)."""


def fit(text: str, limit: int) -> bytes:
    """``text`` as UTF-8, cut to at most ``limit`` bytes without splitting a character."""
    return text.encode()[:limit].decode("utf-8", "ignore").encode()


class _StopServingError(Exception):
    """Ends :meth:`McastServer.serve_forever` from inside its loop."""


class McastServer(socketserver.UDPServer):
    """A UDP server for multicast groups, with one joined socket for its whole life.

    ``server_address`` is ``(host, port)``: the address to bind (an IP literal; a missing
    host means the default group, a port of 0 a free port). ``groups`` are joined (default:
    the host, if it is a group), each on ``iface`` and from each of ``sources`` if given.
    ``allow_stop`` lets a STOP datagram end :meth:`serve_forever`; ``show`` prints each
    datagram heard, with its source and group, on standard output.
    """

    __log_handle__ = "multicast.hear.McastServer"
    max_packet_size = MAX_DATAGRAM
    batch_size = 256  # most datagrams read in one go (one recvmmsg on Linux)

    def __init__(
        self,
        server_address: tuple[str, int] | tuple[str, int, int, int],
        RequestHandlerClass: Callable[..., socketserver.BaseRequestHandler] | None,  # noqa: N803
        bind_and_activate: bool = True,
        *,
        groups: Sequence[GroupSpec] | None = None,
        iface: InterfaceSpec | None = None,
        sources: Sequence[str | IPAddress] = (),
        allow_stop: bool = True,
        show: bool = False,
    ) -> None:
        host, port = server_address[0], server_address[1]
        if not host:
            host, port = defaults._MCAST_DEFAULT_GROUP, port or defaults._MCAST_DEFAULT_PORT
        address = parse_address(host, what="server address")
        self._family = self.address_family = family_of(address)  # typed: socketserver says int
        self.groups: list[Group] = (
            [parse_group(g) for g in groups]
            if groups is not None
            else ([parse_group(host)] if address.is_multicast else [])
        )
        self.iface = iface
        self.sources = list(sources)
        self.allow_stop = allow_stop
        self.show = show
        self.drops = 0  # datagrams the kernel dropped on this server's socket so far
        self.table = MembershipTable()  # what the socket joined: the arrival filter
        self.watcher: InterfaceWatcher | None = None  # interface changes, to rejoin after them
        self.current_group: str | None = None  # destination of the datagram being answered
        self._buffer = bytearray(self.max_packet_size)
        self._pending: deque[Datagram] = deque()
        self._stopping = False  # a STOP (or the serving thread's shutdown): the loop ends
        self._shutdown_asked = False  # another thread's shutdown: the loop ends
        self._stopped = threading.Event()  # set when serve_forever is not running
        self._stopped.set()
        self._activated = False
        self._serving: threading.Thread | None = None  # the thread in serve_forever, if any
        self.__logger = logging.getLogger(f"{self.__log_handle__}.{address}")
        handler = cast(Callable[..., socketserver.BaseRequestHandler], RequestHandlerClass)
        socketserver.BaseServer.__init__(
            self, (str(address), parse_port(port, allow_zero=True)), handler
        )
        self.socket = new_socket(self.address_family)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    @property
    def logger(self) -> logging.Logger:
        """This server's logger, named after the address its socket is bound to."""
        return self.__logger

    def _sync_logger(self) -> None:
        """Name the logger ``multicast.hear.McastServer.<bound address>`` (no address: the base)."""
        address = self.socket.getsockname()[0]
        self.__logger = logging.getLogger(
            f"{self.__log_handle__}.{address}" if address else self.__log_handle__
        )

    @property
    def wrong_interface(self) -> int:
        """IPv6 datagrams left unanswered for arriving where their group was not joined."""
        return self.table.wrong_interface

    def server_bind(self) -> None:
        """Bind the socket, shared with other receivers of the port and isolated to its groups,
        with per-datagram metadata and the kernel's drop counter on (the core's recipe)."""
        self.table = configure_receiving(
            self.socket,
            str(self.server_address[0]),
            int(self.server_address[1]),
            receive_buffer=RECEIVE_BUFFER,
        )
        self.server_address = self.socket.getsockname()
        self._sync_logger()

    def server_activate(self) -> None:
        """Join the groups; the socket stays joined until the server is closed.

        A second call does nothing (the constructor activates already, by default).
        """
        if self._activated:
            return
        self._activated = True
        join_all(self.socket, self.table, self.groups, self.iface, self.sources)
        self.logger.info(
            "HEAR listening on %s port %d for %s",
            self.server_address[0],
            self.server_address[1],
            ", ".join(map(str, self.groups)) or "unicast only",
        )

    def get_request(self) -> tuple[tuple[bytes, socket.socket], Any]:  # type: ignore[override]
        """The next datagram: every datagram queued is read in one batch, then answered in turn.

        Notes its group and any new kernel drops. (typeshed gives ``UDPServer`` the TCP
        signature; a UDP request is ``(data, socket)``.)
        """
        if not self._pending:
            ready = receive_ready(self.socket, self._buffer, self.batch_size)
            self._pending.extend(self.table.keep(ready))
            if not self._pending:
                raise BlockingIOError(errno.EAGAIN, "no datagram queued")
        datagram = self._pending.popleft()
        self._note(datagram)
        # IPv6: with the arrival interface as the scope, to answer a link-local source
        return (datagram.payload, self.socket), reply_address(datagram)

    def _note(self, datagram: Datagram) -> None:
        """Note the group of the datagram about to be answered, and any new kernel drops."""
        self.current_group = datagram.group
        if datagram.drops > self.drops:
            self.logger.warning(
                "the kernel dropped %d datagrams (%d in all): the receive buffer was full",
                datagram.drops - self.drops,
                datagram.drops,
            )
            self.drops = datagram.drops

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A STOP (the handler's ``ShutdownCommandReceived``, or ``STOP`` in the request's
        data) calls :meth:`shutdown` once if allowed, else it is ignored; both are logged.
        Other errors are logged."""
        error = sys.exception()
        host, port = client_address[0], client_address[1]
        if isinstance(error, BrokenPipeError):  # standard output is gone: stop (exit 141)
            raise error
        if isinstance(error, ShutdownCommandReceived) or _says_stop(request):
            self._told_to_stop(host, port)
            return
        self.logger.error("cannot answer %s port %s: %s", host, port, error)

    def _told_to_stop(self, host: str, port: int) -> None:
        if self.allow_stop:
            self.logger.warning("STOP from %s port %s: stopping", host, port)
            self.shutdown()
        else:
            self.logger.warning("ignored STOP from %s port %s (not allowed)", host, port)

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait for it to end; returns at once when no serve
        loop runs, and without waiting when called from the serving thread itself."""
        serving = self._serving
        if serving is None:
            return
        if serving is threading.current_thread():
            self._stopping = True  # the loop ends at its next turn
            return
        self._shutdown_asked = True
        self._stopped.wait()

    def service_actions(self) -> None:
        """Answer the rest of the batch :meth:`get_request` read; stop after an allowed STOP.

        Between batches (at least every ``poll_interval``), when showing what it hears, stop
        with ``BrokenPipeError`` once standard output is a pipe nobody reads (``| head -c0``)
        rather than wait for a datagram to print.
        """
        if self.show and _stdout_gone():
            raise BrokenPipeError(errno.EPIPE, "standard output is closed")
        while self._pending and not self._stopping:
            # socketserver's own one-request step (verify, process, handle_error, shutdown)
            self._handle_request_noblock()  # type: ignore[attr-defined]
        if self._stopping:
            raise _StopServingError

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Answer datagrams until :meth:`shutdown` is called or an allowed STOP arrives.

        While it serves, it watches the interfaces (call it in the socket's namespace) and
        joins again by itself when an interface it joined on is deleted and made again. One
        ``poll`` per wake-up watches the socket and the interfaces. With this module's
        :class:`HearUDPHandler` and socketserver's steps of a request left as they are, a
        wake-up answers every datagram queued at once (:meth:`_answer_queued`); any other
        handler gets socketserver's path, one request (and handler) per datagram.
        """
        self._stopping = self._shutdown_asked = False
        self._stopped.clear()
        self._serving = threading.current_thread()
        try:
            poller = select.poll()
            poller.register(self.socket, select.POLLIN)
            if self.groups:
                self.watcher = InterfaceWatcher()
                poller.register(self.watcher, select.POLLIN)
                # What changed since the joins and before the watcher: an interface of the
                # same name under another index is found by its name.
                rejoin(self.socket, self.table)
            watched = -1 if self.watcher is None else self.watcher.fileno()
            answer = self._answer_queued if self._answers_in_batches() else self._answer_one
            wait = max(0, round(poll_interval * 1000))
            while not self._shutdown_asked:
                woken = poller.poll(wait)
                if self._shutdown_asked:
                    break
                for fd, _ in woken:
                    if fd == watched and self.watcher is not None:
                        follow_interfaces(self.socket, self.table, self.watcher)
                    else:
                        answer()
                self.service_actions()
        except _StopServingError:
            self.logger.info("HEAR stopped")
        finally:
            self._serving = None
            if self.watcher is not None:
                self.watcher.close()
                self.watcher = None
            self._stopped.set()

    def _answer_one(self) -> None:
        """socketserver's path: one request (and handler) for the next datagram."""
        self._handle_request_noblock()  # type: ignore[attr-defined]

    def _answers_in_batches(self) -> bool:
        """Whether answering a batch at once does what socketserver's path would: the handler
        is :class:`HearUDPHandler` itself, and no step of a request is overridden."""
        return self.RequestHandlerClass is HearUDPHandler and all(
            getattr(type(self), step) is getattr(McastServer, step) for step in _REQUEST_STEPS
        )

    def _answer_queued(self) -> None:
        """Answer every datagram queued, as :class:`HearUDPHandler` would one by one, with
        one ``sendmmsg`` to their sources. After an allowed STOP the rest stays queued."""
        try:
            ready = receive_ready(self.socket, self._buffer, self.batch_size)
        except OSError:  # as socketserver does when a read fails
            return
        self._pending.extend(self.table.keep(ready))
        answers: list[tuple[bytes, Datagram]] = []
        heard: list[str] = []  # where each datagram was heard
        while self._pending:
            datagram = self._pending.popleft()
            self._note(datagram)
            here = datagram.group or self.socket.getsockname()[0]
            answers.append((_answer(datagram.payload, datagram.source, here), datagram))
            heard.append(here)
            if self.allow_stop and b"STOP" in datagram.payload:
                break
        refused = {
            id(datagram): error
            for datagram, error in send_replies(self.socket, self._family, answers)
        }
        for (_, datagram), here in zip(answers, heard, strict=True):
            host, port = datagram.source
            error = refused.get(id(datagram))
            if error is None:
                _answered(self, datagram.payload, datagram.source, here)
            if b"STOP" in datagram.payload:
                self._told_to_stop(host, port)
            elif error is not None:
                self.logger.error("cannot answer %s port %s: %s", host, port, error)


# The steps of one request in socketserver; the batched answer path stands for all of them.
_REQUEST_STEPS = (
    "get_request",
    "verify_request",
    "process_request",
    "finish_request",
    "handle_error",
    "shutdown_request",
    "close_request",
)


def _says_stop(request: Any) -> bool:
    """Whether a request's data (text or bytes) contains ``STOP``."""
    data = request[0] if isinstance(request, tuple | list) and request else None
    if isinstance(data, bytes | bytearray | memoryview):
        return b"STOP" in bytes(data)
    return isinstance(data, str) and "STOP" in data


def _stdout_gone() -> bool:
    """Whether standard output is a pipe whose reader has gone (poll reports an error)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # closed, or not a file
        return False
    poller = select.poll()
    poller.register(fd, 0)  # no events asked: only errors and hang-ups are reported
    return any(events & select.POLLERR for _, events in poller.poll(0))


# What str.rstrip() strips from ASCII text: bytes.rstrip() alone leaves \x1c-\x1f.
_ASCII_WHITESPACE: Final = bytes(c for c in range(128) if chr(c).isspace())


def _answer(payload: bytes, source: tuple[str, int], here: str) -> bytes:
    """HEAR's answer to ``payload`` from ``source``, heard at ``here``: its words in capitals,
    cut to the payload's size. An ASCII payload (the usual one) is answered in bytes, without
    decoding it: the same answer, for less work."""
    if payload.isascii():
        words = payload.rstrip(_ASCII_WHITESPACE).upper()
        return (b"HEAR [ " + words + f" SAID {source} ] from {here}".encode())[: len(payload)]
    words_text = decode_payload(payload).rstrip().upper()
    return fit(f"HEAR [ {words_text} SAID {source} ] from {here}", len(payload))


def _answered(server: Any, payload: bytes, source: tuple[str, int], here: str) -> None:
    """What follows an answer sent: the line shown (``show``), the debug log."""
    host, port = source
    if getattr(server, "show", False):
        text = decode_payload(payload).rstrip()
        print(f"HEAR {text!r} from {host} port {port} to {here}", flush=True)
    module_logger.debug("answered %d bytes from %s port %s", len(payload), host, port)


class HearUDPHandler(socketserver.BaseRequestHandler):
    """Answers one datagram: see the module's description of the answer and of STOP."""

    def handle(self) -> None:
        """Answer the datagram to its source; raise ``ShutdownCommandReceived`` on STOP.

        Does nothing when the request has no data or no socket.
        """
        data, sock = self.request
        if data is None or not sock:
            return
        payload = data.encode() if isinstance(data, str) else bytes(data)
        host, port = self.client_address[0], self.client_address[1]
        here = getattr(self.server, "current_group", None) or sock.getsockname()[0]
        sock.sendto(_answer(payload, (host, port), here), self.client_address)
        _answered(self.server, payload, (host, port), here)
        if b"STOP" in payload:
            raise ShutdownCommandReceived("SHUTDOWN")


def add_stop_option(parser: argparse.ArgumentParser) -> None:
    """``--allow-stop``: let a datagram containing STOP end ``--daemon HEAR``."""
    parser.add_argument(
        "--allow-stop",
        action="store_true",
        default=False,
        help="with --daemon: a datagram containing STOP ends the server (logged with its sender)",
    )


class McastHEAR(mtool):
    """The HEAR tool: the echo server of ``--daemon HEAR``."""

    __proc__ = "HEAR"
    __prologue__ = "Python Multicast Server for multicast input."
    __epilogue__ = (
        "Joins the groups (--group, --groups; default the MULTICAST_GROUPS) on --port and "
        "answers every datagram to its sender until interrupted (or, with --allow-stop, sent "
        "STOP)."
    )

    @classmethod
    def setupArgs(cls, parser: argparse.ArgumentParser | None) -> None:
        """Add HEAR's options to ``parser`` (None: nothing to do)."""
        if parser is None:
            return
        add_join_options(parser)
        add_stop_option(parser)

    def doStep(self, *args: Any, **kwargs: Any) -> tuple[bool, None]:
        """Serve until stopped; returns ``(True, None)`` after a STOP, raises on errors.

        Keywords: ``groups`` (else ``[group]``), ``port``, ``iface``, ``sources``,
        ``allow_stop`` (default True, as in the reference: a STOP datagram ends the server;
        the command line passes False unless ``--allow-stop`` is given) and ``is_std``
        (print each datagram heard).
        """
        groups = requested_groups(kwargs.get("groups"), kwargs.get("group"))
        port = kwargs.get("port", defaults._MCAST_DEFAULT_PORT)
        with McastServer(
            (bind_host(groups), port),
            HearUDPHandler,
            groups=groups,
            iface=kwargs.get("iface"),
            sources=kwargs.get("sources") or (),
            allow_stop=bool(kwargs.get("allow_stop", True)),
            show=bool(kwargs.get("is_std")),
        ) as server:
            server.serve_forever()
        return True, None
