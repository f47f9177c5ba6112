"""The tools' frame format, HMAC authentication and replay window: pure code."""

from __future__ import annotations

import doctest
import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicast.exceptions import AuthKeyError, MessageSizeError, MulticastError, OptionError
from multicast.tools import framing
from multicast.tools.framing import (
    HEADER_SIZE,
    MAGIC,
    TAG_SIZE,
    Flag,
    Frame,
    FrameReader,
    FrameWriter,
    Reason,
    Rejection,
    ReplayWindow,
    encode_frame,
    encode_reply,
    frame_context,
    parse_frame,
    parse_header,
    parse_reply,
)

KEY = b"0123456789abcdef"
OTHER_KEY = b"fedcba9876543210"
u64 = st.integers(min_value=0, max_value=2**64 - 1)
payloads = st.binary(max_size=300)
keys = st.one_of(st.none(), st.binary(min_size=16, max_size=64))


def reason_of(result: Frame | Rejection) -> Reason:
    assert isinstance(result, Rejection), result
    return result.reason


def test_doctests() -> None:
    assert doctest.testmod(framing).failed == 0


@given(st.binary(max_size=400), keys)
def test_any_bytes_give_a_frame_or_a_rejection(data: bytes, key: bytes | None) -> None:
    result = parse_frame(data, key)
    if isinstance(result, Frame):
        assert result.size == len(data)
        assert result.authenticated is (key is not None)
    else:  # foreign exactly when the bytes cannot be ours: too short or without the magic
        foreign = len(data) < HEADER_SIZE or not data.startswith(MAGIC)
        assert (result.reason is Reason.FOREIGN) is foreign


@given(st.binary(max_size=200), keys)
def test_bytes_after_the_magic_give_a_frame_or_a_rejection(data: bytes, key: bytes | None) -> None:
    result = parse_frame(MAGIC + data, key)
    if isinstance(result, Frame):
        assert result.size == len(MAGIC + data)
    elif len(MAGIC + data) >= HEADER_SIZE:  # our magic on a whole header: never foreign
        assert result.reason is not Reason.FOREIGN
    else:
        assert result.reason is Reason.FOREIGN


@given(
    st.tuples(u64, u64, u64), payloads, st.sampled_from([Flag.NONE, Flag.PROBE, Flag.REPLY]), keys
)
def test_round_trip(
    fields: tuple[int, int, int], payload: bytes, flags: Flag, key: bytes | None
) -> None:
    sender, sequence, stamp = fields
    data = encode_frame(sender, sequence, payload, flags=flags, timestamp=stamp, key=key)
    frame = parse_frame(data, key)
    assert isinstance(frame, Frame)
    assert (frame.sender, frame.sequence, frame.timestamp) == (sender, sequence, stamp)
    assert frame.payload == payload
    assert frame.authenticated is (key is not None)
    assert (Flag.TAGGED in frame.flags) is (key is not None)
    assert frame.flags & ~Flag.TAGGED == flags
    assert len(data) == HEADER_SIZE + len(payload) + (TAG_SIZE if key else 0)


@given(u64, payloads, st.data())
def test_any_change_to_a_tagged_frame_is_rejected(
    sequence: int, payload: bytes, data: st.DataObject
) -> None:
    frame = bytearray(encode_frame(1, sequence, payload, key=KEY))
    index = data.draw(st.integers(0, len(frame) - 1))
    frame[index] ^= data.draw(st.integers(1, 255))
    assert isinstance(parse_frame(bytes(frame), KEY), Rejection)


@given(payloads)
def test_a_cut_or_extended_frame_is_malformed(payload: bytes) -> None:
    data = encode_frame(1, 2, payload)
    cut = Reason.MALFORMED if payload else Reason.FOREIGN  # shorter than a header: not ours
    assert reason_of(parse_frame(data[:-1])) is cut
    assert reason_of(parse_frame(data + b"x")) is Reason.MALFORMED


