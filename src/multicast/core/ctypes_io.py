"""The ctypes backend of :mod:`multicast.core.batch`: ``recvmmsg`` and ``sendmmsg`` through
ctypes, the fallback wherever the C extension is not built (or ``MULTICAST_IO=ctypes``).

Everything the kernel reads from or writes into is allocated once per object; source
addresses and ancillary data repeat from datagram to datagram, so their decoded forms are
remembered by their raw bytes and the core's
:func:`~multicast.core.datagram.parse_ancillary` runs only on records not seen before.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import operator
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from multicast.core import constants
from multicast.core.clock import deadline as deadline_of
from multicast.core.clock import poll_milliseconds
from multicast.core.datagram import (
    ANCILLARY_SPACE,
    Datagram,
    Payload,
    SocketAddress,
    check_payload_size,
    parse_ancillary,
)
from multicast.exceptions import OptionError, UnsupportedError

__all__ = [
    "AVAILABLE",
    "SLOTS",
    "BatchReceiver",
    "BatchSender",
    "encode_address",
    "send_each",
    "sender",
]

SLOTS = 64  # datagrams per system call
_SEND_CAPACITY = 256 * 1024  # payload bytes per sendmmsg; room for the largest datagram
_MEMORY_LIMIT = 1024  # decoded origins remembered before starting afresh
_TRUNCATED = constants.MSG_TRUNC
_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0x40000000)  # descriptors passed: not inherited
_RECEIVE_FLAGS = constants.MSG_DONTWAIT | _TRUNCATED | _CLOEXEC
_WAIT_FLAGS = constants.MSG_WAITFORONE | _TRUNCATED | _CLOEXEC
_WOULD_BLOCK = frozenset({errno.EAGAIN, errno.EWOULDBLOCK})
_LONGEST_POLL = 2**31 - 1  # milliseconds: what poll() takes in one call (24 days)


class _Iovec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("length", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),  # socklen_t
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("hdr", _Msghdr), ("length", ctypes.c_uint))


_SIZE_T = "Q" if ctypes.sizeof(ctypes.c_size_t) == 8 else "I"
_MMSGHDR_SIZE = ctypes.sizeof(_Mmsghdr)
_NAME_SPACE = 32  # a sockaddr_in6 (28 bytes), kept 8-aligned
_CONTROL_SPACE = ANCILLARY_SPACE
_ORIGIN_SPACE = _NAME_SPACE + _CONTROL_SPACE


def _fields(size: int, fields: Sequence[tuple[int, str]]) -> struct.Struct:
    """A struct reading the ``(offset, code)`` fields of a C structure of ``size`` bytes."""
    parts, at = ["="], 0
    for offset, code in fields:
        parts.append(f"{offset - at}x{code}")
        at = offset + struct.calcsize("=" + code)
    parts.append(f"{size - at}x")
    return struct.Struct("".join(parts))


_HEADER = _fields(  # what the kernel reports per message: controllen, flags, length
    _MMSGHDR_SIZE,
    [
        (_Msghdr.controllen.offset, _SIZE_T),
        (_Msghdr.flags.offset, "i"),
        (_Mmsghdr.length.offset, "I"),
    ],
)
_IOVEC = struct.Struct(f"={_SIZE_T}{_SIZE_T}")
_FAMILY = struct.Struct("=H")  # sa_family_t, host order
_PORT = struct.Struct("!H")
_FLOW = struct.Struct("!I")  # sin6_flowinfo, network order
_SCOPE = struct.Struct("=I")  # sin6_scope_id, host order
_INT = struct.Struct("=i")
_CMSG_HEADER = struct.Struct(f"={_SIZE_T}ii")  # cmsg_len, cmsg_level, cmsg_type
_CMSG_DATA = socket.CMSG_LEN(0)
_CMSG_ALIGN = ctypes.sizeof(ctypes.c_size_t)

_SyscallFunction = Callable[..., int]
_Origin = tuple[tuple[str, int], str | None, int | None, int | None, int]


def _libc_function(name: str) -> _SyscallFunction | None:
    """``name`` from the C library; None off Linux.

    Without ``argtypes``: converting through them costs microseconds per call, so callers
    pass Python ints for C ints and :class:`ctypes.c_void_p` for pointers.
    """
    if not constants.LINUX:
        return None
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    result: _SyscallFunction = function
    return result


_recvmmsg = _libc_function("recvmmsg")
_sendmmsg = _libc_function("sendmmsg")
_sendto = _libc_function("sendto")
AVAILABLE = _recvmmsg is not None and _sendmmsg is not None
"""Whether this platform has ``recvmmsg`` and ``sendmmsg`` (Linux with glibc or musl)."""


def _syscall(function: _SyscallFunction | None, name: str) -> _SyscallFunction:
    if function is None:
        raise UnsupportedError(f"batched datagrams ({name}) are supported on Linux only")
    return function


def _address_of(buffer: bytearray | mmap.mmap) -> tuple[ctypes.Array[ctypes.c_char], int]:
    """A ctypes view pinning ``buffer`` (it can no longer be resized or closed) and its address."""
    view = (ctypes.c_char * len(buffer)).from_buffer(buffer)
    return view, ctypes.addressof(view)


def _failed(function: _SyscallFunction, arguments: tuple[int | ctypes.c_void_p | None, ...]) -> int:
    """After a batch system call returned -1: 0 when it would block, the count of a retry
    after a signal (EINTR); other errors raise.

    Retrying goes through Python code, which lets Python run the signal's handler first: a
    KeyboardInterrupt ends a blocking wait.
    """
    while True:
        code = ctypes.get_errno()
        if code in _WOULD_BLOCK:
            return 0
        if code != errno.EINTR:
            raise OSError(code, os.strerror(code))
        count = function(*arguments)
        if count >= 0:
            return count


def _control_records(control: bytes) -> list[tuple[int, int, bytes]]:
    """Split a control buffer into ``(level, type, data)`` records, as ``recvmsg`` gives them."""
    records = []
    offset = 0
    while offset + _CMSG_HEADER.size <= len(control):
        length, level, kind = _CMSG_HEADER.unpack_from(control, offset)
        if length < _CMSG_DATA or offset + length > len(control):
            break
        records.append((level, kind, control[offset + _CMSG_DATA : offset + length]))
        offset += (length + _CMSG_ALIGN - 1) & ~(_CMSG_ALIGN - 1)
    return records


def _close_passed(records: Iterable[tuple[int, int, bytes]]) -> bool:
    """Close the descriptors of ``SCM_RIGHTS`` records (only an ``AF_UNIX`` peer sends them):
    a receiver of datagrams takes none, and keeps nothing a hostile peer pushed on it.
    Whether there were any."""
    passed = [
        descriptor
        for level, kind, data in records
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
        for (descriptor,) in _INT.iter_unpack(data[: len(data) - len(data) % _INT.size])
    ]
    for descriptor in passed:
        os.close(descriptor)
    return bool(passed)


def _decode_source(name: bytes) -> tuple[str, int]:
    """Host and port of a ``sockaddr_in`` or ``sockaddr_in6`` (trailing bytes ignored);
    ``("", 0)`` for any other address (an ``AF_UNIX`` peer), as the extension gives it.

    The kernel writes a whole address of the socket's family, or (``AF_UNIX``, unnamed) none:
    what a slot holds is always of that family, or zeros.
    """
    family = _FAMILY.unpack_from(name)[0]
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, name[4:8]), _PORT.unpack_from(name, 2)[0]
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, name[8:24]), _PORT.unpack_from(name, 2)[0]
    return ("", 0)


def _readable(fd: int, deadline: float) -> bool:
    """Whether a datagram is queued on the socket ``fd`` by ``deadline`` (``time.monotonic``),
    waiting in ``poll()`` until then (a closed socket raises, as ``recvmmsg`` would)."""
    if fd < 0:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(poll_milliseconds(deadline)))


class BatchReceiver:
    """Reads up to :data:`SLOTS` datagrams of up to ``size`` bytes per ``recvmmsg`` call.

    A datagram longer than ``size`` comes back cut, with ``truncated`` set and its real
    ``size``, exactly as :func:`~multicast.core.io.receive_datagram` reports it.
    A call made while another thread reads with its buffers gets buffers of its own.
    """

    def __init__(self, size: int, slots: int = SLOTS) -> None:
        if size < 0 or slots <= 0:
            raise OptionError(f"need a size >= 0 and slots > 0, not {size} and {slots}")
        self._recvmmsg = _syscall(_recvmmsg, "recvmmsg")
        self.size = size
        self.slots = slots
        # An anonymous mapping: only the pages datagrams reach are ever committed.
        self._payloads = mmap.mmap(-1, max(size, 1) * slots)
        self._origins = bytearray(_ORIGIN_SPACE * slots)  # per slot: source address, control
        self._iovecs = (_Iovec * slots)()
        self._headers = bytearray(_MMSGHDR_SIZE * slots)
        self._pins = [_address_of(region) for region in (self._payloads, self._origins)]
        payloads, origins = (address for _, address in self._pins)
        messages = (_Mmsghdr * slots).from_buffer(self._headers)
        for index, (iovec, message) in enumerate(zip(self._iovecs, messages, strict=True)):
            iovec.base, iovec.length = payloads + index * size, size
            message.hdr.name = origins + index * _ORIGIN_SPACE
            message.hdr.namelen = _NAME_SPACE
            message.hdr.iov = ctypes.addressof(iovec)
            message.hdr.iovlen = 1
            message.hdr.control = origins + index * _ORIGIN_SPACE + _NAME_SPACE
            message.hdr.controllen = _CONTROL_SPACE
        self._messages = messages  # pins the headers
        self._pointer = ctypes.c_void_p(ctypes.addressof(messages))
        self._fresh = memoryview(bytes(self._headers))  # the headers before the kernel wrote
        self._written = 0  # headers the kernel wrote into since they were last reset
        self._views = tuple(memoryview(r) for r in (self._headers, self._origins, self._payloads))
        self._holder = threading.Lock()  # held by the thread reading into the buffers
        # Decoded (source, group, interface, ttl, drops) by the raw bytes of a slot's origin.
        self._known: dict[bytes, _Origin] = {}

    def receive(
        self,
        fd: int,
        limit: int,
        wait: bool = False,
        spin: float = 0.0,
        timeout: float | None = None,
    ) -> list[Datagram]:
        """Every datagram already queued on the socket ``fd`` (at most ``limit``), without
        blocking.

        With ``wait``, a blocking socket first waits for one datagram, in the same call; with
        a ``timeout`` (seconds), any socket waits for one that long at most. With ``spin``
        seconds, it first polls without blocking until one comes or the time is up. A call
        made while another thread reads with this receiver's buffers gets buffers of its own.
        """
        holder = self._holder
        if not holder.acquire(blocking=False):
            return BatchReceiver(self.size, self.slots).receive(fd, limit, wait, spin, timeout)
        try:
            return self._receive(fd, limit, wait, spin, timeout)
        finally:
            holder.release()

    @property
    def busy(self) -> bool:
        """Whether a thread reads into the buffers (and may have released the GIL)."""
        return self._holder.locked()

    def _receive(
        self, fd: int, limit: int, wait: bool, spin: float, timeout: float | None
    ) -> list[Datagram]:
        if spin > 0 or timeout is not None:
            deadline = deadline_of(timeout)
            if spin > 0:
                until = time.monotonic() + spin
                until = until if deadline is None else min(until, deadline)
                while not (spun := self._receive(fd, limit, False, 0.0, None)) and (
                    time.monotonic() < until
                ):
                    pass
                if spun or not (wait or deadline is not None):
                    return spun
            if deadline is not None:
                if not _readable(fd, deadline):
                    return []
                wait = False
        recvmmsg, pointer = self._recvmmsg, self._pointer
        flags = _WAIT_FLAGS if wait else _RECEIVE_FLAGS
        ready: list[Datagram] = []
        while len(ready) < limit:
            wanted = limit - len(ready)
            wanted = wanted if wanted < self.slots else self.slots
            if self._written:
                used = self._written * _MMSGHDR_SIZE
                self._headers[:used] = self._fresh[:used]
            self._written = wanted  # until the call says how many it filled
            count = recvmmsg(fd, pointer, wanted, flags, None)
            if count < 0:
                count = _failed(recvmmsg, (fd, pointer, wanted, flags, None))
            self._written = count
            if count:
                self._collect(count, ready)
            if count < wanted:  # the queue ran dry
                break
            flags = _RECEIVE_FLAGS
        return ready

    def _collect(self, count: int, ready: list[Datagram]) -> None:
        """Turn the first ``count`` slots into datagrams: the per-datagram hot loop.

        It runs on every wake-up, often for one datagram: nothing is set up before the loop.
        """
        append, known, size, datagram = ready.append, self._known, self.size, Datagram
        headers, origins, payloads = self._views
        for index in range(count):
            controllen, flags, length = _HEADER.unpack_from(headers, index * _MMSGHDR_SIZE)
            at = index * _ORIGIN_SPACE
            raw = origins[at : at + _NAME_SPACE + controllen].tobytes()
            origin = known.get(raw)
            if origin is None:
                origin = self._learn(raw)
            source, group, interface, ttl, drops = origin
            at = index * size
            append(
                datagram(
                    payloads[at : at + (length if length < size else size)].tobytes(),
                    source,
                    group,
                    interface,
                    ttl,
                    (flags & _TRUNCATED) != 0,
                    length,
                    drops,
                )
            )

    def _learn(self, raw: bytes) -> _Origin:
        """Decode a slot's source address and control messages (with the core's parser).

        Descriptors an ``AF_UNIX`` peer passed are closed (see :func:`_close_passed`), and
        such a slot is not remembered: the next ones must be closed too.
        """
        records = _control_records(raw[_NAME_SPACE:])
        meta = parse_ancillary(records)
        origin = (_decode_source(raw), meta.group, meta.interface, meta.ttl, meta.drops)
        if _close_passed(records):
            return origin
        if len(self._known) >= _MEMORY_LIMIT:
            self._known.clear()
        self._known[raw] = origin
        return origin


def encode_address(family: socket.AddressFamily, destination: SocketAddress) -> bytes | None:
    """The ``sockaddr`` of a ``(host, port[, flow info[, scope]])`` destination of ``family``,
    by the C extension's rules; None when the host is no numeric address of that family
    (nothing is ever looked up).

    Anything but a tuple of a host string, a port and at most two more integers raises
    TypeError; a port outside 0-65535 raises OverflowError (as ``sendto`` does). An IPv6
    address keeps its flow info and scope (each taken modulo 2**32, as C does).
    """
    if not (isinstance(destination, tuple) and 2 <= len(destination) <= 4):
        raise TypeError(f"a destination is (host, port[, flow info, scope]), not {destination!r}")
    host, port, *more = destination
    if not isinstance(host, str):
        raise TypeError(f"a destination's host is a string, not {host!r}")
    port = operator.index(port)
    flow, scope = (*(operator.index(number) & 0xFFFFFFFF for number in more), 0, 0)[:2]
    if not 0 <= port <= 0xFFFF:
        raise OverflowError("port must be 0-65535.")
    try:
        packed = socket.inet_pton(family, host)
    except OSError:
        return None
    head = _FAMILY.pack(family) + _PORT.pack(port)
    if family == socket.AF_INET:
        return head + packed + bytes(8)
    return head + _FLOW.pack(flow) + packed + _SCOPE.pack(scope)


def send_each(
    fd: int, family: socket.AddressFamily, pairs: list[tuple[Payload, SocketAddress]]
) -> list[tuple[int, int]]:
    """Send each payload to its own address over the socket ``fd``, one ``sendto`` each: the
    ctypes face of :func:`multicast.core.batch.send_each`, with the extension's rules.

    Every address is encoded by :func:`encode_address` first (nothing is looked up); one whose
    host is no numeric address of ``family`` is not sent, but refused with EAFNOSUPPORT.
    Returns the refused pairs (or those that would block), by index, with their errno. A
    payload too large for one datagram, or an address of the wrong shape, raises before any
    is sent.
    """
    send = _syscall(_sendto, "sendto")
    limit = constants.MAX_PAYLOAD[family]
    messages: list[tuple[bytes, bytes | None]] = []
    for payload, address in pairs:
        data = payload if type(payload) is bytes else bytes(payload)
        if len(data) > limit:
            check_payload_size(family, len(data))  # raises, naming the size
        messages.append((data, encode_address(family, address)))
    refused = []
    for index, (data, name) in enumerate(messages):
        if name is None:
            refused.append((index, errno.EAFNOSUPPORT))
            continue
        while send(fd, data, len(data), 0, name, len(name)) < 0:
            code = ctypes.get_errno()
            if code != errno.EINTR:  # after a signal: its handler runs, then sendto again
                refused.append((index, code))
                break
    return refused


class BatchSender:
    """Sends up to :data:`SLOTS` datagrams to one destination per ``sendmmsg`` call.

    Payloads are copied into one preallocated region; the message headers all point at one
    preallocated destination address. One thread at a time: :func:`sender` gives each
    thread its own.
    """

    def __init__(self, slots: int = SLOTS, capacity: int = _SEND_CAPACITY) -> None:
        largest = max(constants.MAX_PAYLOAD.values())
        if slots <= 0 or capacity < largest:
            raise OptionError(f"need slots > 0 and a capacity >= {largest} bytes")
        self._sendmmsg = _syscall(_sendmmsg, "sendmmsg")
        self.slots = slots
        self.capacity = capacity
        self._payloads = mmap.mmap(-1, capacity)  # committed only as far as payloads reach
        self._name = bytearray(_NAME_SPACE)
        self._iovecs = bytearray(_IOVEC.size * slots)
        self._headers = bytearray(_MMSGHDR_SIZE * slots)
        self._pins = [_address_of(region) for region in (self._payloads, self._name, self._iovecs)]
        self._payloads_address = self._pins[0][1]
        name, iovecs = self._pins[1][1], self._pins[2][1]
        self._messages = (_Mmsghdr * slots).from_buffer(self._headers)
        for index, message in enumerate(self._messages):
            message.hdr.name = name
            message.hdr.iov = iovecs + index * _IOVEC.size
            message.hdr.iovlen = 1
        self._address = ctypes.addressof(self._messages)
        self._pointer = ctypes.c_void_p(self._address)
        self._namelen = 0
        self.busy = False  # inside send(): a payload iterator that sends needs other buffers

    def send(self, sock: socket.socket, payloads: Iterable[Payload], name: bytes) -> int:
        """Send each payload to the destination ``name`` (see :func:`encode_address`).

        Returns how many were sent; stops early when a non-blocking socket would block. A
        payload too large for one datagram, or an error raised by ``payloads``, is raised
        after the payloads before it were sent.
        """
        self.busy = True
        try:
            return self._send(sock.fileno(), sock.family, payloads, name)
        finally:
            self.busy = False

    def _send(
        self,
        fd: int,
        family: socket.AddressFamily,
        payloads: Iterable[Payload],
        name: bytes,
    ) -> int:
        self._set_destination(name)
        view, limit = memoryview(self._payloads), constants.MAX_PAYLOAD[family]
        iterator = iter(payloads)
        carried: Payload | None = None  # taken from the iterator, not yet copied
        sent = 0
        while True:
            count = used = 0
            failure: Exception | None = None
            exhausted = False
            try:
                while count < self.slots:
                    payload = next(iterator) if carried is None else carried
                    carried = None
                    if isinstance(payload, memoryview):
                        payload = payload.cast("B")  # as sendto would: its bytes, whatever format
                    size = len(payload)
                    if size > limit:
                        check_payload_size(family, size)  # raises, naming the size
                    if used + size > self.capacity:
                        carried = payload
                        break
                    view[used : used + size] = payload
                    _IOVEC.pack_into(
                        self._iovecs, count * _IOVEC.size, self._payloads_address + used, size
                    )
                    used += size
                    count += 1
            except StopIteration:
                exhausted = True
            except Exception as error:  # raised once the payloads before it are sent
                failure = error
            done = self._transmit(fd, count)
            sent += done
            if done < count:
                return sent
            if failure is not None:
                raise failure
            if exhausted:
                return sent

    def _set_destination(self, name: bytes) -> None:
        self._name[: len(name)] = name
        if len(name) != self._namelen:
            for message in self._messages:
                message.hdr.namelen = len(name)
            self._namelen = len(name)

    def _transmit(self, fd: int, count: int) -> int:
        done = 0
        while done < count:
            at = (
                self._pointer if not done else ctypes.c_void_p(self._address + done * _MMSGHDR_SIZE)
            )
            result = self._sendmmsg(fd, at, count - done, 0)
            if result < 0:
                result = _failed(self._sendmmsg, (fd, at, count - done, 0))
            if result == 0:  # would block
                break
            done += result
        return done


_local = threading.local()


def sender() -> BatchSender:
    """This thread's :class:`BatchSender` (a new one while that one is busy)."""
    found: BatchSender | None = _local.__dict__.get("sender")
    if found is None:
        found = _local.sender = BatchSender()
    return BatchSender() if found.busy else found
