"""What a payload says of its place in a stream: readers of each kind of payload, and the
per-flow choice of a reader. Pure code: no socket, no clock.

A reader turns one datagram into :class:`Stamp` s (a stream, a sequence number, a send time
if the payload has one), or a :class:`~multicast.tools.framing.Rejection` saying why it
refuses the payload. The kinds:

- ``frames``: the tools' own frames (:mod:`multicast.tools.framing`), one stamp per frame,
  the stream its sender id, the send time in nanoseconds;
- ``rtp``: RTP (RFC 3550 §5.1), the stream its SSRC, a 16-bit sequence number and the RTP
  timestamp at the payload type's clock rate (RFC 3551);
- ``mpegts``: MPEG transport stream over UDP, 188-byte packets, one stamp per packet that
  carries a payload, the stream its PID and the sequence its 4-bit continuity counter;
- ``iperf``: iperf2's UDP payload, its sequence number (64-bit, negative on the final
  datagram) and its send time (seconds and microseconds of the sender's clock);
- ``raw``: anything; no stamp, so only datagrams, bytes, rates and arrival jitter count.

:class:`Detector` picks the kind of one flow (``auto``): it never decides from one datagram,
but when :data:`DETECT_AFTER` datagrams in a row read, and follow one another, as one kind.

>>> rtp = bytes([0x80, 33]) + (7).to_bytes(2, "big") + (900).to_bytes(4, "big") + bytes(4)
>>> RtpStamps().read(rtp)
(Stamp(stream=0, sequence=7, sent=900, wrap=16, rate=90000, sent_wrap=32, restart=False, final=False),)
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Protocol

from multicast.exceptions import OptionError
from multicast.tools.framing import (
    TIME_WINDOW,
    FrameReader,
    Header,
    Reason,
    Rejection,
    frame_context,
    parse_header,
)

__all__ = [
    "DETECT_AFTER",
    "NANOSECONDS",
    "RTP_CLOCK_RATES",
    "TS_PACKET",
    "Detector",
    "FrameStamps",
    "IperfStamps",
    "Kind",
    "PayloadReader",
    "RawStamps",
    "RtpStamps",
    "Stamp",
    "Stamps",
    "TransportStreamStamps",
    "reader_for",
    "stream_text",
    "unwrap",
]

NANOSECONDS = 1_000_000_000
DETECT_AFTER = 3  # datagrams in a row that must agree before a flow's kind is decided


class Kind(enum.Enum):
    """A kind of payload, as ``--payload`` names it."""

    FRAMES = "frames"
    RTP = "rtp"
    MPEGTS = "mpegts"
    IPERF = "iperf"
    RAW = "raw"


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a payload says of its place in a stream."""

    stream: int  # which stream: a frame's sender id, an RTP SSRC, a TS PID
    sequence: int  # as carried: modulo 2**wrap when wrap is not 0
    sent: int | None = None  # send time in 1/rate seconds (sender's clock), if carried
    wrap: int = 0  # bits of the sequence number; 0: not wrapping
    rate: int = NANOSECONDS  # units of `sent` per second
    sent_wrap: int = 0  # bits of the send time; 0: not wrapping
    restart: bool = False  # the sender says its counter restarts here (TS discontinuity)
    final: bool = False  # the sender's last datagram (iperf2 negates its sequence number)


Stamps = tuple[Stamp, ...]


class PayloadReader(Protocol):
    """Reads :class:`Stamp` s from a payload: one kind of payload per reader."""

    kind: Kind

    def read(
        self,
        payload: bytes,
        *,
        truncated: bool = False,
        group: str | None = None,
        arrived: int | None = None,
    ) -> Stamps | Rejection:
        """The stamps (none, for a payload that places nothing in a stream), or why the
        payload is refused. A ``truncated`` payload was cut by a small receive buffer;
        ``group`` is where it arrived and ``arrived`` when (nanoseconds since the epoch),
        for a reader that checks them (the frames' with a key)."""
        ...


def stream_text(kind: Kind, stream: int | None) -> str | None:
    """How reports write a stream id: a frame's sender id in 16 hexadecimal digits (as
    ``stream`` reports it), an RTP SSRC in 8; None for a flow without one.

    >>> stream_text(Kind.RTP, 0x5EED), stream_text(Kind.MPEGTS, None)
    ('00005eed', None)
    """
    if stream is None:
        return None
    return f"{stream:016x}" if kind is Kind.FRAMES else f"{stream:08x}"


def unwrap(highest: int | None, value: int, bits: int) -> int:
    """``value``, a counter of ``bits`` bits, extended to the number nearest ``highest``
    (the highest extended number so far): half the range ahead of it, half behind.

    >>> unwrap(65535, 2, 16), unwrap(65538, 65534, 16), unwrap(None, 5, 4), unwrap(17, 0, 4)
    (65538, 65534, 5, 16)
    """
    if bits == 0 or highest is None:
        return value
    modulus = 1 << bits
    ahead = (value - highest) % modulus
    if ahead > modulus // 2:
        ahead -= modulus
    return highest + ahead


