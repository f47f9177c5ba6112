"""The batched fast path without sockets: its argument checks, the control-message records
it splits and the socket addresses it encodes, on made-up bytes."""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicast.core import batch, ctypes_io
from multicast.core.datagram import Datagram
from multicast.exceptions import UnsupportedError


def test_receiver_arguments_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="size"):
        batch.BatchReceiver(-1)
    with pytest.raises(ValueError, match="slots"):
        batch.BatchSender(slots=0)
    monkeypatch.setattr(ctypes_io, "_recvmmsg", None)
    with pytest.raises(UnsupportedError, match="recvmmsg"):
        batch.BatchReceiver(64)


# --- the control messages ----------------------------------------------------------------------


def _cmsg(level: int, kind: int, data: bytes) -> bytes:
    """One control message as the kernel lays it out, padded to the next record."""
    header = struct.pack("@Nii", socket.CMSG_LEN(len(data)), level, kind)
    return (header + data).ljust(socket.CMSG_SPACE(len(data)), b"\0")


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 100), st.binary(max_size=40))))
def test_control_records_split_as_recvmsg_does(records: list[tuple[int, int, bytes]]) -> None:
    control = b"".join(_cmsg(*record) for record in records)
    assert ctypes_io._control_records(control) == records


@given(st.binary(max_size=200))
def test_control_records_take_any_bytes(control: bytes) -> None:
    offset = 0
    for record in ctypes_io._control_records(control):
        whole = _cmsg(*record)
        length = socket.CMSG_LEN(len(record[2]))
        # A record is the bytes at its place, its header's length included: it never reads
        # past the buffer or past its own end.
        assert control[offset : offset + length] == whole[:length]
        offset += len(whole)
    rest = control[offset:]
    if len(rest) >= socket.CMSG_LEN(0):  # reading stopped at a record that is not whole
        (length,) = struct.unpack_from("@N", rest)
        assert not socket.CMSG_LEN(0) <= length <= len(rest)


# --- socket addresses --------------------------------------------------------------------------


def test_encode_address() -> None:
    assert batch.encode_address(socket.AF_INET, ("239.1.2.3", 0x1234)) == (
        struct.pack("=H", socket.AF_INET) + b"\x12\x34" + bytes([239, 1, 2, 3]) + bytes(8)
    )
    v6 = batch.encode_address(socket.AF_INET6, ("ff11::1", 80, 0, 7))
    assert v6 is not None and len(v6) == 28
    assert v6[8:24] == socket.inet_pton(socket.AF_INET6, "ff11::1")
    assert struct.unpack("=I", v6[24:]) == (7,)
    for host in ("localhost", "", "<broadcast>", "239.1.2.3%lo"):  # never looked up
        assert batch.encode_address(socket.AF_INET, (host, 80)) is None
    assert batch.encode_address(socket.AF_INET6, ("239.1.2.3", 80, 0, 0)) is None
    assert batch.encode_address(socket.AF_INET6, ("ff11::1%lo", 80, 0, 0)) is None


def test_encode_address_keeps_the_flow_info() -> None:
    """As the C extension's encoder: the flow info in network order, each number modulo
    2**32; an IPv4 address takes (and ignores) the two."""
    v6 = batch.encode_address(socket.AF_INET6, ("ff11::1", 80, 0x12345, 2**32 + 7))
    assert v6 is not None
    assert v6[4:8] == struct.pack("!I", 0x12345)
    assert struct.unpack("=I", v6[24:]) == (7,)
    assert batch.encode_address(socket.AF_INET, ("239.1.2.3", 80, 5, 6)) == (
        batch.encode_address(socket.AF_INET, ("239.1.2.3", 80))
    )


@pytest.mark.parametrize(
    ("destination", "error"),
    [
        (("239.1.2.3", 70_000), OverflowError),
        (("239.1.2.3", -1), OverflowError),
        (("239.1.2.3", 80.0), TypeError),
        ((b"239.1.2.3", 80), TypeError),
        (("239.1.2.3",), TypeError),
        (("239.1.2.3", 80, 0, 0, 0), TypeError),
        (["239.1.2.3", 80], TypeError),
        (("239.1.2.3", 80, "flow"), TypeError),
        (("239.1.2.3\0", 80), ValueError),
    ],
)
def test_encode_address_refuses_what_the_extension_refuses(
    destination: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        batch.encode_address(socket.AF_INET, destination)


# --- one receiver shared by threads --------------------------------------------------------------


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Two local datagram socket pairs, each with one datagram queued on its reading end."""
    made = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(2)]
    for index, (one, two) in enumerate(made):
        two.setblocking(False)
        one.send(b"for reader %d" % index)
    yield made
    for one, two in made:
        one.close()
        two.close()


def _race_at(
    step: int, pairs: list[tuple[socket.socket, socket.socket]], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[int], list[list[bytes]]] | None:
    """Thread A calls ``receive`` on a shared receiver; just before its ``step``-th line in
    ``receive``, thread B calls it too and stays inside its read until A has read.

    The receivers each thread read with (by ``id``) and what each got; None when A was
    already reading at that step.
    """
    shared = ctypes_io.BatchReceiver(64, 4)
    original = ctypes_io.BatchReceiver._receive
    b_inside, a_done = threading.Event(), threading.Event()
    used: dict[str, int] = {}
    got: dict[str, list[bytes]] = {}

    def watched(self: ctypes_io.BatchReceiver, *arguments: Any) -> list[Datagram]:
        name = threading.current_thread().name
        used[name] = id(self)
        if name == "B":
            b_inside.set()
            a_done.wait(5)
        result: list[Datagram] = original(self, *arguments)
        return result

    def read(name: str, index: int) -> None:
        got[name] = [d.payload for d in shared.receive(pairs[index][1].fileno(), 10)]

    b = threading.Thread(target=read, args=("B", 1), name="B")
    lines = 0

    def step_through(frame: FrameType, event: str, _: object) -> Any:
        nonlocal lines
        if b.is_alive() or b_inside.is_set() or "A" in used:
            return None
        if event == "line":
            if lines == step:
                b.start()
                b_inside.wait(5)
                return None
            lines += 1
        return step_through

    def traced(frame: FrameType, event: str, _: object) -> Any:
        if event == "call" and frame.f_code is ctypes_io.BatchReceiver.receive.__code__:
            return step_through
        return None

    def run_a() -> None:
        sys.settrace(traced)
        try:
            read("A", 0)
        finally:
            sys.settrace(None)
            a_done.set()

    with monkeypatch.context() as patched:
        patched.setattr(ctypes_io.BatchReceiver, "_receive", watched)
        a = threading.Thread(target=run_a, name="A")
        a.start()
        a.join(10)
        if not b_inside.is_set():
            return None
        b.join(10)
    return [used["A"], used["B"]], [got["A"], got["B"]]


def test_threads_sharing_a_receiver_never_read_into_the_same_buffers(
    pairs: list[tuple[socket.socket, socket.socket]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wherever a second thread comes in while the first is starting to read (between any
    two of its lines: a thread switch may fall there), the two read with different
    receivers, each getting its own datagram."""
    step = 0
    while (outcome := _race_at(step, pairs, monkeypatch)) is not None:
        (a_used, b_used), received = outcome
        assert a_used != b_used, f"both threads read into one receiver's buffers (step {step})"
        assert received == [[b"for reader 0"], [b"for reader 1"]]
        for index, (one, _) in enumerate(pairs):
            one.send(b"for reader %d" % index)
        step += 1
    assert step >= 2  # a thread switch could fall before and after taking the receiver