def test_rejection_reasons() -> None:
    data = encode_frame(5, 6, b"payload")
    assert reason_of(parse_frame(b"")) is Reason.FOREIGN
    assert reason_of(parse_frame(b"X" + data[1:])) is Reason.FOREIGN
    assert reason_of(parse_frame(data[:4] + b"\x02" + data[5:])) is Reason.UNSUPPORTED
    assert reason_of(parse_frame(data[:5] + b"\x80" + data[6:])) is Reason.MALFORMED
    both = data[:5] + bytes([Flag.PROBE | Flag.REPLY]) + data[6:]
    assert reason_of(parse_frame(both)) is Reason.MALFORMED
    assert reason_of(parse_frame(data, KEY)) is Reason.UNAUTHENTICATED
    tagged = encode_frame(5, 6, b"payload", key=OTHER_KEY)
    assert reason_of(parse_frame(tagged, KEY)) is Reason.FORGED
    # Without a key a tagged frame is read, but not marked authenticated.
    unchecked = parse_frame(tagged)
    assert isinstance(unchecked, Frame)
    assert not unchecked.authenticated


def test_header_of_a_truncated_frame() -> None:
    data = encode_frame(0xABC, 77, bytes(500), timestamp=123)
    header = parse_header(data[:HEADER_SIZE])
    assert not isinstance(header, Rejection)
    assert (header.sender, header.sequence, header.timestamp, header.length) == (
        0xABC,
        77,
        123,
        500,
    )
    assert isinstance(parse_frame(data[:HEADER_SIZE]), Rejection)


def test_layout_is_fixed() -> None:
    """The header layout is the wire contract (the netem substitute's filters rely on it)."""
    data = encode_frame(0x0102030405060708, 0x1112131415161718, b"ab", timestamp=0x21)
    assert data[:8] == b"MCTF\x01\x00\x00\x02"
    assert struct.unpack("!QQQ", data[8:32]) == (0x0102030405060708, 0x1112131415161718, 0x21)
    assert data[23] == 0x18  # low byte of the sequence number


@given(u64, st.integers(min_value=HEADER_SIZE + TAG_SIZE, max_value=2000), u64, keys)
def test_writer_matches_encode(sender: int, size: int, sequence: int, key: bytes | None) -> None:
    writer = FrameWriter(sender, size, key=key)
    tagged = key is not None
    payload = bytes(size - HEADER_SIZE - (TAG_SIZE if tagged else 0))
    written = bytes(writer.write(sequence, timestamp=99))
    assert written == encode_frame(sender, sequence, payload, timestamp=99, key=key)
    assert len(written) == size


def test_writer_and_encoder_refuse_bad_input() -> None:
    with pytest.raises(MessageSizeError, match="below the 32-byte minimum"):
        FrameWriter(1, 31)
    with pytest.raises(MessageSizeError, match="header and tag"):
        FrameWriter(1, 40, key=KEY)
    with pytest.raises(AuthKeyError, match="at least 16"):
        FrameWriter(1, 100, key=b"short")
    with pytest.raises(OptionError, match=r"sender id 18446744073709551616 is not .* 2\*\*64-1"):
        encode_frame(2**64, 0)
    with pytest.raises(MessageSizeError):
        encode_frame(1, 0, bytes(70000))


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: encode_frame(-1, 0), "sender id -1"),
        (lambda: encode_frame(1, -1), "sequence -1"),
        (lambda: encode_frame(1, 0, timestamp=-5), "timestamp -5"),
        (lambda: encode_frame(1, 0.5), "sequence 0.5"),  # type: ignore[arg-type]
        (lambda: FrameWriter(1, 100).write(-1), "sequence -1"),
        (lambda: FrameWriter(1, 100).write(1, -5), "timestamp -5"),
        (lambda: FrameWriter(1, 100).write(2**64), "sequence 18446744073709551616"),
        (lambda: FrameWriter(-1, 100), "sender id -1"),
    ],
)
def test_numbers_out_of_the_header_are_named(make: Callable[[], object], fragment: str) -> None:
    """Never a struct.error: an OptionError (a MulticastError and a ValueError) naming it."""
    with pytest.raises(OptionError, match=fragment) as refused:
        make()
    assert isinstance(refused.value, MulticastError) and isinstance(refused.value, ValueError)


