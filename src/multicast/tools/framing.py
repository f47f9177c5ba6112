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
    "encode_frame",
    "encode_reply",
    "frame_context",
    "frame_size",
    "parse_frame",
    "parse_header",
    "parse_reply",
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


# A plain int: `~` on an IntFlag complements only the defined bits.
_KNOWN_FLAGS = int(Flag.TAGGED | Flag.PROBE | Flag.REPLY)


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
    flags = (flags | Flag.TAGGED) if key is not None else (flags & ~Flag.TAGGED)
    body = _HEADER.pack(MAGIC, VERSION, flags, len(payload), sender, sequence, stamp) + payload
    return body + _tag(_check_key(key), context, body) if key is not None else body


class FrameWriter:
    """Frames of one fixed wire size from one sender, packed into a buffer reused per frame.

    The stream tool sends thousands of frames a second; only the header (and the tag) change.
    With ``key``, tags cover ``context`` (:func:`frame_context` of the destination).
    """

    def __init__(
        self, sender: int, size: int, *, key: bytes | None = None, context: bytes = b""
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
        self.flags = Flag.TAGGED if tagged else Flag.NONE
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
    if len(data) < HEADER_SIZE or bytes(data[:4]) != MAGIC:
        return Rejection(Reason.FOREIGN, f"{len(data)} bytes without the frame magic")
    _, version, raw_flags, length, sender, sequence, stamp = _HEADER.unpack_from(data)
    if version != VERSION:
        return Rejection(
            Reason.UNSUPPORTED, f"frame version {version} (this code speaks {VERSION})"
        )
    if raw_flags & ~_KNOWN_FLAGS:
        return Rejection(Reason.MALFORMED, f"unknown flag bits {raw_flags:#04x}")
    flags = Flag(raw_flags)
    if Flag.PROBE in flags and Flag.REPLY in flags:
        return Rejection(Reason.MALFORMED, "both probe and reply flags")
    return Header(flags, length, sender, sequence, stamp)


def parse_frame(
    data: bytes | bytearray | memoryview, key: bytes | None = None, context: bytes = b""
) -> Frame | Rejection:
    """Read a frame from untrusted bytes: a :class:`Frame`, or a :class:`Rejection` saying why not.

    With ``key``, only frames whose tag verifies under ``context`` (where the frame arrived:
    :func:`frame_context`) are accepted. Without it, a tag is skipped unchecked and the
    frame is marked unauthenticated. Never raises.
    """
    view = memoryview(data).cast("B")
    header = parse_header(view)
    if isinstance(header, Rejection):
        return header
    tagged = Flag.TAGGED in header.flags
    expected = frame_size(header.length, tagged=tagged)
    if len(view) != expected:
        return Rejection(
            Reason.MALFORMED, f"{len(view)} bytes where the header announces {expected}"
        )
    body_end = HEADER_SIZE + header.length
    if key is not None:
        if not tagged:
            return Rejection(Reason.UNAUTHENTICATED, "no tag, and a key is in use")
        if not hmac.compare_digest(_tag(key, context, view[:body_end]), bytes(view[body_end:])):
            return Rejection(Reason.FORGED, f"tag does not verify (sender {header.sender:016x})")
    return Frame(
        sender=header.sender,
        sequence=header.sequence,
        timestamp=header.timestamp,
        payload=bytes(view[HEADER_SIZE:body_end]),
        flags=header.flags,
        authenticated=key is not None,
    )


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
    ttl = received_ttl if received_ttl is not None and 0 < received_ttl <= 255 else 0
    return encode_frame(
        responder,
        probe.sequence,
        _REPLY.pack(probe.sender, ttl),
        flags=Flag.REPLY,
        timestamp=probe.timestamp,
        key=key,
        context=context,
    )


def parse_reply(frame: Frame) -> tuple[int, int | None] | None:
    """The prober id and received TTL a reply carries; None if ``frame`` is not a reply."""
    if Flag.REPLY not in frame.flags or len(frame.payload) != _REPLY.size:
        return None
    prober, ttl = _REPLY.unpack(frame.payload)
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
        result = parse_frame(data, self.key, context)
        if not isinstance(result, Frame) or self.key is None:
            return result
        now = time.time_ns() if now is None else now
        skew = (result.timestamp - now) / 1e9
        if abs(skew) > self.time_window:
            return Rejection(
                Reason.STALE,
                f"sent {skew:+.3f} s from this host's clock (window {self.time_window:g} s)",
            )
        if result.timestamp < self.started:
            return Rejection(Reason.REPLAYED, "sent before this receiver started")
        if not self.window.accept(result.sender, result.sequence, result.timestamp):
            return Rejection(
                Reason.REPLAYED, f"sequence {result.sequence} of sender {result.sender:016x}"
            )
        return result
