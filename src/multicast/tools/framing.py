"""The tools' frame: a fixed 32-byte header, a payload, and an optional HMAC-SHA256 tag.

Pure code, no I/O. :func:`parse_frame` takes any bytes and returns either a :class:`Frame` or a
:class:`Rejection` naming why the bytes are not an acceptable frame; it never raises.

Layout (network byte order)::

    offset size field
     0      4   magic  b"MCTF"
     4      1   version (1)
     5      1   flags: 1 = tagged (HMAC-SHA256 tag after the payload), 2 = probe, 4 = reply
     6      2   payload length
     8      8   sender id (random per run)
    16      8   sequence number
    24      8   send time, nanoseconds since the epoch (the sender's clock)
    32      n   payload
    32+n   32   tag = HMAC-SHA256(key, context + header + payload), only with the tagged flag

The **context** of a tag is where the frame was sent: the group's address (4 or 16 bytes)
and the port (2 bytes), see :func:`frame_context`; it is not sent, each end knows it. A
tagged frame replayed to another group or port does not verify. A :class:`FrameReader` with
a key also refuses a frame whose send time is more than its ``time_window`` (default
:data:`TIME_WINDOW`, 30 s) from its own clock, a frame sent before the reader started
(replayed after a restart), and a frame it has already accepted (:class:`ReplayWindow`).

>>> key = b"k" * 16
>>> where = frame_context("239.1.2.3", 5000)
>>> data = encode_frame(7, 1, b"hi", key=key, context=where)
>>> frame = parse_frame(data, key, where)
>>> frame.sender, frame.sequence, frame.payload, frame.authenticated
(7, 1, b'hi', True)
>>> parse_frame(data[:-1] + bytes([data[-1] ^ 1]), key, where).reason
<Reason.FORGED: 'forged'>
>>> parse_frame(data, key, frame_context("239.1.2.3", 5001)).reason  # another port
<Reason.FORGED: 'forged'>
>>> parse_frame(b"hello").reason
<Reason.FOREIGN: 'foreign'>
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from multicast.core import Group, split_zone
from multicast.exceptions import AuthKeyError, MessageSizeError, OptionError

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "MIN_KEY_SIZE",
    "REPLY_PAYLOAD_SIZE",
    "TAG_SIZE",
    "TIME_WINDOW",
    "VERSION",
    "Flag",
    "Frame",
    "FrameReader",
    "FrameWriter",
    "Header",
    "Reason",
    "Rejection",
    "ReplayWindow",
    "check_sender",
    "encode_frame",
    "encode_reply",
    "frame_context",
    "frame_size",
    "parse_frame",
    "parse_header",
    "parse_reply",
    "reply_frame",
]

MAGIC = b"MCTF"
VERSION = 1
_HEADER = struct.Struct("!4sBBHQQQ")
HEADER_SIZE = _HEADER.size
TAG_SIZE = hashlib.sha256().digest_size
MIN_KEY_SIZE = 16
# The payload length field is 16 bits; a whole frame must also fit one UDP datagram.
_MAX_PAYLOAD = 0xFFFF
_MAX_U64 = (1 << 64) - 1
_REPLY = struct.Struct("!QB")  # prober's sender id, TTL the probe arrived with
REPLY_PAYLOAD_SIZE = _REPLY.size
TIME_WINDOW = 30.0
"""Seconds a tagged frame's send time may differ from the reader's clock (either way)."""


class Flag(enum.IntFlag):
    """Header flags."""

    NONE = 0
    TAGGED = 1  # an HMAC-SHA256 tag follows the payload
    PROBE = 2  # a ping probe: pong answers it
    REPLY = 4  # pong's answer to a probe


# Plain ints: `~` on an IntFlag complements only the defined bits, and IntFlag operators run
# Python code, too slow for every frame. _FLAGS gives each raw value's Flag, made once.
_TAGGED, _PROBE, _REPLY_FLAG = int(Flag.TAGGED), int(Flag.PROBE), int(Flag.REPLY)
_KNOWN_FLAGS = _TAGGED | _PROBE | _REPLY_FLAG
_FLAGS = tuple(Flag(value) for value in range(_KNOWN_FLAGS + 1))
_Fields = tuple[int, int, int, int, int]  # raw flags, payload length, sender, sequence, send time


class Reason(enum.Enum):
    """Why some bytes are not an acceptable frame."""

    FOREIGN = "foreign"  # too short or no magic: some other protocol
    UNSUPPORTED = "unsupported"  # our magic, a version this code does not speak
    MALFORMED = "malformed"  # our magic and version, but flags or length do not add up
    UNAUTHENTICATED = "unauthenticated"  # a key is in use and the frame carries no tag
    FORGED = "forged"  # the tag does not match group, port, header and payload under the key
    REPLAYED = "replayed"  # authentic, but seen before, older than the window, or pre-start
    STALE = "stale"  # authentic, but sent further from the reader's clock than its time window


@dataclass(frozen=True, slots=True)
class Rejection:
    """A datagram that is not an acceptable frame, and why."""

    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class Frame:
    """One parsed frame. ``authenticated`` is True only when a key verified its tag."""

    sender: int
    sequence: int
    timestamp: int
    payload: bytes
    flags: Flag = Flag.NONE
    authenticated: bool = False

    @property
    def size(self) -> int:
        """Length of the frame on the wire."""
        return frame_size(len(self.payload), tagged=bool(self.flags & Flag.TAGGED))


def frame_size(payload_size: int, *, tagged: bool) -> int:
    """Bytes on the wire for a frame with ``payload_size`` bytes of payload."""
    return HEADER_SIZE + payload_size + (TAG_SIZE if tagged else 0)


def _check_key(key: bytes) -> bytes:
    if len(key) < MIN_KEY_SIZE:
        raise AuthKeyError(f"the shared key has {len(key)} bytes; at least {MIN_KEY_SIZE} needed")
    return key


def _check_fields(sender: object, sequence: object, timestamp: object, payload_size: int) -> None:
    for name, value in (("sender id", sender), ("sequence", sequence), ("timestamp", timestamp)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_U64:
            raise OptionError(f"{name} {value!r} is not a whole number from 0 to 2**64-1")
    if payload_size > _MAX_PAYLOAD:
        raise MessageSizeError(
            f"frame payload of {payload_size} bytes is over the {_MAX_PAYLOAD}-byte limit"
        )


def check_sender(sender: int) -> int:
    """``sender`` if it is a sender id the header can carry (0 to 2**64-1), else
    :class:`~multicast.exceptions.OptionError`."""
    _check_fields(sender, 0, 0, 0)
    return sender


def frame_context(group: str | IPv4Address | IPv6Address | Group | None, port: int) -> bytes:
    """What a frame's tag covers besides its bytes: the address of the group it was sent to
    (an IPv6 ``%zone`` aside) and the port. ``group`` None (a destination the receiving
    socket did not report) gives a context no sender uses, so no tag verifies under it.

    >>> frame_context("239.1.2.3", 5000).hex()
    'ef0102031388'
    """
    if not 0 <= port <= 0xFFFF:
        raise OptionError(f"port {port} is out of range (0-65535)")
    if group is None:
        return port.to_bytes(2, "big")
    if isinstance(group, Group):
        address: IPv4Address | IPv6Address = group.address
    elif isinstance(group, str):
        address = ip_address(split_zone(group)[0])
    else:
        address = group
    return address.packed + port.to_bytes(2, "big")


def _tag(key: bytes, context: bytes, data: bytes | bytearray | memoryview) -> bytes:
    mac = hmac.new(key, context, "sha256")
    mac.update(data)
    return mac.digest()


def encode_frame(
    sender: int,
    sequence: int,
    payload: bytes = b"",
    *,
    flags: Flag = Flag.NONE,
    timestamp: int | None = None,
    key: bytes | None = None,
    context: bytes = b"",
) -> bytes:
    """One frame as bytes; with ``key`` it is tagged (HMAC-SHA256 over ``context``, header
    and payload; the tools' context is :func:`frame_context` of the destination)."""
    stamp = time.time_ns() if timestamp is None else timestamp
    _check_fields(sender, sequence, stamp, len(payload))
    raw = _wire_flags(flags, key)
    body = _HEADER.pack(MAGIC, VERSION, raw, len(payload), sender, sequence, stamp) + payload
    return body + _tag(_check_key(key), context, body) if key is not None else body


def _wire_flags(flags: Flag, key: bytes | None) -> int:
    """The flags byte of a frame: ``flags``, tagged exactly when there is a key."""
    return (int(flags) & ~_TAGGED) | (_TAGGED if key is not None else 0)


class FrameWriter:
    """Frames of one fixed wire size from one sender, packed into a buffer reused per frame.

    The stream tool sends thousands of frames a second, ping a probe each (``flags``
    :attr:`Flag.PROBE`); only the header (and the tag) change. With ``key``, tags cover
    ``context`` (:func:`frame_context` of the destination).
    """

    def __init__(
        self,
        sender: int,
        size: int,
        *,
        key: bytes | None = None,
        context: bytes = b"",
        flags: Flag = Flag.NONE,
    ) -> None:
        self.key = _check_key(key) if key is not None else None
        self.context = context
        tagged = key is not None
        smallest = frame_size(0, tagged=tagged)
        if size < smallest:
            raise MessageSizeError(
                f"frame size {size} is below the {smallest}-byte minimum "
                f"(header{' and tag' if tagged else ''})"
            )
        payload_size = size - smallest
        _check_fields(sender, 0, 0, payload_size)
        self.sender = sender
        self.flags = _wire_flags(flags, key)
        self.payload_size = payload_size
        self.buffer = bytearray(size)

    def write(self, sequence: int, timestamp: int | None = None) -> bytearray:
        """The frame for ``sequence``, in the writer's buffer (valid until the next call)."""
        stamp = time.time_ns() if timestamp is None else timestamp
        if not (0 <= sequence <= _MAX_U64 and 0 <= stamp <= _MAX_U64):
            _check_fields(self.sender, sequence, stamp, self.payload_size)
        _HEADER.pack_into(
            self.buffer,
            0,
            MAGIC,
            VERSION,
            self.flags,
            self.payload_size,
            self.sender,
            sequence,
            stamp,
        )
        if self.key is not None:
            signed = HEADER_SIZE + self.payload_size
            self.buffer[signed:] = _tag(self.key, self.context, memoryview(self.buffer)[:signed])
        return self.buffer


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed header of a frame, read without checking length or tag."""

    flags: Flag
    length: int  # payload length the header announces
    sender: int
    sequence: int
    timestamp: int


def parse_header(data: bytes | bytearray | memoryview) -> Header | Rejection:
    """Read the header of untrusted bytes (magic, version, flags); never raises.

    This is all that can be read from a truncated datagram; :func:`parse_frame` checks the rest.
    """
    fields = _read_frame(data, None, b"", whole=False)
    if isinstance(fields, Rejection):
        return fields
    flags, length, sender, sequence, stamp = fields
    return Header(_FLAGS[flags], length, sender, sequence, stamp)


def _read_frame(
    data: bytes | bytearray | memoryview, key: bytes | None, context: bytes, *, whole: bool = True
) -> _Fields | Rejection:
    """The frame rules, all here: the raw fields of ``data`` (bytes, or a view of bytes), or
    why it is rejected. The header's (magic, version, flags), then for a ``whole`` frame its
    length and, with ``key``, its tag under ``context``. Never raises."""
    if len(data) < HEADER_SIZE:
        return Rejection(Reason.FOREIGN, f"{len(data)} bytes without the frame magic")
    magic, version, flags, length, sender, sequence, stamp = _HEADER.unpack_from(data)
    if magic != MAGIC:
        return Rejection(Reason.FOREIGN, f"{len(data)} bytes without the frame magic")
    if version != VERSION:
        return Rejection(
            Reason.UNSUPPORTED, f"frame version {version} (this code speaks {VERSION})"
        )
    if flags & ~_KNOWN_FLAGS:
        return Rejection(Reason.MALFORMED, f"unknown flag bits {flags:#04x}")
    if flags & _PROBE and flags & _REPLY_FLAG:
        return Rejection(Reason.MALFORMED, "both probe and reply flags")
    if not whole:
        return flags, length, sender, sequence, stamp
    body_end = HEADER_SIZE + length
    expected = body_end + TAG_SIZE if flags & _TAGGED else body_end
    if len(data) != expected:
        return Rejection(
            Reason.MALFORMED, f"{len(data)} bytes where the header announces {expected}"
        )
    if key is not None:
        if not flags & _TAGGED:
            return Rejection(Reason.UNAUTHENTICATED, "no tag, and a key is in use")
        if not hmac.compare_digest(_tag(key, context, data[:body_end]), bytes(data[body_end:])):
            return Rejection(Reason.FORGED, f"tag does not verify (sender {sender:016x})")
    return flags, length, sender, sequence, stamp


def _frame(view: memoryview, fields: _Fields, authenticated: bool) -> Frame:
    flags, length, sender, sequence, stamp = fields
    payload = bytes(view[HEADER_SIZE : HEADER_SIZE + length])
    return Frame(sender, sequence, stamp, payload, _FLAGS[flags], authenticated)


def parse_frame(
    data: bytes | bytearray | memoryview, key: bytes | None = None, context: bytes = b""
) -> Frame | Rejection:
    """Read a frame from untrusted bytes: a :class:`Frame`, or a :class:`Rejection` saying why not.

    With ``key``, only frames whose tag verifies under ``context`` (where the frame arrived:
    :func:`frame_context`) are accepted. Without it, a tag is skipped unchecked and the
    frame is marked unauthenticated. Never raises.
    """
    view = memoryview(data).cast("B")
    fields = _read_frame(view, key, context)
    return fields if isinstance(fields, Rejection) else _frame(view, fields, key is not None)


_REPLY_FRAME = struct.Struct(_HEADER.format + _REPLY.format.lstrip("!"))  # header, reply


def encode_reply(
    probe: Frame,
    responder: int,
    received_ttl: int | None,
    *,
    key: bytes | None = None,
    context: bytes = b"",
) -> bytes:
    """Pong's answer to ``probe``: same sequence and send time, naming the prober and the TTL
    (or hop limit) the probe arrived with (0 when unknown). Its tag covers the probe's
    ``context`` (the group and port probed), which the prober knows."""
    _check_fields(responder, probe.sequence, probe.timestamp, 0)
    return reply_frame(
        responder,
        probe.sender,
        probe.sequence,
        probe.timestamp,
        received_ttl,
        key=_check_key(key) if key is not None else None,
        context=context,
    )


def reply_frame(
    responder: int,
    prober: int,
    sequence: int,
    timestamp: int,
    received_ttl: int | None,
    *,
    key: bytes | None = None,
    context: bytes = b"",
) -> bytes:
    """:func:`encode_reply` for a probe already read (:meth:`FrameReader.read_probe`), whose
    numbers are in range: one ``struct`` call, no :class:`Frame` (pong's hot path)."""
    ttl = received_ttl if received_ttl is not None and 0 < received_ttl <= 255 else 0
    flags = _REPLY_FLAG if key is None else _REPLY_FLAG | _TAGGED
    body = _REPLY_FRAME.pack(
        MAGIC, VERSION, flags, _REPLY.size, responder, sequence, timestamp, prober, ttl
    )
    return body if key is None else body + _tag(key, context, body)


def parse_reply(frame: Frame) -> tuple[int, int | None] | None:
    """The prober id and received TTL a reply carries; None if ``frame`` is not a reply."""
    return _reply_payload(int(frame.flags), len(frame.payload), frame.payload, 0)


def _reply_payload(
    flags: int, length: int, data: bytes, offset: int
) -> tuple[int, int | None] | None:
    """The prober id and received TTL of the reply payload at ``offset`` of ``data``; None if
    the frame is not a reply or its payload not a reply's size."""
    if not flags & _REPLY_FLAG or length != _REPLY.size:
        return None
    prober, ttl = _REPLY.unpack_from(data, offset)
    return prober, ttl or None


class ReplayWindow:
    """Per-sender anti-replay window (as in IPsec, RFC 4303 §3.4.3), for authenticated frames.

    A sequence number is accepted once, and only if it is not older than ``size`` numbers
    behind the highest accepted from that sender. At most ``max_senders`` are remembered (so
    at most about ``max_senders * size / 8`` bytes); the least recently heard is forgotten
    first, and from then on a sender not remembered must have sent its frame after the
    newest frame of any sender forgotten, so forgetting a sender never lets its frames pass
    again.

    >>> window = ReplayWindow(size=4)
    >>> [window.accept(1, n) for n in (5, 5, 3, 9, 5, 8)]
    [True, False, True, True, False, True]
    """

    def __init__(self, size: int = 1024, max_senders: int = 4096) -> None:
        if size < 1 or max_senders < 1:
            raise OptionError("replay window size and sender limit must be positive")
        self.size = size
        self.max_senders = max_senders
        self.floor = -1  # newest send time of a forgotten sender
        # sender -> (highest sequence, bit i set: highest - i already accepted, newest send time)
        self._senders: OrderedDict[int, tuple[int, int, int]] = OrderedDict()

    def accept(self, sender: int, sequence: int, sent: int = 0) -> bool:
        """True the first time ``sequence`` is seen from ``sender`` within the window
        (``sent``: the frame's send time, nanoseconds)."""
        state = self._senders.get(sender)
        if state is None:
            if sent <= self.floor:
                return False
            self._remember(sender, sequence, 1, sent)
            return True
        top, seen, newest = state
        newest = max(newest, sent)
        if sequence > top:
            shift = sequence - top
            seen = ((seen << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self._remember(sender, sequence, seen, newest)
            return True
        age = top - sequence
        if age >= self.size or seen >> age & 1:
            return False
        self._remember(sender, top, seen | 1 << age, newest)
        return True

    def _remember(self, sender: int, top: int, seen: int, newest: int) -> None:
        self._senders[sender] = (top, seen, newest)
        self._senders.move_to_end(sender)
        if len(self._senders) > self.max_senders:
            _, (_, _, forgotten) = self._senders.popitem(last=False)
            self.floor = max(self.floor, forgotten)


class FrameReader:
    """Parses datagrams with an optional key; with a key, only fresh frames are accepted.

    Fresh: sent within ``time_window`` seconds of the reader's clock (either way: the
    hosts' clocks must agree that well), not before the reader was made (``started``,
    nanoseconds since the epoch; a frame from before a restart is a replay), and not seen
    before (:class:`ReplayWindow`, per sender).
    """

    def __init__(
        self,
        key: bytes | None = None,
        window: ReplayWindow | None = None,
        *,
        time_window: float = TIME_WINDOW,
        started: int | None = None,
    ) -> None:
        self.key = _check_key(key) if key is not None else None
        self.window = window if window is not None else ReplayWindow()
        if not 0 < time_window <= 86400:
            raise OptionError(f"time window {time_window!r} must be above 0 and at most 86400 s")
        self.time_window = time_window
        self.started = time.time_ns() if started is None else started

    def read(
        self, data: bytes | bytearray | memoryview, context: bytes = b"", now: int | None = None
    ) -> Frame | Rejection:
        """A frame, or the reason these bytes are rejected (never raises). ``context`` is
        where they arrived (:func:`frame_context`), ``now`` the time (nanoseconds since the
        epoch; None: read the clock)."""
        view = memoryview(data).cast("B")
        fields = self._fields(view, context, now)
        if isinstance(fields, Rejection):
            return fields
        return _frame(view, fields, self.key is not None)

    def read_probe(
        self, data: bytes, context: bytes = b"", now: int | None = None
    ) -> tuple[int, int, int] | Rejection | None:
        """What pong reads of a datagram, as :meth:`read` judges it but without making a
        :class:`Frame` (its hot path): the sender, sequence and send time of an acceptable
        probe; None for an acceptable frame that is no probe; else why it is rejected."""
        fields = self._fields(data, context, now)
        if isinstance(fields, Rejection):
            return fields
        flags, _, sender, sequence, stamp = fields
        return (sender, sequence, stamp) if flags & _PROBE else None

    def read_reply(
        self, data: bytes, context: bytes = b"", now: int | None = None
    ) -> tuple[int, int, int, int | None] | Rejection | None:
        """What ping reads of a datagram, as :meth:`read` and :func:`parse_reply` judge it
        but without making a :class:`Frame`: the responder, sequence, prober id and received
        TTL of an acceptable reply; None for an acceptable frame that is no reply; else why
        it is rejected."""
        fields = self._fields(data, context, now)
        if isinstance(fields, Rejection):
            return fields
        flags, length, sender, sequence, _ = fields
        reply = _reply_payload(flags, length, data, HEADER_SIZE)
        return None if reply is None else (sender, sequence, reply[0], reply[1])

    def _fields(
        self, data: bytes | memoryview, context: bytes, now: int | None
    ) -> _Fields | Rejection:
        """The raw fields of a frame that is acceptable, and fresh when a key is in use."""
        if self.key is None:
            return _read_frame(data, None, context)
        fields = _read_frame(data, self.key, context)
        if isinstance(fields, Rejection):
            return fields
        _, _, sender, sequence, stamp = fields
        now = time.time_ns() if now is None else now
        skew = (stamp - now) / 1e9
        if abs(skew) > self.time_window:
            return Rejection(
                Reason.STALE,
                f"sent {skew:+.3f} s from this host's clock (window {self.time_window:g} s)",
            )
        if stamp < self.started:
            return Rejection(Reason.REPLAYED, "sent before this receiver started")
        if not self.window.accept(sender, sequence, stamp):
            return Rejection(Reason.REPLAYED, f"sequence {sequence} of sender {sender:016x}")
        return fields