class FrameStamps:
    """Reads the tools' frames; with a key, only authentic frames sent to their group on
    ``port``, fresh (within ``time_window`` seconds of their arrival, and sent after the
    reader was made) and not seen before."""

    kind = Kind.FRAMES

    def __init__(
        self, key: bytes | None = None, *, port: int = 0, time_window: float = TIME_WINDOW
    ) -> None:
        self.frames = FrameReader(key, time_window=time_window)
        self.port = port  # the port frames were sent to: their tags cover it

    def read(
        self,
        payload: bytes,
        *,
        truncated: bool = False,
        group: str | None = None,
        arrived: int | None = None,
    ) -> Stamps | Rejection:
        if truncated:
            # A cut frame's tag cannot be checked: without a key its header still counts.
            header = parse_header(payload)
            if self.frames.key is None and isinstance(header, Header):
                return (Stamp(header.sender, header.sequence, header.timestamp),)
            return ()  # counted as truncated, and nothing more
        context = frame_context(group, self.port) if self.frames.key is not None else b""
        frame = self.frames.read(payload, context, arrived)
        if isinstance(frame, Rejection):
            return frame
        return (Stamp(frame.sender, frame.sequence, frame.timestamp),)


# RFC 3551's static payload types and their RTP clock rates (Hz).
RTP_CLOCK_RATES = {
    **dict.fromkeys((0, 3, 4, 5, 7, 8, 9, 12, 13, 15, 18), 8000),
    6: 16000,
    10: 44100,
    11: 44100,
    16: 11025,
    17: 22050,
    **dict.fromkeys((14, 25, 26, 28, 31, 32, 33, 34), 90000),
}
_RTP = struct.Struct("!BBHII")
_RTCP_TYPES = range(72, 77)  # RTCP packet types 200-204 read as marker + payload type


class RtpStamps:
    """Reads RTP headers (RFC 3550 §5.1). The clock rate of a dynamic payload type
    (96-127) is not in the packet: ``clock`` (90 kHz, video's, by default) stands for it."""

    kind = Kind.RTP

    def __init__(self, clock: int = 90000) -> None:
        if clock < 1:
            raise OptionError(f"RTP clock rate {clock} must be at least 1 Hz")
        self.clock = clock

    def read(
        self,
        payload: bytes,
        *,
        truncated: bool = False,
        group: str | None = None,
        arrived: int | None = None,
    ) -> Stamps | Rejection:
        if len(payload) < _RTP.size:
            return Rejection(Reason.FOREIGN, "shorter than an RTP header")
        first, second, sequence, timestamp, ssrc = _RTP.unpack_from(payload)
        payload_type = second & 0x7F
        if first >> 6 != 2 or payload_type in _RTCP_TYPES:
            return Rejection(Reason.FOREIGN, "not RTP version 2")
        header = _RTP.size + 4 * (first & 0x0F)
        if first & 0x10 and not truncated:  # an extension: 4 bytes, then its length in words
            if len(payload) < header + 4:
                return Rejection(Reason.MALFORMED, "RTP extension cut short")
            header += 4 + 4 * int.from_bytes(payload[header + 2 : header + 4], "big")
        padding = payload[-1] if first & 0x20 and payload and not truncated else 0
        if not truncated and (header + padding > len(payload) or (first & 0x20 and not padding)):
            return Rejection(Reason.MALFORMED, "RTP header, CSRCs or padding past the end")
        rate = RTP_CLOCK_RATES.get(payload_type, self.clock)
        return (Stamp(ssrc, sequence, timestamp, wrap=16, rate=rate, sent_wrap=32),)


TS_PACKET = 188
_TS_SYNC = 0x47
_TS_NULL_PID = 0x1FFF


class TransportStreamStamps:
    """Reads MPEG-TS packets (ISO/IEC 13818-1): one stamp per packet with a payload, its
    PID and continuity counter; a packet's discontinuity indicator restarts the count."""

    kind = Kind.MPEGTS

    def read(
        self,
        payload: bytes,
        *,
        truncated: bool = False,
        group: str | None = None,
        arrived: int | None = None,
    ) -> Stamps | Rejection:
        whole = len(payload) - len(payload) % TS_PACKET if truncated else len(payload)
        if whole == 0 or whole % TS_PACKET:
            return Rejection(Reason.FOREIGN, "not a whole number of 188-byte TS packets")
        stamps = []
        for offset in range(0, whole, TS_PACKET):
            if payload[offset] != _TS_SYNC:
                return Rejection(Reason.FOREIGN, f"no TS sync byte at offset {offset}")
            pid = (payload[offset + 1] & 0x1F) << 8 | payload[offset + 2]
            control = payload[offset + 3]
            if pid == _TS_NULL_PID or not control & 0x10:  # stuffing, or no payload: no count
                continue
            restart = bool(
                control & 0x20 and payload[offset + 4] > 0 and payload[offset + 5] & 0x80
            )
            stamps.append(Stamp(pid, control & 0x0F, wrap=4, restart=restart))
        return tuple(stamps)


