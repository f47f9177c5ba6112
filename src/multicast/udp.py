"""A non-blocking UDP peer polled by doers, compatible with ``hio.core.udp``, and multicast.

:class:`Peer`, :class:`PeerDoer` and :func:`openPeer` keep the names, signatures and return
conventions of hio's UDP layer, so code written for it runs once its imports point here:
``receive()`` returns ``(data, source)`` or ``(b'', None)`` when nothing is queued, and
``send(data, dst)`` returns the bytes sent or 0 when the kernel would block.

An exchange (run it inside ``scripts/netns-run``, like anything that sends)::

    with openPeer(name="alpha", port=0) as alpha, openPeer(name="beta", port=0) as beta:
        alpha.send(b"hello beta", beta.ha)  # 10
        beta.receive()  # (b'hello beta', ('127.0.0.1', <alpha's port>)) once it arrived
        beta.receive()  # (b'', None): nothing queued

Beyond the original, every socket is configured by :mod:`multicast.core`, and a peer can:

- be IPv6 (``host='::1'``, or ``'::'`` for every address);
- join multicast groups when it opens, any-source or source-specific
  (``groups=['239.1.2.3']``, ``sources=[...]``, ``interface='eth0'``), and send to a group
  with a chosen ``ttl`` and ``loopback``;
- share its port only when asked (``reuse=True``): otherwise a second peer on the same
  port fails to open instead of silently taking the first one's traffic.

Other differences from hio, all on purpose:

- ``open()`` raises a :class:`~multicast.exceptions.BindError` naming the address when the
  bind fails (a :class:`~multicast.exceptions.SocketOptionError` when an option does) and
  closes the socket; hio returned False and kept the socket. Unknown keyword arguments
  raise :class:`TypeError` instead of vanishing.
- Host names are not looked up: ``host`` is an IP literal, ``''`` (every address) or
  ``'localhost'`` (127.0.0.1). Sending to a name still works, as it did in hio.
- A datagram longer than the peer's buffer (``bs``) is never silently cut. ``receive()``
  keeps its 2-tuple and returns the kept head as :class:`Truncated`, a ``bytes`` whose
  ``size`` is the datagram's real length; it also logs a warning and counts it in
  :attr:`Peer.truncated`. With the default ``bs`` (65535) no datagram is ever cut.
- Oversize payloads raise :class:`~multicast.exceptions.MessageSizeError` before sending.
- Errors are logged to the ``multicast.udp`` logger at ERROR before they are re-raised;
  with no logging configured Python prints them on stderr.
- The kernel's count of datagrams it dropped on this socket is kept in :attr:`Peer.drops`.

Reading is batched: when ``receive()`` finds nothing buffered it takes every datagram the
kernel has queued in one go (:func:`multicast.core.receive_ready`), so draining the socket
on each Doist pass with :meth:`Peer.receiveAll` (or a :class:`PeerDoer` given a
``handler``) keeps up with tens of thousands of datagrams per second.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self

from multicast.core import (
    Datagram,
    GroupSpec,
    InterfaceSpec,
    IPAddress,
    Membership,
    MembershipTable,
    Payload,
    common_family,
    configure_receiving,
    family_of,
    join_all,
    new_socket,
    parse_address,
    parse_group,
    parse_port,
    receive_ready,
    request_send_buffer,
    send_datagram,
    set_broadcast,
    set_loopback,
    set_send_interface,
    set_ttl,
    wildcard_host,
)
from multicast.core.constants import LINUX, MAX_DATAGRAM
from multicast.core.hostscope import release
from multicast.doing import Doer
from multicast.exceptions import AddressError, ClosedError, GroupError, OptionError
from multicast.wiring import WireLog

__all__ = ["Address", "Peer", "PeerDoer", "Truncated", "openPeer"]

logger = logging.getLogger(__name__)

Address = tuple[str, int]
Handler = Callable[[bytes, Address], object]

# sendto errors that mean "not sent now, send the same datagram again later".
_SEND_WOULD_BLOCK = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.ENOMEM})


class Truncated(bytes):
    """The kept head of a datagram that was longer than the peer's buffer.

    >>> head = Truncated(b"abc", size=40000)
    >>> head == b"abc", head.size
    (True, 40000)
    """

    size: int

    def __new__(cls, head: bytes, size: int) -> Self:
        kept = super().__new__(cls, head)
        kept.size = size
        return kept


class Peer:
    """A non-blocking UDP socket bound to ``ha`` (or ``host``, ``port``), polled by its owner.

    hio's arguments: ``name`` identifies the peer; ``ha`` wins over ``host``/``port``
    (``port=0`` takes a free port, stored back into :attr:`ha` on open); ``bc`` buffers of
    :attr:`MaxGramSize` make the buffer size ``bs`` (``bc`` wins over ``bs``; default
    :attr:`BufSize`), which is both the longest datagram read whole and the size the socket's
    buffers grow to (the receive buffer to at least :attr:`ReceiveBufSize`); ``wl`` is a
    :class:`~multicast.wiring.WireLog` that records every datagram; ``bcast`` allows sending
    to broadcast addresses; ``reopen`` opens at once.

    Additions: ``reuse`` lets other sockets share the port; ``groups`` are joined on every
    open, on ``interface`` (name, index or address; default: the routing table's choice),
    for ``sources`` only if given (source-specific); ``ttl``, ``loopback`` and ``interface``
    apply to the multicast datagrams it sends. A peer that joins groups must bind the
    wildcard (``host=''``) or one of its groups.
    """

    BufSize = 65535  # default buffer size: the largest datagram
    MaxGramSize = 1240  # the 1280-byte IPv6 minimum MTU less 40 bytes of headers
    ReceiveLimit = 65536  # most datagrams one receiveAll() returns, so a flood cannot starve
    # Receive buffer asked for at open, at least: room for one Doist pass (1/32 s) of a
    # 20,000 datagram/s stream of small datagrams, where hio's default loses over half of it.
    ReceiveBufSize = 1 << 21

    def __init__(
        self,
        *,
        name: str = "main",
        ha: Address | None = None,
        host: str = "127.0.0.1",
        port: int = 55000,
        bc: int | None = None,
        bs: int | None = None,
        wl: WireLog | None = None,
        bcast: bool = False,
        reopen: bool = False,
        reuse: bool = False,
        groups: Iterable[GroupSpec] = (),
        sources: Iterable[str | IPAddress] = (),
        interface: InterfaceSpec | None = None,
        ttl: int = 1,
        loopback: bool = True,
    ) -> None:
        self.name = name
        self.groups = tuple(parse_group(group) for group in groups)
        self.sources = tuple(parse_address(source, what="source") for source in sources)
        if self.sources and not self.groups:
            raise GroupError(f"peer {name!r}: sources given but no group to join")
        host, port = ha if ha is not None else (host, port)
        self.ha: Address = (self._bind_host(host), parse_port(port, allow_zero=True))
        self.bc = int(bc) if bc is not None and bc > 0 else None
        if self.bc is not None:
            self.bs = self.MaxGramSize * self.bc
        elif bs is not None:
            if bs <= 0:
                raise OptionError(f"peer {name!r}: buffer size bs={bs} must be positive")
            self.bs = int(bs)
        else:
            self.bs = self.BufSize
        self.wl = wl
        self.bcast = bcast
        self.reuse = reuse
        self.interface = interface
        self.ttl = ttl
        self.loopback = loopback
        self.ls: socket.socket | None = None
        self.opened = False
        self._table = MembershipTable()  # what the open socket joined: the arrival filter
        self.truncated = 0  # datagrams received cut to bs
        # Datagrams the kernel dropped on this socket for want of buffer room, as it last
        # reported (SO_RXQ_OVFL): it tells with the next datagram it does queue.
        self.drops = 0
        self._pending: deque[Datagram] = deque()
        self._buffer = bytearray(min(self.bs, MAX_DATAGRAM))
        if reopen:
            self.reopen()

    def _bind_host(self, host: str) -> str:
        """Validate ``host`` against the groups; '' is the wildcard of their family."""
        text = str(host).strip()
        if text == "localhost":
            text = "127.0.0.1"
        address = parse_address(text, what=f"peer {self.name!r} host") if text else None
        named = [*([address] if address else []), *self.groups, *self.sources]
        try:
            family = (
                common_family(named, what="host, groups and sources") if named else socket.AF_INET
            )
        except GroupError as error:
            raise GroupError(f"peer {self.name!r}: {error}") from None
        if address is None:
            return wildcard_host(family)
        bound_to_one = address.compressed != wildcard_host(family)
        if self.groups and bound_to_one and address not in {g.address for g in self.groups}:
            raise AddressError(
                f"peer {self.name!r} bound to {address} would receive none of its groups;"
                " bind host '' (every address) or one of the groups"
            )
        return address.compressed

    @property
    def host(self) -> str:
        return self.ha[0]

    @host.setter
    def host(self, value: str) -> None:
        self.ha = (self._bind_host(value), self.ha[1])

    @property
    def port(self) -> int:
        return self.ha[1]

    @port.setter
    def port(self, value: int) -> None:
        self.ha = (self.ha[0], parse_port(value, allow_zero=True))

    @property
    def path(self) -> Address:
        """The same as :attr:`ha`: the name a local-socket peer would have."""
        return self.ha

    @property
    def family(self) -> socket.AddressFamily:
        return family_of(parse_address(self.host))

    @property
    def memberships(self) -> list[Membership]:
        """What the open socket joined (nothing while closed)."""
        return self._table.joined

    def actualBufSizes(self) -> tuple[int, int]:
        """The socket's (send, receive) buffer sizes as the kernel reports them; (0, 0) closed."""
        if self.ls is None:
            return (0, 0)
        return (
            self.ls.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
            self.ls.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        )

    def open(self) -> bool:
        """Open, configure and bind the socket, then join the groups; returns True.

        An open peer is closed first. Any failure closes the new socket and raises an error
        naming what failed (a :class:`~multicast.exceptions.BindError` for the bind).
        """
        self.close()
        host, port = self.ha
        sock = new_socket(self.family)
        try:
            if self.bcast:
                set_broadcast(sock)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < self.bs:
                request_send_buffer(sock, self.bs)
            set_ttl(sock, self.ttl)
            set_loopback(sock, self.loopback)
            if self.interface is not None:
                set_send_interface(sock, self.interface)
            sock.setblocking(False)
            receive_buffer = max(self.bs, self.ReceiveBufSize)
            table = configure_receiving(
                sock,
                host,
                port,
                reuse=self.reuse,
                reuse_port=self.reuse,
                isolate=LINUX,  # only the groups this peer joined (Linux-only)
                metadata=LINUX,  # for the kernel's drop counter (Linux-only)
                receive_buffer=(
                    receive_buffer
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < receive_buffer
                    else None
                ),
            )
            join_all(sock, table, self.groups, self.interface, self.sources)
        except BaseException:
            sock.close()
            raise
        self.ls = sock
        self._table = table
        self.ha = (host, sock.getsockname()[1])
        self.drops = 0
        self.opened = True
        return True

    def reopen(self, *, temp: bool | None = None) -> bool:
        """Close and open again, on the same port. ``temp`` is accepted for doers and unused."""
        return self.open()

    def close(self) -> bool:
        """Close the socket (leaving its groups) and drop anything read but not taken."""
        if self.ls is not None:
            self.ls.close()
            release(self.ls)  # its TTL-0 guards (multicast.core.hostscope)
            self.ls = None
        self.opened = False
        self._table = MembershipTable()
        self._pending.clear()
        return True

    def _socket(self) -> socket.socket:
        if self.ls is None:
            raise ClosedError(
                errno.EBADF, f"peer {self.name!r} is not open; call open() or reopen() first"
            )
        return self.ls

    def receive(self) -> tuple[bytes, Address | None]:
        """The next datagram as ``(data, source)``, or ``(b'', None)`` if none is queued.

        An empty datagram is ``(b'', source)``: test ``source``, not ``data``. A datagram
        cut to ``bs`` comes back as :class:`Truncated`.
        """
        if not self._pending:
            sock = self._socket()
            try:
                self._pending.extend(self._table.keep(receive_ready(sock, self._buffer)))
            except OSError as error:
                logger.error("peer %r cannot receive: %s", self.name, error)
                raise
            if not self._pending:
                return b"", None
        return self._accept(self._pending.popleft())

    def _accept(self, datagram: Datagram) -> tuple[bytes, Address]:
        data = datagram.payload
        if datagram.truncated:
            self.truncated += 1
            logger.warning(
                "peer %r: datagram of %d bytes from %s cut to its first %d (raise bs)",
                self.name,
                datagram.size,
                datagram.source,
                len(data),
            )
            data = Truncated(data, datagram.size)
        self.drops = max(self.drops, datagram.drops)
        if self.wl is not None:
            self.wl.writeRx(data, who=datagram.source)
        return data, datagram.source

    def receiveAll(self, limit: int | None = None) -> list[tuple[bytes, Address]]:
        """Every datagram queued now, as ``(data, source)`` pairs (at most ``limit``).

        ``limit`` defaults to :attr:`ReceiveLimit`, more than any receive buffer holds, so it
        only stops an endless flood from keeping the caller here.
        """
        limit = self.ReceiveLimit if limit is None else limit
        received: list[tuple[bytes, Address]] = []
        while len(received) < limit:
            data, source = self.receive()
            if source is None:
                break
            received.append((data, source))
        return received

    def send(self, data: Payload, dst: Address) -> int:
        """Send ``data`` as one datagram to ``dst`` (a host or group, and a port).

        Returns the bytes sent, or 0 when the kernel would block (send it again later);
        an empty datagram also returns 0.
        """
        sock = self._socket()
        if not isinstance(dst, tuple) or len(dst) < 2:
            raise AddressError(f"peer {self.name!r}: destination {dst!r} is not (host, port)")
        port = parse_port(dst[1])
        try:
            count = send_datagram(sock, data, dst[0], port)
        except OSError as error:
            if error.errno in _SEND_WOULD_BLOCK:
                return 0
            logger.error("peer %r cannot send to %s: %s", self.name, dst, error)
            raise
        if self.wl is not None:
            self.wl.writeTx(data[:count], who=dst)
        return count


@contextlib.contextmanager
def openPeer(cls: type[Peer] | None = None, name: str = "test", **kwa: Any) -> Iterator[Peer]:
    """A :class:`Peer` (or ``cls``) made with ``kwa``, opened for a ``with`` block, then closed."""
    peer = (cls or Peer)(name=name, **kwa)
    try:
        peer.reopen()
        yield peer
    finally:
        peer.close()


class PeerDoer(Doer):
    """Runs a :class:`Peer` under a :class:`~multicast.doing.Doist`.

    ``enter`` opens the peer and ``exit`` closes it, also when the run is cut short or
    fails. Override :meth:`recur` to service the peer, or give a ``handler``: then each pass
    drains every queued datagram and calls ``handler(data, source)`` for each. The doer is
    never done by itself; the Doist's ``limit`` ends it.
    """

    def __init__(self, peer: Peer, *, handler: Handler | None = None, **kwa: Any) -> None:
        super().__init__(**kwa)
        self.peer = peer
        self.handler = handler

    def enter(self, *, temp: bool | None = None) -> None:
        self.peer.reopen(temp=temp)

    def recur(self, tyme: float) -> Any:
        if self.handler is not None:
            for data, source in self.peer.receiveAll():
                self.handler(data, source)

    def exit(self) -> None:
        self.peer.close()
