"""pong's decisions (:class:`multicast.tools.pong.Answerer`), fed synthetic datagrams."""

from __future__ import annotations

import pytest

from multicast.core import Datagram
from multicast.exceptions import AuthKeyError
from multicast.tools.framing import (
    Flag,
    Frame,
    encode_frame,
    frame_context,
    parse_frame,
    parse_reply,
)
from multicast.tools.pong import Answerer

KEY = b"a shared key of 32 bytes........"
OTHER_KEY = b"another key, also long enough..."
PROBER = ("192.0.2.7", 40000)
PROBE = encode_frame(0xAB, 3, bytes(16), flags=Flag.PROBE, timestamp=123)


def arriving(
    payload: bytes, *, ttl: int | None = 7, truncated: bool = False, to: str = "239.1.2.3"
) -> Datagram:
    return Datagram(payload, PROBER, to, ttl=ttl, truncated=truncated, size=len(payload))


def test_a_probe_sent_by_unicast_is_answered_and_counted_apart() -> None:
    answerer = Answerer()
    assert answerer.answer(arriving(PROBE, to="192.0.2.9")) is not None
    assert answerer.answer(arriving(PROBE)) is not None
    assert (answerer.probes, answerer.unicast) == (2, 1)


def test_a_probe_is_answered_to_its_source_with_the_ttl_it_came_with() -> None:
    answerer = Answerer(responder=0x55)
    answer = answerer.answer(arriving(PROBE))
    assert answer is not None
    assert answer.destination == PROBER
    reply = parse_frame(answer.payload)
    assert isinstance(reply, Frame)
    assert (reply.sender, reply.sequence, reply.timestamp) == (0x55, 3, 123)
    assert parse_reply(reply) == (0xAB, 7)
    assert len(answer.payload) <= len(PROBE)
    assert (answerer.probes, answerer.replies) == (1, 0)  # not sent yet


def test_a_probe_that_came_without_its_ttl_is_answered_with_none() -> None:
    answer = Answerer().answer(arriving(PROBE, ttl=None))
    assert answer is not None
    reply = parse_frame(answer.payload)
    assert isinstance(reply, Frame) and parse_reply(reply) == (0xAB, None)


def test_the_outcome_of_each_send_is_counted() -> None:
    answerer = Answerer()
    answerer.sent(True)
    answerer.sent(True)
    answerer.sent(False)
    assert (answerer.replies, answerer.send_errors) == (2, 1)


def test_what_is_not_a_probe_is_not_answered() -> None:
    answerer = Answerer()
    stream_frame = encode_frame(1, 0, bytes(16))
    reply = encode_frame(1, 0, bytes(16), flags=Flag.REPLY)
    for datagram in (
        arriving(stream_frame),
        arriving(reply),
        arriving(b"x" * 50),
        arriving(PROBE, truncated=True),  # a cut probe cannot be checked
    ):
        assert answerer.answer(datagram) is None
    assert (answerer.ignored, answerer.probes) == (2, 0)
    assert (answerer.rejected["foreign"], answerer.rejected["malformed"]) == (1, 1)


def test_a_probe_smaller_than_its_reply_is_left_unanswered() -> None:
    answerer = Answerer()
    assert answerer.answer(arriving(encode_frame(1, 0, flags=Flag.PROBE))) is None
    assert (answerer.probes, answerer.oversized) == (1, 1)


def test_with_a_key_only_authentic_fresh_probes_are_answered() -> None:
    answerer = Answerer(KEY, port=5000)
    where = frame_context("239.1.2.3", 5000)
    probe = encode_frame(1, 0, bytes(16), flags=Flag.PROBE, key=KEY, context=where)
    answer = answerer.answer(arriving(probe))
    assert answer is not None
    assert isinstance(parse_frame(answer.payload, KEY, where), Frame)  # tagged for the group
    for refused in (
        probe,  # replayed
        encode_frame(1, 1, bytes(16), flags=Flag.PROBE),  # no tag
        encode_frame(1, 2, bytes(16), flags=Flag.PROBE, key=OTHER_KEY, context=where),  # forged
        encode_frame(1, 3, bytes(16), flags=Flag.PROBE, key=KEY),  # tagged for nowhere
        encode_frame(  # sent for another port
            1, 4, bytes(16), flags=Flag.PROBE, key=KEY, context=frame_context("239.1.2.3", 5001)
        ),
        encode_frame(1, 5, bytes(16), flags=Flag.PROBE, key=KEY, context=where, timestamp=0),
    ):
        assert answerer.answer(arriving(refused)) is None
    rejected = {name: count for name, count in answerer.rejected.items() if count}
    assert rejected == {"replayed": 1, "unauthenticated": 1, "forged": 3, "stale": 1}
    assert answerer.probes == 1


def test_a_keyed_probe_replayed_to_another_group_is_not_answered() -> None:
    answerer = Answerer(KEY, port=5000)
    probe = encode_frame(
        1, 0, bytes(16), flags=Flag.PROBE, key=KEY, context=frame_context("239.1.2.4", 5000)
    )
    assert answerer.answer(arriving(probe)) is None
    assert answerer.rejected["forged"] == 1


def test_a_short_key_is_refused() -> None:
    with pytest.raises(AuthKeyError):
        Answerer(b"short")


def test_report() -> None:
    answerer = Answerer(responder=0x55)
    answerer.answer(arriving(PROBE))
    answerer.sent(True)
    answerer.answer(arriving(b"hello"))
    report = answerer.report(groups=("239.1.2.3",), port=5000, drops=2, seconds=1.5)
    assert (report.probes, report.replies, report.drops, report.responder) == (1, 1, 2, 0x55)
    assert report.rejected["foreign"] == 1
    assert report.as_dict()["responder"] == "0000000000000055"
    assert str(report).startswith(
        "answered 1 of 1 probes (0 by unicast) on 239.1.2.3 port 5000 in 1.500 s"
    )


def test_a_link_local_prober_is_answered_by_the_interface_the_probe_arrived_on() -> None:
    probe = Datagram(PROBE, ("fe80::7", 40000), "ff02::1:2", interface=3, ttl=1, size=len(PROBE))
    answer = Answerer().answer(probe)
    assert answer is not None and answer.destination == ("fe80::7", 40000, 0, 3)
