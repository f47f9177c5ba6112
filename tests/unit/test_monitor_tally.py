"""The monitor's accounting (:mod:`multicast.tools.tally`), fed synthetic datagrams and times."""

from __future__ import annotations

import doctest
import random
import re
import struct
import time
import tracemalloc

import pytest

from multicast.core import Datagram
from multicast.exceptions import AuthKeyError, OptionError
from multicast.tools import tally as tally_module
from multicast.tools.framing import Reason, Rejection, encode_frame, frame_context
from multicast.tools.monitor_report import FlowReport, Intervals, MonitorReport
from multicast.tools.payloads import Kind, Stamps
from multicast.tools.tally import MAX_SENDERS, FrameStamps, Stamp, Tally

KEY = b"a shared key of 32 bytes........"
OTHER_KEY = b"another key, also long enough..."
GROUP = "239.1.2.3"
SOURCE = ("192.0.2.1", 5000)
MS = 1_000_000  # nanoseconds


def arriving(
    payload: bytes,
    *,
    group: str | None = GROUP,
    source: tuple[str, int] = SOURCE,
    ttl: int | None = None,
    room: int | None = None,
) -> Datagram:
    """``payload`` as received: cut to ``room`` bytes when it is longer (truncated)."""
    kept = payload if room is None else payload[:room]
    return Datagram(
        kept, source, group, ttl=ttl, truncated=len(kept) < len(payload), size=len(payload)
    )


def frame(sender: int, sequence: int, sent: int = 0, *, key: bytes | None = None) -> bytes:
    """A frame; with ``key``, tagged for GROUP and port 5000 (where :func:`keyed` listens)."""
    where = frame_context(GROUP, 5000) if key is not None else b""
    return encode_frame(sender, sequence, b"payload", timestamp=sent, key=key, context=where)


def keyed(key: bytes = KEY) -> FrameStamps:
    """A reader of frames tagged with ``key`` for port 5000, started now."""
    return FrameStamps(key, port=5000)


def report(tally: Tally, **facts: int) -> MonitorReport:
    defaults = {"drops": 0, "wrong_interface": 0, "receive_buffer": 4096}
    defaults.update(facts)
    return MonitorReport.of(tally, groups=(GROUP,), port=5000, seconds=2.0, **defaults)


def senders(tally: Tally) -> list[FlowReport]:
    return [FlowReport.of(flow, sent_ttl=tally.sent_ttl) for flow in tally.rows()]


def test_doctests() -> None:
    assert doctest.testmod(tally_module).attempted > 0
    assert doctest.testmod(tally_module).failed == 0


def test_counts_loss_duplicates_reordering_and_gaps_of_one_sender() -> None:
    tally = Tally(FrameStamps())
    for sequence in (0, 1, 3, 2, 2, 5, 9):
        tally.account(arriving(frame(7, sequence)), 0)
    (sender,) = senders(tally)
    counts = (sender.received, sender.unique, sender.lost, sender.duplicates, sender.reordered)
    assert counts == (7, 6, 4, 1, 1)
    assert (sender.gaps, sender.first_sequence, sender.last_sequence) == (3, 0, 9)
    assert (sender.stream, sender.group, sender.source) == (7, GROUP, SOURCE[0])
    assert tally.datagrams == 7


def test_jitter_follows_rfc_3550_and_ignores_duplicates() -> None:
    tally = Tally(FrameStamps())
    # Transit times 5, 5, 6 ms: one change of 1 ms, so J = 1/16 ms.
    for sequence, sent, arrived in ((0, 0, 5 * MS), (1, 1 * MS, 6 * MS), (2, 2 * MS, 8 * MS)):
        tally.account(arriving(frame(7, sequence, sent)), arrived)
    assert senders(tally)[0].jitter_ms == pytest.approx(1 / 16)
    tally.account(arriving(frame(7, 2, 2 * MS)), 100 * MS)  # a late duplicate: no transit
    assert senders(tally)[0].jitter_ms == pytest.approx(1 / 16)


def test_bytes_ttls_and_hops() -> None:
    tally = Tally(FrameStamps(), sent_ttl=8)
    data = frame(7, 0)
    for ttl in (6, 5, 6):
        tally.account(arriving(data, ttl=ttl), 0)
    tally.account(arriving(data), 0)  # a datagram without its TTL changes no range
    (sender,) = senders(tally)
    assert (sender.ttl_min, sender.ttl_max, sender.hops_min, sender.hops_max) == (5, 6, 2, 3)
    assert sender.bytes == 4 * len(data)
    assert sender.as_dict()["hops"] == {"min": 2, "max": 3}


