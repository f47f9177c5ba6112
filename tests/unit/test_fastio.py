"""The batch backends without a network: hostile control data, a local socket pair, leaks.

The C extension's control-data parser is fed any bytes and well-formed records of every kind
it knows, cut short or padded, and must say exactly what the core's own parser
(:func:`~multicast.core.datagram.parse_ancillary` over the ctypes path's record split) says.
Datagrams travel through an ``AF_UNIX`` socket pair (local: allowed in tests/unit), carrying
control records the receivers do not know (``SCM_RIGHTS``), some cut short (``MSG_CTRUNC``).
Where CPython's ``_testcapi`` is there, each memory allocation of a call is made to fail in
turn: the failure must leave no descriptor, mapping or busy flag behind.
"""

from __future__ import annotations

import array
import gc
import os
import socket
import struct
import sys
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicast.core import Datagram, constants, ctypes_io, receive_ready
from multicast.core.datagram import ANCILLARY_SPACE, parse_ancillary

fastio = pytest.importorskip("multicast.core._fastio", reason="the C extension is not built")

KINDS = [  # every (level, type) the parsers read, and two they do not
    (socket.IPPROTO_IP, constants.IP_PKTINFO),
    (socket.IPPROTO_IPV6, constants.IPV6_PKTINFO),
    (socket.IPPROTO_IP, constants.IP_TTL),
    (socket.IPPROTO_IPV6, constants.IPV6_HOPLIMIT),
    (socket.SOL_SOCKET, constants.SO_RXQ_OVFL),
    (socket.SOL_SOCKET, socket.SCM_RIGHTS),
    (socket.IPPROTO_IP, 99),
]


def _cmsg(level: int, kind: int, data: bytes, length: int | None = None) -> bytes:
    """One control record as the kernel lays it out; ``length`` overrides its length field."""
    header = struct.pack(
        "@Nii", socket.CMSG_LEN(len(data)) if length is None else length, level, kind
    )
    return (header + data).ljust(socket.CMSG_SPACE(len(data)), b"\0")


def _core_parse(control: bytes) -> tuple[str | None, int | None, int | None, int]:
    meta = parse_ancillary(ctypes_io._control_records(control))
    return meta.group, meta.interface, meta.ttl, meta.drops


def test_control_space_is_the_cores() -> None:
    assert fastio.CONTROL_SPACE == ANCILLARY_SPACE


@given(st.binary(max_size=300))
def test_any_control_bytes_parse_as_the_core_parses_them(control: bytes) -> None:
    assert fastio.parse_control(control) == _core_parse(control)


records = st.tuples(
    st.sampled_from(KINDS),
    st.binary(max_size=24),
    st.one_of(st.none(), st.integers(0, 2**64 - 1)),  # a lying length field, now and then
)


@given(st.lists(records, max_size=6), st.integers(0, 8))
def test_records_whole_short_or_lying_parse_as_the_core_parses_them(
    parts: list[tuple[tuple[int, int], bytes, int | None]], cut: int
) -> None:
    control = b"".join(_cmsg(level, kind, data, length) for (level, kind), data, length in parts)
    control = control[: len(control) - cut] if cut else control
    assert fastio.parse_control(control) == _core_parse(control)


def test_the_last_record_of_a_kind_wins() -> None:
    ttl = (socket.IPPROTO_IP, constants.IP_TTL)
    control = _cmsg(*ttl, struct.pack("=i", 5)) + _cmsg(*ttl, struct.pack("=i", 9))
    assert fastio.parse_control(control) == (None, None, 9, 0)
    info = struct.pack("=i4s4s", 3, bytes(4), bytes([239, 1, 2, 3]))
    drops = struct.pack("=I", 2**32 - 1)
    control = _cmsg(socket.IPPROTO_IP, constants.IP_PKTINFO, info) + _cmsg(
        socket.SOL_SOCKET, constants.SO_RXQ_OVFL, drops
    )
    assert fastio.parse_control(control) == ("239.1.2.3", 3, None, 2**32 - 1)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="size"):
        fastio.Receiver(-1)
    with pytest.raises(ValueError, match="slots"):
        fastio.Receiver(64, 0)
    with pytest.raises(TypeError, match="writable slot"):
        fastio.configure(int, print)


# --- through a local socket pair ----------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    one, two = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with one, two:
        two.setblocking(False)
        yield one, two


def _with_descriptors(count: int) -> list[tuple[int, int, bytes]]:
    """An ``SCM_RIGHTS`` record passing ``count`` copies of standard input."""
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0] * count).tobytes())]