@given(u64, u64, st.one_of(st.none(), st.integers(0, 300)), keys)
def test_reply_round_trip(prober: int, sequence: int, ttl: int | None, key: bytes | None) -> None:
    probe = Frame(sender=prober, sequence=sequence, timestamp=5, payload=b"", flags=Flag.PROBE)
    reply = parse_frame(encode_reply(probe, 42, ttl, key=key), key)
    assert isinstance(reply, Frame)
    assert (reply.sender, reply.sequence, reply.timestamp) == (42, sequence, 5)
    expected_ttl = ttl if ttl is not None and 0 < ttl <= 255 else None
    assert parse_reply(reply) == (prober, expected_ttl)
    assert parse_reply(probe) is None


class ReplayModel:
    """The window's rule, stated directly: accepted once, and not older than size behind the top."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen: dict[int, set[int]] = {}

    def accept(self, sender: int, sequence: int) -> bool:
        seen = self.seen.setdefault(sender, set())
        if sequence in seen or (seen and sequence <= max(seen) - self.size):
            return False
        seen.add(sequence)
        return True


@given(
    st.integers(1, 70),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 200)), max_size=200),
)
def test_replay_window_matches_its_rule(size: int, arrivals: list[tuple[int, int]]) -> None:
    window, model = ReplayWindow(size=size), ReplayModel(size)
    for sender, sequence in arrivals:
        assert window.accept(sender, sequence) == model.accept(sender, sequence)


def test_replay_window_forgets_the_least_recent_sender_but_not_its_frames() -> None:
    window = ReplayWindow(size=8, max_senders=2)
    assert window.accept(1, 10, sent=100) and window.accept(2, 10, sent=200)
    assert window.accept(1, 11, sent=300)  # sender 1 is now the most recent
    assert window.accept(3, 10, sent=400)  # forgets sender 2, whose newest frame was sent at 200
    assert len(window._senders) == 2
    assert not window.accept(2, 10, sent=200)  # its frames are not accepted again
    assert not window.accept(4, 1, sent=150)  # nor older frames of any sender not remembered
    assert window.accept(2, 11, sent=500)  # sent later: a sender that is back
    assert not window.accept(3, 10, sent=400)


def test_reader_rejects_replays_only_with_a_key() -> None:
    reader = FrameReader(KEY)  # frames sent before it started are replays: made first
    data = encode_frame(9, 1, b"x", key=KEY)
    assert isinstance(reader.read(data), Frame)
    assert reason_of(reader.read(data)) is Reason.REPLAYED
    forged = encode_frame(9, 2, b"x", key=OTHER_KEY)
    assert reason_of(reader.read(forged)) is Reason.FORGED
    # The forgery did not take sequence 2 from the window: the authentic frame still passes.
    assert isinstance(reader.read(encode_frame(9, 2, b"x", key=KEY)), Frame)
    plain = FrameReader()
    assert isinstance(plain.read(data), Frame)
    assert isinstance(plain.read(data), Frame)


# --- what a tag covers and when a keyed frame is fresh (issue 12) ------------------------------

WHERE = frame_context("239.1.2.3", 5000)
SECOND = 1_000_000_000


@pytest.mark.parametrize(
    "elsewhere",
    [
        frame_context("239.1.2.4", 5000),
        frame_context("239.1.2.3", 5001),
        frame_context("ff0e::1", 5000),
        frame_context(None, 5000),
        b"",
    ],
)
def test_a_tagged_frame_verifies_only_where_it_was_sent(elsewhere: bytes) -> None:
    data = encode_frame(9, 1, b"x", key=KEY, context=WHERE)
    assert isinstance(parse_frame(data, KEY, WHERE), Frame)
    assert reason_of(parse_frame(data, KEY, elsewhere)) is Reason.FORGED
    reply = encode_reply(Frame(9, 1, 5, b"", Flag.PROBE), 42, 64, key=KEY, context=WHERE)
    assert isinstance(parse_frame(reply, KEY, WHERE), Frame)
    assert reason_of(parse_frame(reply, KEY, elsewhere)) is Reason.FORGED


def test_the_writer_tags_for_its_destination() -> None:
    writer = FrameWriter(9, 100, key=KEY, context=WHERE)
    data = bytes(writer.write(3, timestamp=77))
    assert data == encode_frame(9, 3, bytes(100 - 64), timestamp=77, key=KEY, context=WHERE)
    assert reason_of(parse_frame(data, KEY, frame_context("239.1.2.3", 5001))) is Reason.FORGED


def test_the_context_ignores_a_zone_and_names_family_and_port() -> None:
    assert frame_context("ff02::1%eth0", 5000) == frame_context("ff02::1", 5000)
    assert len(frame_context("ff02::1", 1)) == 18 and len(frame_context("239.1.2.3", 1)) == 6
    with pytest.raises(OptionError, match="port 70000"):
        frame_context("239.1.2.3", 70000)


@pytest.mark.parametrize("stamp", [0, 2**64 - 1])
def test_send_times_far_from_the_clock_are_stale(stamp: int) -> None:
    now = 1_700_000_000 * SECOND
    reader = FrameReader(KEY, started=now - 60 * SECOND)
    data = encode_frame(9, 1, b"x", timestamp=stamp, key=KEY, context=WHERE)
    assert reason_of(reader.read(data, WHERE, now)) is Reason.STALE


def test_the_time_window_is_stated_and_both_ways() -> None:
    now = 1_700_000_000 * SECOND
    reader = FrameReader(KEY, time_window=5.0, started=now - 60 * SECOND)

    def frame(sequence: int, offset: float) -> bytes:
        stamp = now + int(offset * SECOND)
        return encode_frame(9, sequence, timestamp=stamp, key=KEY, context=WHERE)

    assert isinstance(reader.read(frame(1, -4.9), WHERE, now), Frame)
    assert isinstance(reader.read(frame(2, 4.9), WHERE, now), Frame)
    assert reason_of(reader.read(frame(3, -5.1), WHERE, now)) is Reason.STALE
    assert reason_of(reader.read(frame(4, 5.1), WHERE, now)) is Reason.STALE
    assert framing.TIME_WINDOW == FrameReader(KEY).time_window == 30.0
    with pytest.raises(OptionError, match="time window"):
        FrameReader(KEY, time_window=0)


def test_frames_from_before_a_restart_are_replays() -> None:
    first = FrameReader(KEY)
    frames = [encode_frame(9, n, key=KEY, context=WHERE) for n in range(5)]
    assert all(isinstance(first.read(data, WHERE), Frame) for data in frames)
    restarted = FrameReader(KEY)  # a new run: its replay window is empty
    assert {reason_of(restarted.read(data, WHERE)) for data in frames} == {Reason.REPLAYED}
    assert isinstance(restarted.read(encode_frame(9, 5, key=KEY, context=WHERE), WHERE), Frame)


def test_without_a_key_send_times_are_not_judged() -> None:
    reader = FrameReader()
    assert isinstance(reader.read(encode_frame(9, 1, timestamp=0)), Frame)


def test_the_replay_window_stays_bounded() -> None:
    window = ReplayWindow(size=64, max_senders=16)
    for sender in range(1000):
        assert window.accept(sender, 2**63, sent=sender + 1)
    assert len(window._senders) == 16
    assert max(seen.bit_length() for _, seen, _ in window._senders.values()) <= 64
