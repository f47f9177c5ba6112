"""The reliable-transfer packets: encoding, and bounds-checked parsing of whatever arrives.

Pure code, no I/O. :func:`parse` takes any bytes and returns a packet or the :class:`Reason`
it is refused; it never raises and never allocates more than the datagram's size.

Every packet starts with a 20-byte header (network byte order)::

    offset size field
     0      4   magic b"MCRL"
     4      1   version (1)
     5      1   kind: 1 session, 2 file, 3 data (from the sender); 16 report, 17 nack
     6      1   protection: 0 none, 1 HMAC tag, 2 AES-GCM (see protection.py)
     7      1   flags: data 1 = repair; report 1 = done
     8      8   origin: random id of the sending run (the sender's is the session id)
    16      4   counter: packets this origin sent before this one (with origin, the nonce)
    20      n   body, by kind (below)
    20+n   16   tag, when protected

Bodies::

    session  symbol size u16, symbols per block u16, files u16, phase u8, closed u8,
             pass u16, passes u16 (0: open-ended), blocks u32, rate bit/s u64,
             receivers u16, then per receiver: id u64, state u8
    file     index u16, first block u32, size u64, SHA-256 (32), name length u16, name (UTF-8)
    data     block u32, symbol u8, 0 u8, repair round u16, pass u16, then the symbol's bytes
    report   session u64, blocks done u32, bytes done u64, loss ppm u32 and packets u32 (of
             the sender's, over the last interval), kernel drops u32, name length u8, name
    nack     session u64, entries u16, then per entry: block u32, symbols needed u16,
             repair round seen u16
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from multicast.core.datagram import Payload
from multicast.exceptions import MulticastError
from multicast.reliable import protection
from multicast.reliable.blocks import MAX_BLOCK_SYMBOLS, MAX_BLOCKS
from multicast.reliable.fec import MAX_SYMBOLS
from multicast.reliable.protection import Protection, Protector, Reason

__all__ = [
    "DATA_OVERHEAD",
    "HEADER_SIZE",
    "MAX_NACK_ENTRIES",
    "MAX_RECEIVERS_LISTED",
    "Data",
    "DataFields",
    "DataReader",
    "FileInfo",
    "Kind",
    "Nack",
    "NoncesExhaustedError",
    "Packet",
    "Phase",
    "ReceiverMark",
    "Report",
    "Session",
    "Stamper",
    "encode_file",
    "encode_nack",
    "encode_report",
    "encode_session",
    "parse",
]

MAGIC = b"MCRL"
VERSION = 1
_HEADER = struct.Struct("!4sBBBBQI")
HEADER_SIZE = _HEADER.size
assert HEADER_SIZE == protection.HEADER_SIZE  # where protection finds the nonce
_SESSION = struct.Struct("!HHHBBHHIQH")
_RECEIVER = struct.Struct("!QB")
_FILE = struct.Struct("!HIQ32sH")
_DATA = struct.Struct("!IBBHH")
_REPORT = struct.Struct("!QIQIIIB")
_NACK = struct.Struct("!QH")
_ENTRY = struct.Struct("!IHH")
# A data packet's header and fields, packed and read in one go (read: after the magic, version
# and kind, already checked).
_DATA_PACKET = struct.Struct(_HEADER.format + _DATA.format[1:])
_DATA_HEAD = struct.Struct("!6xBBQI" + _DATA.format[1:])
DATA_OVERHEAD = _DATA_PACKET.size  # bytes of a data packet besides symbol and tag
MAX_NACK_ENTRIES = 160  # blocks one NACK names (fits 1452 bytes with a tag)
MAX_RECEIVERS_LISTED = 140  # receivers one session packet lists
MAX_NAME = 255  # bytes of a file name
_MAX_COUNTER = 0xFFFFFFFF


class Kind(enum.IntEnum):
    SESSION = 1
    FILE = 2
    DATA = 3
    REPORT = 16
    NACK = 17


class Phase(enum.IntEnum):
    """Where a session is: gathering receivers, sending passes, repairing only, or over."""

    WAITING = 0
    SENDING = 1
    FLUSHING = 2
    ENDED = 3


class ReceiverMark(enum.IntEnum):
    """A receiver's state as the sender lists it in session packets."""

    JOINED = 1
    DONE = 2
    DROPPED = 3