@pytest.mark.usefixtures("io_backend")
def test_foreign_and_cut_control_records_are_skipped(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    one, two = pair
    before = len(os.listdir("/proc/self/fd"))
    one.sendmsg([b"plain"])
    one.sendmsg([b"one descriptor"], _with_descriptors(1))
    one.sendmsg([b"too many to fit"], _with_descriptors(64))  # cut: MSG_CTRUNC
    one.sendmsg([b"x" * 100])
    got = receive_ready(two, bytearray(50))
    expected = [(b"plain", 5), (b"one descriptor", 14), (b"too many to fit", 15), (b"x" * 50, 100)]
    assert [(d.payload, d.size) for d in got] == expected
    assert [d.truncated for d in got] == [False, False, False, True]
    for datagram in got:
        assert (datagram.source, datagram.group, datagram.interface, datagram.ttl) == (
            ("", 0),
            None,
            None,
            None,
        )
        assert datagram.drops == 0
    assert len(os.listdir("/proc/self/fd")) == before  # passed descriptors were not kept


def test_no_reference_is_leaked_over_100000_datagrams(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Every object the extension makes is freed and every reference it takes is given back:
    allocated blocks, the references to the class (each Datagram holds one), to the shared
    source tuple and to None, True and False come back to where they were (a leak of one per
    datagram would show as 100,000)."""
    one, two = pair
    receiver = fastio.Receiver(64)
    payloads = [bytes([index]) * (index % 80) for index in range(64)]

    def run(rounds: int) -> int:
        received = 0
        for _ in range(rounds):
            for payload in payloads:
                one.send(payload)
            got = receiver.receive(two.fileno(), 1000)
            received += len(got)
            assert got[-1].payload == payloads[-1][:64]
        return received

    def counts() -> list[int]:
        gc.collect()
        shared = [Datagram, source, None, True, False]
        return [sys.getallocatedblocks(), *(sys.getrefcount(item) for item in shared)]

    run(10)  # warm caches, free lists and the allocator
    one.send(b"")
    source = receiver.receive(two.fileno(), 1)[0].source
    before = counts()
    assert run(100_000 // len(payloads) + 1) > 100_000
    after = counts()
    assert [abs(later - earlier) < 1000 for earlier, later in zip(before, after, strict=True)] == [
        True
    ] * len(before), (before, after)


# --- when memory runs out ------------------------------------------------------------------------

ATTEMPTS = 1000  # more allocations than any call below makes


def _out_of_memory_at(number: int, call: Callable[[], object]) -> bool:
    """Run ``call`` with its ``number``-th memory allocation (from 0) failing: whether it
    raised MemoryError (False: it made no more allocations than that, and succeeded)."""
    testcapi = pytest.importorskip("_testcapi", reason="CPython's _testcapi is not installed")
    testcapi.set_nomemory(number, number + 1)
    try:
        call()
    except MemoryError:
        return True
    finally:
        testcapi.remove_mem_hooks()
    return False


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_passed_descriptors_are_closed_whichever_allocation_fails(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Whichever allocation of receive() fails, the descriptors passed with each datagram of
    the batch it read are closed, not only with those it made before the failure."""
    one, two = pair
    receiver = fastio.Receiver(64, 8)
    before = _open_descriptors()
    for number in range(ATTEMPTS):
        for _ in range(4):
            one.sendmsg([b"passing"], _with_descriptors(2))
        failed = _out_of_memory_at(number, lambda: receiver.receive(two.fileno(), 100))
        receiver.receive(two.fileno(), 100)  # what the failed call left queued
        assert _open_descriptors() == before, f"allocation {number} failed"
        if not failed:
            break
    else:
        pytest.fail(f"receive() failed with each of {ATTEMPTS} allocations failing")
    assert number > 4  # some of the failures were in making the datagrams


def _virtual_size() -> int:
    """Bytes of address space this process holds (the VmSize of /proc/self/status)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


def test_a_failed_init_keeps_no_buffer_and_can_be_retried(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    one, two = pair
    size, slots = 1 << 20, 16  # a mapping of 16 MiB
    receiver = fastio.Receiver.__new__(fastio.Receiver)
    with pytest.raises(RuntimeError, match="not initialized"):
        receiver.receive(two.fileno(), 1)
    before = _virtual_size()
    for number in range(ATTEMPTS):
        if not _out_of_memory_at(number, lambda: fastio.Receiver.__init__(receiver, size, slots)):
            break
    else:
        pytest.fail(f"Receiver() failed with each of {ATTEMPTS} allocations failing")
    assert _virtual_size() - before < 2 * size * slots  # the mapping it holds, not one a try
    with pytest.raises(RuntimeError, match="initialized once"):
        fastio.Receiver.__init__(receiver, size, slots)
    one.send(b"after the failures")
    assert [d.payload for d in receiver.receive(two.fileno(), 10)] == [b"after the failures"]


class _Tracked:
    """An object the collector tracks, allocated without a free list."""


@pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="from 3.12 the collector runs between bytecodes only"
)
def test_the_receiver_is_busy_before_python_code_can_run_in_receive(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Any allocation may run the collector, and so Python code (its callbacks, finalizers),
    which may let another thread in: by then the receiver must say it uses its buffers. Its
    first allocation (its result list) is made to start a collection half of the time."""
    one, two = pair
    receiver = fastio.Receiver(64)
    inside = [False]
    seen: list[bool] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if inside[0] and phase == "start":
            seen.append(receiver.busy)

    threshold = gc.get_threshold()
    gc.callbacks.append(watch)
    gc.set_threshold(1)  # a collection when a second tracked object is allocated
    try:
        for count in range(20):
            one.send(b"x")
            held = [[] for _ in range(100)]  # no free list left: a new list is allocated
            gc.collect(0)
            tracked = _Tracked() if count % 2 else None  # the first allocation after it
            inside[0] = True
            receiver.receive(two.fileno(), 10)
            inside[0] = False
            del held, tracked
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(watch)
    assert len(seen) >= 20
    assert all(seen), seen
    assert not receiver.busy