def test_hops_are_never_negative_nor_made_up() -> None:
    """A sender whose datagrams arrive with more TTL than --ttl says uses another TTL: its
    hop count is unknown (it was negative, and then 0), not below zero."""
    tally = Tally(FrameStamps(), sent_ttl=4)
    tally.account(arriving(frame(7, 0), ttl=64), 0)
    tally.account(arriving(frame(8, 0), ttl=4), 0)
    tally.account(arriving(frame(8, 1), ttl=6), 0)
    tally.account(arriving(frame(9, 0), ttl=3), 0)
    above, mixed, below = senders(tally)
    assert (above.hops_min, above.hops_max) == (None, None)
    assert (mixed.hops_min, mixed.hops_max) == (None, None)
    assert (below.hops_min, below.hops_max) == (1, 1)


def test_a_flood_of_forged_frames_keeps_memory_bounded() -> None:
    """Random sequence numbers make a gap per frame; each flow keeps a bounded number of
    them, so MAX_SENDERS flows stay within tens of megabytes (they took 461 MB)."""
    flows = 8
    tally = Tally(FrameStamps(), max_flows=flows)
    rng = random.Random(12)
    tracemalloc.start()
    try:
        for n in range(40_000):
            tally.account(arriving(frame(n % (2 * flows), rng.getrandbits(48))), 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(tally.flows) == flows and tally.untracked == 20_000
    assert peak / flows * MAX_SENDERS < 40e6, f"{peak / flows:.0f} bytes per flow"


def test_streams_beyond_the_limit_are_untracked() -> None:
    """A flow of MPEG-TS has a stream per PID: forged packets cannot make streams without
    bound either."""
    tally = Tally(max_flows=2, max_streams=4)
    packets = [bytes([0x47, pid >> 8, pid & 0xFF, 0x10]) + bytes(184) for pid in range(1, 13)]
    for _ in range(3):  # detected as MPEG-TS after a few datagrams
        tally.account(arriving(b"".join(packets[:6])), 0)
    tally.account(arriving(b"".join(packets[6:])), 0)
    assert tally.streams == 4
    assert sum(len(flow.streams) for flow in tally.flows.values()) == 4
    assert tally.untracked == 3 * 2 + 6  # the packets of PIDs 5-12


def test_hops_are_unknown_without_the_senders_ttl() -> None:
    tally = Tally(FrameStamps())
    tally.account(arriving(frame(7, 0), ttl=6), 0)
    assert (senders(tally)[0].hops_min, senders(tally)[0].hops_max) == (None, None)


def test_flows_are_per_sender_and_per_group() -> None:
    tally = Tally(FrameStamps())
    for sender, group in ((1, GROUP), (2, GROUP), (1, "239.9.9.9"), (1, GROUP), (3, None)):
        tally.account(arriving(frame(sender, 0), group=group), 0)
    keys = [(s.stream, s.group, s.received) for s in senders(tally)]
    assert keys == [(1, GROUP, 2), (2, GROUP, 1), (1, "239.9.9.9", 1), (3, "?", 1)]


def test_source_is_the_first_datagrams() -> None:
    tally = Tally(FrameStamps())
    tally.account(arriving(frame(1, 0), source=("192.0.2.9", 1)), 0)
    tally.account(arriving(frame(1, 1), source=("192.0.2.8", 1)), 0)
    assert senders(tally)[0].source == "192.0.2.9"


def test_refused_datagrams_are_counted_by_reason() -> None:
    tally = Tally(keyed())
    now = time.time_ns()
    valid = frame(7, 0, now, key=KEY)
    for data in (
        valid,
        b"hello",  # foreign
        b"MCTF\x09" + valid[5:],  # unsupported
        valid + b"!",  # malformed
        frame(7, 1, now),  # unauthenticated
        frame(7, 2, now, key=OTHER_KEY),  # forged
        valid,  # replayed
        frame(7, 3, now - 60 * 10**9, key=KEY),  # stale: a minute old
    ):
        tally.account(arriving(data), now)
    result = report(tally)
    assert result.rejected == {reason.value: 1 for reason in Reason}
    assert (result.datagrams, result.received, result.foreign) == (8, 1, 1)


def test_with_a_key_frames_count_only_on_the_group_and_port_they_were_sent_to() -> None:
    tally = Tally(keyed())
    now = time.time_ns()
    data = frame(7, 0, now, key=KEY)
    tally.account(arriving(data, group="239.1.2.4"), now)  # replayed to another group
    other_port = Tally(FrameStamps(KEY, port=5001))
    other_port.account(arriving(data), now)  # to another port
    assert tally.rejected["forged"] == other_port.rejected["forged"] == 1
    tally.account(arriving(data), now)
    assert senders(tally)[0].received == 1


def test_a_truncated_frame_counts_by_its_header_only_without_a_key() -> None:
    data = frame(7, 4)
    plain = Tally(FrameStamps())
    plain.account(arriving(data, room=34), 0)
    (sender,) = senders(plain)
    assert (plain.truncated, sender.truncated, sender.received) == (1, 1, 1)
    assert sender.bytes == len(data)  # the real length, not what fit
    cut = Tally(keyed())
    cut.account(arriving(frame(7, 4, key=KEY), room=40), 0)
    cut.account(arriving(b"x" * 100, room=40), 0)
    assert (cut.truncated, senders(cut), sum(cut.rejected.values())) == (2, [], 0)


def test_a_truncated_foreign_datagram_is_only_truncated() -> None:
    tally = Tally(FrameStamps())
    tally.account(arriving(b"x" * 100, room=50), 0)
    assert (tally.datagrams, tally.truncated, senders(tally)) == (1, 1, [])
    assert sum(tally.rejected.values()) == 0


def test_flows_beyond_the_limit_are_untracked() -> None:
    tally = Tally(FrameStamps(), max_flows=2)
    for sender in (1, 2, 3, 3, 1):
        tally.account(arriving(frame(sender, 0)), 0)
    assert ([s.stream for s in senders(tally)], tally.untracked) == ([1, 2], 2)


def test_the_report_carries_the_sockets_figures() -> None:
    tally = Tally(FrameStamps())
    tally.account(arriving(frame(7, 0)), 0)
    tally.account(arriving(frame(7, 2)), 0)
    tally.account(arriving(b"foreign"), 0)
    result = report(tally, drops=3, wrong_interface=2, receive_buffer=8192)
    assert (result.drops, result.wrong_interface, result.receive_buffer) == (3, 2, 8192)
    assert (result.groups, result.port, result.seconds, result.interrupted) == (
        (GROUP,),
        5000,
        2.0,
        False,
    )
    summary = result.as_dict()["summary"]
    assert isinstance(summary, dict)
    assert (summary["received"], summary["lost"], summary["foreign"], summary["drops"]) == (
        2,
        1,
        1,
        3,
    )
    text = str(result)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} ", text)  # the wall clock
    assert f" 3 datagrams on {GROUP} port 5000 in 2.000 s; kernel drops 3" in text
    assert "lost 1 (33.33%)" in text
    assert "not counted: foreign 1;" in text


