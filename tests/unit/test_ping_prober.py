"""ping's bookkeeping (:class:`multicast.tools.ping.Prober`), fed synthetic replies and times.

Replies are made by pong's :class:`~multicast.tools.pong.Answerer` from the probes the
prober makes: the two pure halves of ping and pong, talking without a socket.
"""

from __future__ import annotations

import time

import pytest

from multicast.core import Datagram, parse_group
from multicast.exceptions import OptionError
from multicast.tools.framing import Flag, Frame, encode_frame, frame_context, parse_frame
from multicast.tools.ping import Prober, Reply, minimum_probe_size
from multicast.tools.pong import Answerer

KEY = b"a shared key of 32 bytes........"
SIZE = 64
GROUP = parse_group("239.1.2.3")


def answered(
    answerer: Answerer, probe: bytes, *, ttl: int | None, group: str = str(GROUP)
) -> bytes:
    """The reply ``answerer`` makes to ``probe``, arrived on ``group`` with ``ttl``."""
    answer = answerer.answer(Datagram(probe, ("192.0.2.1", 40000), group, ttl=ttl, size=len(probe)))
    assert answer is not None
    return answer.payload


def test_probes_are_numbered_sized_and_timestamped() -> None:
    prober = Prober(ttl=4, size=SIZE, prober=0xAB)
    first, second = prober.probe(10.0, 111), prober.probe(11.0, 222)
    frames = [parse_frame(first), parse_frame(second)]
    assert all(isinstance(frame, Frame) for frame in frames)
    assert [(f.sender, f.sequence, f.timestamp) for f in frames if isinstance(f, Frame)] == [
        (0xAB, 0, 111),
        (0xAB, 1, 222),
    ]
    assert all(Flag.PROBE in f.flags for f in frames if isinstance(f, Frame))
    assert (len(first), prober.sent, prober.sent_at) == (SIZE, 2, {0: 10.0, 1: 11.0})


def test_a_probe_smaller_than_a_reply_is_refused() -> None:
    smallest = minimum_probe_size(tagged=True)
    Prober(ttl=1, size=smallest, key=KEY)
    with pytest.raises(OptionError, match=f"below the {smallest}-byte minimum"):
        Prober(ttl=1, size=smallest - 1, key=KEY)


def test_replies_give_round_trips_hops_and_duplicates() -> None:
    prober = Prober(ttl=4, size=SIZE)
    pong = Answerer(responder=0x55)
    replies = [answered(pong, prober.probe(float(n), 0), ttl=3) for n in range(3)]
    taken = [
        prober.take(replies[0], "192.0.2.9", 0.25),
        prober.take(replies[2], "192.0.2.9", 2.5),
        prober.take(replies[0], "192.0.2.9", 3.0),  # again
    ]
    assert taken == [
        Reply("192.0.2.9", 0x55, 0, len(replies[0]), 250.0, 1, False),
        Reply("192.0.2.9", 0x55, 2, len(replies[2]), 500.0, 1, False),
        Reply("192.0.2.9", 0x55, 0, len(replies[0]), 3000.0, 1, True),
    ]
    report = prober.report(GROUP, 5000, 4.0)
    (responder,) = report.responders
    assert (responder.replies, responder.lost, responder.duplicates, responder.hops) == (
        2,
        1,
        1,
        1,
    )
    assert responder.rtt is not None
    assert (responder.rtt.min, responder.rtt.max, responder.rtt.count) == (250.0, 500.0, 2)
    assert (report.sent, report.received, report.seconds) == (3, 2, 4.0)


def test_each_responder_is_counted_apart() -> None:
    prober = Prober(ttl=1, size=SIZE)
    one, two = Answerer(responder=1), Answerer(responder=2)
    probe = prober.probe(0.0, 0)
    prober.take(answered(one, probe, ttl=1), "192.0.2.1", 0.1)
    prober.take(answered(two, probe, ttl=1), "192.0.2.2", 0.2)
    prober.take(answered(two, probe, ttl=1), "192.0.2.3", 0.3)  # the same pong, elsewhere
    report = prober.report(GROUP, 5000, 1.0)
    assert [(r.address, r.responder, r.replies) for r in report.responders] == [
        ("192.0.2.1", 1, 1),
        ("192.0.2.2", 2, 1),
        ("192.0.2.3", 2, 1),
    ]


