"""The batched fast path without sockets: its argument checks, the control-message records
it splits and the socket addresses it encodes, on made-up bytes."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicast.core import batch, ctypes_io
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
    assert batch.encode_address(socket.AF_INET, ("localhost", 80)) is None
    assert batch.encode_address(socket.AF_INET6, ("239.1.2.3", 80, 0, 0)) is None
    assert batch.encode_address(socket.AF_INET, ("239.1.2.3", 70_000)) is None
