"""Sending and receiving datagrams on a plain socket; batched on Linux.

Receiving reads each datagram with its metadata (:class:`~multicast.core.datagram.Datagram`);
on Linux :func:`receive_ready` and :func:`receive_batch` take every queued datagram in
``recvmmsg`` batches and :func:`send_many` sends in ``sendmmsg`` batches
(:mod:`multicast.core.batch`). None of them changes the socket's own timeout.

A destination is resolved once: :func:`destination` turns a group (with an IPv6 ``%zone``)
or an address into the ``sendto`` address, which :func:`send_to` and :func:`send_many_to`
then use as it is; an answer goes to a datagram's source by its arrival interface
(:func:`send_reply`), never by a name looked up again. A datagram to a group from a socket
whose TTL is 0 stays on this host (:func:`~multicast.core.hostscope.keep_on_host`, before
each send). A refused send raises
:class:`~multicast.exceptions.SendError` with the kernel's ``errno``; a socket that would
block (or whose timeout passed) raises :class:`BlockingIOError` (:class:`TimeoutError`) as
always.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from multicast.core import batch, constants
from multicast.core.addresses import (
    Group,
    IPAddress,
    family_of,
    parse_address,
    parse_port,
    split_zone,
)
from multicast.core.clock import deadline as deadline_of
from multicast.core.clock import poll_milliseconds
from multicast.core.datagram import (
    ANCILLARY_SPACE,
    Datagram,
    Payload,
    SocketAddress,
    check_payload_size,
    parse_ancillary,
    reply_address,
)
from multicast.core.hostscope import keep_on_host
from multicast.core.interfaces import zone_index
from multicast.exceptions import AddressError, SendError

__all__ = [
    "TRANSIENT_SEND_ERRORS",
    "destination",
    "receive_batch",
    "receive_datagram",
    "receive_ready",
    "send_datagram",
    "send_many",
    "send_many_to",
    "send_replies",
    "send_reply",
    "send_to",
    "socket_drops",
]


def destination(sock: socket.socket, address: str | IPAddress | Group, port: int) -> SocketAddress:
    """The ``sendto`` address of ``address`` and ``port`` for ``sock``.

    ``address`` is an IP literal of the socket's family (never a name: nothing is looked up
    in DNS), else :class:`~multicast.exceptions.AddressError`; ``port`` is 1-65535, else
    :class:`~multicast.exceptions.PortError`. An IPv6 ``%zone`` (of a :class:`Group` or in
    the text) becomes the scope index, asked once through ``sock``: keep the result to send
    there again.
    """
    number = parse_port(port)
    if isinstance(address, Group):
        parsed, zone = address.address, address.interface
    else:
        text, zone = split_zone(str(address), what="destination")
        parsed = parse_address(text, what="destination")
    if family_of(parsed) != sock.family:
        kind = "IPv4" if sock.family == socket.AF_INET else "IPv6"
        raise AddressError(f"destination {address!s} is not {kind}, as the socket is")
    host = parsed.compressed
    if sock.family == socket.AF_INET6:
        return (host, number, 0, zone_index(sock, zone) if zone else 0)
    if zone is not None:
        raise AddressError(f"destination {address!s}: a %zone is only meaningful for IPv6")
    return (host, number)


def _refused(error: OSError, where: SocketAddress) -> SendError:
    code = error.errno or errno.EIO
    text = f"cannot send to {where[0]} port {where[1]}: {error.strerror or error}"
    if code == errno.ENETUNREACH and parse_address(where[0]).is_multicast:
        text += (
            f"; no route for group {where[0]}: name the interface to send on (--iface on the "
            "command line), or run `multicast doctor`"
        )
    return SendError(code, text)


_ALWAYS_FITS = min(constants.MAX_PAYLOAD.values())  # bytes that fit one datagram of any family

TRANSIENT_SEND_ERRORS = frozenset({errno.ENOBUFS, errno.EAGAIN})
"""The ``errno`` of a send the kernel had no room for right now: a loss to count, not a
reason to stop (every other refusal is)."""


def send_to(sock: socket.socket, payload: Payload, where: SocketAddress) -> int:
    """Send one datagram to a resolved :func:`destination`; returns the bytes sent."""
    if len(payload) > _ALWAYS_FITS:  # only then the family matters (reading it costs)
        check_payload_size(sock.family, len(payload))
    if not keep_on_host(sock, where):  # TTL 0, loopback off: it would reach no one
        return len(payload)
    try:
        return sock.sendto(payload, where)
    except (BlockingIOError, TimeoutError):  # not refused: not sent yet
        raise
    except OSError as error:
        raise _refused(error, where) from error


def send_datagram(
    sock: socket.socket, payload: Payload, address: str | IPAddress | Group, port: int
) -> int:
    """Send one datagram to ``address`` (a group, or a unicast address for replies) and ``port``."""
    return send_to(sock, payload, destination(sock, address, port))


def send_reply(sock: socket.socket, payload: Payload, datagram: Datagram) -> int:
    """Send ``payload`` to the source of ``datagram``, by the interface it arrived on."""
    return send_to(sock, payload, reply_address(datagram))


def send_replies(
    sock: socket.socket,
    family: socket.AddressFamily,
    replies: Sequence[tuple[Payload, Datagram]],
) -> list[tuple[Datagram, OSError]]:
    """Send each payload to the source of its datagram, as :func:`send_reply` does, all in one
    ``sendmmsg`` call where the extension is built; ``family`` is the socket's.

    Returns the datagrams whose answer the kernel refused (or that would block), each with
    the error ``sendto`` would have raised; the others were answered. A payload too large
    for one datagram raises :class:`~multicast.exceptions.MessageSizeError` before any is
    sent.
    """
    pairs: list[tuple[Payload, SocketAddress]] = []
    answered: list[Datagram] = []
    for payload, datagram in replies:
        where = reply_address(datagram)
        if keep_on_host(sock, where):  # a source is no group: this is only the rule kept
            pairs.append((payload, where))
            answered.append(datagram)
    return [
        (answered[index], OSError(code, os.strerror(code)))
        for index, code in batch.send_each(sock, family, pairs)
    ]


def send_many_to(sock: socket.socket, payloads: Iterable[Payload], where: SocketAddress) -> int:
    """Send each payload as one datagram to a resolved :func:`destination`; how many were sent.

    Stops early, returning the count so far, when a non-blocking socket would block. On
    Linux the datagrams go out in batches of up to 64 (``sendmmsg``): a generator is
    advanced up to a batch ahead of what was sent, so one that paces its payloads should be
    sent one call per payload instead.
    """
    if not keep_on_host(sock, where):  # TTL 0, loopback off: it would reach no one
        return sum(1 for _ in payloads)
    if batch.AVAILABLE and not sock.gettimeout():  # blocking or non-blocking, no timeout
        name = batch.encode_address(sock.family, where)
        if name is not None:
            try:
                return batch.send(sock, payloads, name)
            except OSError as error:
                raise _refused(error, where) from error
    sent = 0
    for payload in payloads:
        try:
            send_to(sock, payload, where)
        except BlockingIOError:
            break
        sent += 1
    return sent


def send_many(
    sock: socket.socket,
    payloads: Iterable[Payload],
    address: str | IPAddress | Group,
    port: int,
) -> int:
    """Send each payload as one datagram to ``address`` and ``port``: :func:`send_many_to`."""
    return send_many_to(sock, payloads, destination(sock, address, port))


def receive_datagram(sock: socket.socket, buffer: bytearray, flags: int = 0) -> Datagram:
    """Read one datagram into ``buffer`` and return it with its metadata.

    A datagram longer than ``buffer`` comes back cut, with ``truncated`` set and ``size``
    giving its real length: never a silent cut.
    """
    nbytes, ancdata, msg_flags, address = sock.recvmsg_into(
        [buffer], ANCILLARY_SPACE, flags | constants.MSG_TRUNC
    )
    meta = parse_ancillary(ancdata)
    kept = min(nbytes, len(buffer))
    return Datagram(
        payload=bytes(buffer[:kept]),
        source=(address[0], address[1]),
        group=meta.group,
        interface=meta.interface,
        ttl=meta.ttl,
        truncated=bool(msg_flags & constants.MSG_TRUNC),
        size=nbytes,
        drops=meta.drops,
    )


def receive_ready(
    sock: socket.socket, buffer: bytearray, limit: int = 1024, *, spin: float = 0.0
) -> list[Datagram]:
    """Every datagram already queued on ``sock`` (at most ``limit``), without blocking.

    Payloads are cut at ``len(buffer)`` bytes. On Linux they are read in batches
    (``recvmmsg``, :mod:`multicast.core.batch`) into this thread's preallocated buffers,
    and ``buffer`` gives only that length. With ``spin`` seconds (Linux), an empty queue is
    polled without blocking for up to that long (busy-polling: latency for CPU).
    """
    if batch.AVAILABLE:
        return batch.receivers[len(buffer)].receive(sock.fileno(), limit, False, spin)
    ready: list[Datagram] = []
    while len(ready) < limit:
        try:
            ready.append(receive_datagram(sock, buffer, constants.MSG_DONTWAIT))
        except BlockingIOError:
            break
    return ready


def receive_batch(
    sock: socket.socket,
    buffer: bytearray,
    limit: int = 1024,
    timeout: float | None = None,
    *,
    spin: float = 0.0,
) -> list[Datagram]:
    """Wait for a datagram, then return it with every other already queued (at most ``limit``).

    ``timeout`` is the longest wait in seconds (None: as long as it takes); after it the
    list is empty. On Linux the wait and the batched read are one call into
    :mod:`multicast.core.batch`: a blocking socket with no timeout waits and reads in one
    ``recvmmsg`` system call (``MSG_WAITFORONE``), a ``timeout`` waits in ``poll()`` first.
    With ``spin`` seconds (Linux) the wait first busy-polls that long (at most ``timeout``)
    before it sleeps: a datagram that comes meanwhile is taken without a wake-up's delay.
    """
    if batch.AVAILABLE and (timeout is not None or sock.gettimeout() is None):
        return batch.receivers[len(buffer)].receive(sock.fileno(), limit, True, spin, timeout)
    if spin > 0:
        ready = receive_ready(
            sock, buffer, limit, spin=spin if timeout is None else min(spin, timeout)
        )
        if ready:
            return ready
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    deadline = deadline_of(timeout)
    while not poller.poll(poll_milliseconds(deadline)):
        if deadline is not None and time.monotonic() >= deadline:
            return []
    return receive_ready(sock, buffer, limit)


def socket_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel has dropped on ``sock`` so far (Linux), None where unknown.

    The ``SO_RXQ_OVFL`` count a :class:`Datagram` carries is the drops *before* it was
    queued; this reads the socket's own counter (the ``drops`` column of ``/proc/net/udp``
    or ``udp6``, found by the socket's inode), so drops after the last datagram read count too.
    """
    table = "udp" if sock.family == socket.AF_INET else "udp6"
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        # thread-self: the table of this thread's network namespace, which may not be the
        # process's (a thread that entered another namespace with setns).
        lines = Path(f"/proc/thread-self/net/{table}").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 13 and fields[9] == inode:
            return int(fields[12])
    return None