@dataclass(frozen=True, slots=True)
class Session:
    """The sender's announcement: the session's parameters, where it is, who it heard."""

    origin: int
    counter: int
    symbol_size: int
    block_symbols: int
    files: int
    phase: Phase
    closed: bool
    pass_number: int
    passes: int
    blocks: int
    rate: int
    receivers: tuple[tuple[int, ReceiverMark], ...] = ()


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One file of the session: its place in the block sequence, size, digest and name."""

    origin: int
    counter: int
    index: int
    first_block: int
    size: int
    digest: bytes
    name: str


@dataclass(frozen=True, slots=True)
class Data:
    """One symbol of a block (data when ``symbol`` < the block's data symbols, else parity)."""

    origin: int
    counter: int
    block: int
    symbol: int
    round: int
    pass_number: int
    repair: bool
    payload: memoryview | bytes


@dataclass(frozen=True, slots=True)
class Report:
    """A receiver's progress (also its join, and its heartbeat)."""

    origin: int
    counter: int
    session: int
    done: bool
    blocks_done: int
    bytes_done: int
    loss_ppm: int
    packets: int  # the sender's packets the loss is counted over
    drops: int
    name: str


@dataclass(frozen=True, slots=True)
class Nack:
    """A receiver's request: for each block, how many more symbols it needs."""

    origin: int
    counter: int
    session: int
    entries: tuple[tuple[int, int, int], ...]  # (block, symbols needed, repair round seen)


Packet = Session | FileInfo | Data | Report | Nack


class NoncesExhaustedError(MulticastError, RuntimeError):
    """An origin sent 2**32 packets: its counter (the nonce's low part) would repeat."""


class Stamper:
    """Headers for one origin: each packet takes the next counter value."""

    def __init__(self, origin: int, protector: Protector) -> None:
        self.origin = origin
        self.protector = protector
        self.counter = 0

    def _next(self) -> int:
        counter = self.counter
        if counter > _MAX_COUNTER:
            raise NoncesExhaustedError(f"origin {self.origin:016x} has sent 2**32 packets")
        self.counter = counter + 1
        return counter

    def seal(self, kind: Kind, body: bytes, flags: int = 0) -> bytes:
        header = _HEADER.pack(
            MAGIC, VERSION, kind, self.protector.mode, flags, self.origin, self._next()
        )
        return self.protector.seal(header + body)

    def data_packets(  # noqa: PLR0917 (positional: the sender's hot path)
        self,
        slots: Sequence[memoryview],
        symbols: Sequence[int],
        block: int,
        round_: int,
        pass_number: int,
        repair: bool,
    ) -> list[Payload]:
        """Data packets of ``block`` built in place, one per slot: ``slots[n]`` holds symbol
        ``symbols[n]``'s bytes after :data:`DATA_OVERHEAD` bytes left for the header and
        fields, and room for the tag (:attr:`Protector.overhead`) after them. Each header
        takes the next counter; the sealed datagrams are returned (the sender's hot path:
        one call per burst, no copy of the symbols but for encryption)."""
        if not slots:
            return []
        counter = self.counter
        if counter + len(slots) - 1 > _MAX_COUNTER:
            raise NoncesExhaustedError(f"origin {self.origin:016x} has sent 2**32 packets")
        pack, kind = _DATA_PACKET.pack_into, int(Kind.DATA)
        mode, flags, origin = int(self.protector.mode), int(repair), self.origin
        round_, pass_number = round_ & 0xFFFF, pass_number & 0xFFFF
        for slot, symbol in zip(slots, symbols, strict=True):
            pack(
                slot,
                0,
                MAGIC,
                VERSION,
                kind,
                mode,
                flags,
                origin,
                counter,
                block,
                symbol,
                0,
                round_,
                pass_number,
            )
            counter += 1
        self.counter = counter
        return self.protector.seal_slots(slots, len(slots[0]) - self.protector.overhead)

    def data(  # noqa: PLR0917 (the fields of a data packet, in their order)
        self,
        block: int,
        symbol: int,
        round_: int,
        pass_number: int,
        payload: bytes | bytearray | memoryview,
        repair: bool,
    ) -> bytes:
        """One data packet carrying ``payload`` (a tool's or a test's: the sender builds its
        packets in place, :meth:`data_packets`)."""
        slot = bytearray(DATA_OVERHEAD + len(payload) + self.protector.overhead)
        slot[DATA_OVERHEAD : DATA_OVERHEAD + len(payload)] = payload
        (packet,) = self.data_packets(
            [memoryview(slot)], [symbol], block, round_, pass_number, repair
        )
        return bytes(packet)


def _name_bytes(name: str, limit: int) -> bytes:
    raw = name.encode()
    if len(raw) > limit:
        raise ValueError(f"name {name!r} is over {limit} bytes")
    return raw


def encode_session(
    stamper: Stamper,
    *,
    symbol_size: int,
    block_symbols: int,
    files: int,
    phase: Phase,
    closed: bool,
    pass_number: int,
    passes: int,
    blocks: int,
    rate: int,
    receivers: tuple[tuple[int, ReceiverMark], ...] = (),
) -> bytes:
    listed = receivers[:MAX_RECEIVERS_LISTED]
    body = _SESSION.pack(
        symbol_size,
        block_symbols,
        files,
        phase,
        int(closed),
        pass_number & 0xFFFF,
        passes,
        blocks,
        min(rate, (1 << 64) - 1),
        len(listed),
    ) + b"".join(_RECEIVER.pack(ident, mark) for ident, mark in listed)
    return stamper.seal(Kind.SESSION, body)


def encode_file(
    stamper: Stamper, *, index: int, first_block: int, size: int, digest: bytes, name: str
) -> bytes:
    raw = _name_bytes(name, MAX_NAME)
    body = _FILE.pack(index, first_block, size, digest, len(raw)) + raw
    return stamper.seal(Kind.FILE, body)


def encode_report(
    stamper: Stamper,
    *,
    session: int,
    done: bool,
    blocks_done: int,
    bytes_done: int,
    loss_ppm: int,
    packets: int,
    drops: int,
    name: str,
) -> bytes:
    raw = name.encode()[:255]
    body = _REPORT.pack(
        session,
        min(blocks_done, 0xFFFFFFFF),
        bytes_done,
        min(loss_ppm, 1_000_000),
        min(packets, 0xFFFFFFFF),
        min(drops, 0xFFFFFFFF),
        len(raw),
    )
    return stamper.seal(Kind.REPORT, body + raw, int(done))


def encode_nack(
    stamper: Stamper, *, session: int, entries: list[tuple[int, int, int]] | tuple[()]
) -> bytes:
    if len(entries) > MAX_NACK_ENTRIES:
        raise ValueError(f"{len(entries)} NACK entries; at most {MAX_NACK_ENTRIES} fit")
    body = _NACK.pack(session, len(entries)) + b"".join(
        _ENTRY.pack(block, need, round_ & 0xFFFF) for block, need, round_ in entries
    )
    return stamper.seal(Kind.NACK, body)


# --- parsing: everything received is hostile until checked --------------------------------------


def parse(data: bytes | bytearray | memoryview, protector: Protector) -> Packet | Reason:
    """The packet in ``data``, or why it is refused. Never raises."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    if len(view) < HEADER_SIZE or view[:4] != MAGIC:
        return Reason.FOREIGN
    _, version, kind, protection, flags, origin, counter = _HEADER.unpack_from(view)
    if version != VERSION:
        return Reason.UNSUPPORTED
    body = protector.open(protection, view)
    if isinstance(body, Reason):
        return body
    if kind == Kind.DATA:
        return _data(origin, counter, flags, body)
    if kind == Kind.SESSION:
        return _session(origin, counter, body)
    if kind == Kind.FILE:
        return _file(origin, counter, body)
    if kind == Kind.REPORT:
        return _report(origin, counter, flags, body)
    if kind == Kind.NACK:
        return _nack(origin, counter, body)
    return Reason.UNSUPPORTED


DataFields = tuple[int, int, int, int, int, int, int, memoryview | bytes]
"""(origin, counter, flags, block, symbol, round, pass, symbol bytes) of a data packet."""


class DataReader:
    """:func:`parse` for many datagrams, with a fast path for data packets (the receiver's
    hot path: checks and one unpack each, no packet object)."""

    def __init__(self, protector: Protector) -> None:
        self.protector = protector
        self._data_prefix = MAGIC + bytes([VERSION, Kind.DATA])
        self._plain = protector.accepts_plain

    def read_many(
        self, datagrams: Iterable[bytes]
    ) -> tuple[list[DataFields], list[Packet | Reason]]:
        """The data packets' fields as tuples (in order), and every other datagram parsed or
        the reason it is refused (in order)."""
        data: list[DataFields] = []
        others: list[Packet | Reason] = []
        prefix, protector, plain = self._data_prefix, self.protector, self._plain
        unpack, unpack_fields, open_body = _DATA_HEAD.unpack_from, _DATA.unpack_from, protector.open
        unprotected, encrypted = int(Protection.NONE), int(Protection.ENCRYPTED)
        for datagram in datagrams:
            if datagram[:6] != prefix or len(datagram) <= DATA_OVERHEAD:
                others.append(parse(datagram, protector))
                continue
            protection, flags, origin, counter, block, symbol, zero, round_, pass_number = unpack(
                datagram
            )
            view = memoryview(datagram)
            if protection == unprotected and plain:
                payload = view[DATA_OVERHEAD:]
            else:
                body = open_body(protection, view)
                if isinstance(body, Reason):
                    others.append(body)
                    continue
                if len(body) <= _DATA.size:
                    others.append(Reason.MALFORMED)
                    continue
                if protection == encrypted:  # the fields were encrypted too
                    block, symbol, zero, round_, pass_number = unpack_fields(body)
                payload = body[_DATA.size :]
            if zero or flags & ~1:
                others.append(Reason.MALFORMED)
                continue
            data.append((origin, counter, flags, block, symbol, round_, pass_number, payload))
        return data, others


def _data(origin: int, counter: int, flags: int, body: memoryview) -> Data | Reason:
    if len(body) <= _DATA.size or flags & ~1:
        return Reason.MALFORMED
    block, symbol, zero, round_, pass_number = _DATA.unpack_from(body)
    if zero:
        return Reason.MALFORMED
    return Data(
        origin, counter, block, symbol, round_, pass_number, bool(flags), body[_DATA.size :]
    )


def _session(origin: int, counter: int, body: memoryview) -> Session | Reason:
    if len(body) < _SESSION.size:
        return Reason.MALFORMED
    (size, symbols, files, phase, closed, pass_number, passes, blocks, rate, listed) = (
        _SESSION.unpack_from(body)
    )
    if len(body) != _SESSION.size + listed * _RECEIVER.size or listed > MAX_RECEIVERS_LISTED:
        return Reason.MALFORMED
    if (
        not (16 <= size <= 65000 and 1 <= symbols <= MAX_BLOCK_SYMBOLS)
        or phase > Phase.ENDED
        or blocks > MAX_BLOCKS
    ):
        return Reason.MALFORMED
    if closed > 1 or (files == 0 and blocks != 0):
        return Reason.MALFORMED
    receivers = []
    for at in range(_SESSION.size, len(body), _RECEIVER.size):
        ident, mark = _RECEIVER.unpack_from(body, at)
        if not ReceiverMark.JOINED <= mark <= ReceiverMark.DROPPED:
            return Reason.MALFORMED
        receivers.append((ident, ReceiverMark(mark)))
    return Session(
        origin,
        counter,
        size,
        symbols,
        files,
        Phase(phase),
        bool(closed),
        pass_number,
        passes,
        blocks,
        rate,
        tuple(receivers),
    )


def _text(raw: memoryview) -> str | None:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _file(origin: int, counter: int, body: memoryview) -> FileInfo | Reason:
    if len(body) < _FILE.size:
        return Reason.MALFORMED
    index, first, size, digest, length = _FILE.unpack_from(body)
    if len(body) != _FILE.size + length or not 0 < length <= MAX_NAME or size >= 1 << 62:
        return Reason.MALFORMED
    name = _text(body[_FILE.size :])
    if name is None:
        return Reason.MALFORMED
    return FileInfo(origin, counter, index, first, size, digest, name)


def _report(origin: int, counter: int, flags: int, body: memoryview) -> Report | Reason:
    if len(body) < _REPORT.size or flags & ~1:
        return Reason.MALFORMED
    session, blocks, done_bytes, loss, packets, drops, length = _REPORT.unpack_from(body)
    if len(body) != _REPORT.size + length or loss > 1_000_000:
        return Reason.MALFORMED
    name = _text(body[_REPORT.size :])
    if name is None:
        return Reason.MALFORMED
    return Report(
        origin, counter, session, bool(flags), blocks, done_bytes, loss, packets, drops, name
    )


def _nack(origin: int, counter: int, body: memoryview) -> Nack | Reason:
    if len(body) < _NACK.size:
        return Reason.MALFORMED
    session, count = _NACK.unpack_from(body)
    if count > MAX_NACK_ENTRIES or len(body) != _NACK.size + count * _ENTRY.size:
        return Reason.MALFORMED
    entries = tuple(_ENTRY.unpack_from(body, _NACK.size + n * _ENTRY.size) for n in range(count))
    if any(need == 0 or need >= MAX_SYMBOLS for _, need, _ in entries):
        return Reason.MALFORMED
    return Nack(origin, counter, session, entries)