_IPERF = struct.Struct("!iIIi")


class IperfStamps:
    """Reads iperf2's UDP datagram header: sequence number (low 32 bits, then high 32 bits;
    the final datagram carries it negated) and send time (seconds, microseconds)."""

    kind = Kind.IPERF

    def read(
        self,
        payload: bytes,
        *,
        truncated: bool = False,
        group: str | None = None,
        arrived: int | None = None,
    ) -> Stamps | Rejection:
        if len(payload) < _IPERF.size:
            return Rejection(Reason.FOREIGN, "shorter than an iperf2 header")
        low, seconds, microseconds, high = _IPERF.unpack_from(payload)
        if microseconds >= 1_000_000:
            return Rejection(Reason.FOREIGN, "microseconds past a second")
        # A 32-bit sender's final datagram negates the low word only.
        number = low if high == 0 else high << 32 | low & 0xFFFFFFFF
        sent = seconds * NANOSECONDS + microseconds * 1000
        return (Stamp(0, abs(number), sent, final=number < 0),)


class RawStamps:
    """Any payload: places nothing in a stream."""

    kind = Kind.RAW

    def read(
        self,
        payload: bytes,
        *,
        truncated: bool = False,
        group: str | None = None,
        arrived: int | None = None,
    ) -> Stamps | Rejection:
        return ()


def reader_for(
    kind: Kind,
    *,
    key: bytes | None = None,
    rtp_clock: int = 90000,
    port: int = 0,
    time_window: float = TIME_WINDOW,
) -> PayloadReader:
    """The reader of ``kind`` (frames checked with ``key`` for ``port`` and within
    ``time_window`` seconds; RTP's dynamic clock ``rtp_clock``)."""
    if kind is Kind.FRAMES:
        return FrameStamps(key, port=port, time_window=time_window)
    if kind is Kind.RTP:
        return RtpStamps(rtp_clock)
    if kind is Kind.MPEGTS:
        return TransportStreamStamps()
    if kind is Kind.IPERF:
        return IperfStamps()
    return RawStamps()


# How far one datagram's sequence may be from the last one's and still "follow" it.
_FOLLOWS = 64


def _near(last: Stamp, stamp: Stamp) -> bool:
    """Whether ``stamp`` is close enough to ``last``, of the same stream, to follow it."""
    modulus = 1 << (stamp.wrap or 64)
    step = (stamp.sequence - last.sequence) % modulus
    return stamp.wrap == 4 or min(step, modulus - step) <= _FOLLOWS


class _Candidate:
    """What one candidate reader read of an undecided flow."""

    def __init__(self, reader: PayloadReader) -> None:
        self.reader = reader
        self.read: list[Stamps] = []
        self.last: dict[int, Stamp] = {}  # the last stamp of each stream
        self.moved = False  # some stream's sequence number moved (a final one aside)

    def take(self, stamps: Stamps) -> bool:
        """Keep ``stamps`` if they follow what came before (False: they do not)."""
        for stamp in stamps:
            last = self.last.get(stamp.stream)
            if last is not None:
                if not _near(last, stamp):
                    return False
                self.moved |= stamp.sequence != last.sequence and not stamp.final
            self.last[stamp.stream] = stamp
        self.read.append(stamps)
        return True


class Detector:
    """Decides the kind of one flow's payload from its first datagrams.

    Each candidate reader reads every datagram until the flow is decided; a candidate that
    refuses one datagram, or whose stamps do not follow the previous datagram's, is out.
    The first candidate (in the order frames, RTP, MPEG-TS, iperf2) that read
    :data:`DETECT_AFTER` datagrams in a row, a sequence number moving, wins; when none is
    left then, the flow is raw. Until
    then :meth:`offer` keeps the stamps each candidate read, so that the chosen reader's
    count loses nothing.
    """

    def __init__(self, candidates: tuple[PayloadReader, ...]) -> None:
        self.candidates = [_Candidate(reader) for reader in candidates]
        self.chosen: _Candidate | None = None
        self.seen = 0

    def offer(self, payload: bytes, *, truncated: bool = False) -> PayloadReader | None:
        """Read one more datagram; the reader chosen, once one is (a :class:`RawStamps`
        when no candidate is left), else None."""
        self.seen += 1
        kept = []
        for candidate in self.candidates:
            stamps = candidate.reader.read(payload, truncated=truncated)
            if not isinstance(stamps, Rejection) and candidate.take(stamps):
                kept.append(candidate)
        self.candidates = kept
        if self.seen >= DETECT_AFTER:
            # MPEG-TS counters need not move: a stream of null packets is still TS.
            self.chosen = next((c for c in kept if c.moved or c.reader.kind is Kind.MPEGTS), None)
            return RawStamps() if self.chosen is None else self.chosen.reader
        return None if kept else RawStamps()

    def backlog(self) -> list[Stamps]:
        """The stamps the chosen reader read while the flow was undecided, in order (none
        for a raw flow)."""
        return [] if self.chosen is None else self.chosen.read