class _Numbered:
    """A payload of another kind: a 4-byte stream id and a 4-byte sequence number."""

    kind = Kind.RTP  # counted per stream id, as RTP's SSRC

    def read(
        self,
        payload: bytes,
        *,
        truncated: bool = False,
        group: str | None = None,
        arrived: int | None = None,
    ) -> Stamps | Rejection:
        if len(payload) != 8:
            return Rejection(Reason.FOREIGN, "not 8 bytes")
        stream, sequence = struct.unpack("!II", payload)
        return (Stamp(stream, sequence, 0),)


def test_a_reader_of_another_payload_plugs_in() -> None:
    tally = Tally(_Numbered())
    for stream, sequence in ((1, 0), (1, 2), (2, 5), (1, 2)):
        tally.account(arriving(struct.pack("!II", stream, sequence)), 0)
    tally.account(arriving(b"not eight"), 0)
    counts = [(s.stream, s.received, s.lost, s.duplicates) for s in senders(tally)]
    assert counts == [(1, 3, 1, 1), (2, 1, 0, 0)]
    assert tally.rejected["foreign"] == 1


def test_a_short_key_is_refused() -> None:
    with pytest.raises(AuthKeyError):
        FrameStamps(b"short")


def test_intervals_report_what_changed_in_each() -> None:
    tally = Tally(FrameStamps())
    intervals = Intervals(tally, 1.0, start=100.0)
    assert (intervals.due, intervals.poll(100.5)) == (101.0, None)
    for sequence in (0, 1, 3):
        tally.account(arriving(frame(7, sequence)), 0)
    tally.account(arriving(b"foreign"), 0)
    first = intervals.poll(101.25)  # late: the interval ends when it is asked
    assert first is not None
    assert (first.start, first.end, first.received, first.lost, first.rejected) == (
        0.0,
        1.25,
        3,
        1,
        1,
    )
    assert first.bytes == 3 * len(frame(7, 0)) and first.datagrams == 4
    assert intervals.due == 102.25
    tally.account(arriving(frame(7, 3)), 0)
    second = intervals.poll(102.25)
    assert second is not None
    assert (second.start, second.end, second.received, second.duplicates, second.lost) == (
        1.25,
        2.25,
        1,
        1,
        0,
    )
    assert "[  1.25-  2.25 s] datagrams       1" in str(second)


def test_interval_rejections_include_untracked_frames() -> None:
    tally = Tally(FrameStamps(), max_flows=1)
    intervals = Intervals(tally, 0.5, start=0.0)
    tally.account(arriving(frame(1, 0)), 0)
    tally.account(arriving(frame(2, 0)), 0)
    line = intervals.poll(0.5)
    assert line is not None and (line.received, line.rejected) == (1, 1)


@pytest.mark.parametrize("every", [0.0, -1.0, float("inf"), float("nan")])
def test_an_interval_must_be_a_positive_number_of_seconds(every: float) -> None:
    with pytest.raises(OptionError, match="above zero"):
        Intervals(Tally(FrameStamps()), every, start=0.0)