def test_hops_are_unknown_when_the_ttl_seen_is_unknown_or_above_the_ttl_sent() -> None:
    prober = Prober(ttl=4, size=SIZE)
    pong = Answerer()
    for ttl in (None, 9):
        reply = prober.take(answered(pong, prober.probe(0.0, 0), ttl=ttl), "192.0.2.1", 0.1)
        assert reply is not None and reply.hops is None


def test_what_answers_no_probe_of_ours_is_not_counted() -> None:
    prober = Prober(ttl=1, size=SIZE, prober=0xAB)
    prober.probe(0.0, 0)
    pong = Answerer()
    elsewhere = Prober(ttl=1, size=SIZE, prober=0xCD)
    for payload in (
        answered(pong, elsewhere.probe(0.0, 0), ttl=1),  # another prober's
        answered(pong, encode_frame(0xAB, 9, bytes(32), flags=Flag.PROBE), ttl=1),  # never sent
        prober.probe(0.0, 0),  # a probe, not a reply
        b"hello",
    ):
        assert prober.take(payload, "192.0.2.1", 1.0) is None
    report = prober.report(GROUP, 5000, 1.0)
    assert (report.unmatched, report.rejected["foreign"], report.responders) == (3, 1, ())


def test_with_a_key_only_authentic_replies_count() -> None:
    pong = Answerer(KEY, port=5000)  # started before the probe was sent
    prober = Prober(ttl=1, size=minimum_probe_size(tagged=True), key=KEY, group=GROUP, port=5000)
    probe = prober.probe(0.0, time.time_ns())
    assert isinstance(parse_frame(probe, KEY, frame_context(GROUP, 5000)), Frame)
    assert prober.take(answered(Answerer(), probe, ttl=1), "192.0.2.1", 0.1) is None
    assert prober.take(answered(pong, probe, ttl=1), "192.0.2.1", 0.1)
    assert prober.rejected["unauthenticated"] == 1


def test_a_keyed_probe_is_answered_only_on_the_group_and_port_probed() -> None:
    prober = Prober(ttl=1, size=minimum_probe_size(tagged=True), key=KEY, group=GROUP, port=5000)
    probe = prober.probe(0.0, time.time_ns())
    assert Answerer(KEY, port=5001).answer(Datagram(probe, ("192.0.2.1", 1), str(GROUP))) is None
    other = Datagram(probe, ("192.0.2.1", 1), "239.1.2.4", size=len(probe))
    assert Answerer(KEY, port=5000).answer(other) is None


def test_forged_responders_beyond_the_limit_are_counted_not_kept() -> None:
    prober = Prober(ttl=1, size=SIZE, prober=0xAB, max_responders=3)
    probe = prober.probe(0.0, 0)
    for n in range(10):
        reply = answered(Answerer(responder=n), probe, ttl=1)
        prober.take(reply, f"192.0.2.{n}", 0.1)
    report = prober.report(GROUP, 5000, 1.0)
    assert (len(report.responders), report.untracked) == (3, 7)
    assert report.as_dict()["untracked"] == 7
    assert "untracked responders' replies 7" in str(report)


def test_probes_the_kernel_refused_stay_counted_as_sent_and_lost() -> None:
    prober = Prober(ttl=1, size=SIZE)
    pong = Answerer()
    prober.take(answered(pong, prober.probe(0.0, 0), ttl=1), "192.0.2.1", 0.1)
    prober.probe(1.0, 0)
    prober.unsent()
    report = prober.report(GROUP, 5000, 2.0, interrupted=True)
    assert (report.sent, report.send_errors, report.responders[0].lost) == (2, 1, 1)
    assert report.interrupted
    assert report.as_dict()["send_errors"] == 1
