"""Payload readers and their detection (:mod:`multicast.tools.payloads`), fed to a tally.

Each kind of stream is built with gaps, duplicates and reordering of known counts; the
tally must count exactly those, whichever way it reads the payload (told, or detected).
"""

from __future__ import annotations

import doctest
import random
import re
import struct
from collections.abc import Callable

import pytest

from multicast.core import Datagram
from multicast.tools import payloads as payloads_module
from multicast.tools.framing import Reason, Rejection, encode_frame
from multicast.tools.monitor_report import FlowReport, MonitorReport
from multicast.tools.payloads import (
    DETECT_AFTER,
    Detector,
    FrameStamps,
    IperfStamps,
    Kind,
    RawStamps,
    RtpStamps,
    Stamp,
    TransportStreamStamps,
    reader_for,
)
from multicast.tools.stats import DelayHistogram
from multicast.tools.tally import Tally

GROUP = "239.1.2.3"
SOURCE = ("192.0.2.1", 5004)
MS = 1_000_000

# Datagram numbers as they arrive: 100 sent, 10, 11 and 50 lost, 20 and 70 twice (20 a
# little later), 31 before 30 and 80 after 82. Displacements stay small: MPEG-TS's 4-bit
# continuity counters can only place a packet within 8 of the last.
LOST = (10, 11, 50)
ORDER = [n for n in range(100) if n not in LOST]
ORDER.insert(ORDER.index(21) + 1, 20)
ORDER.insert(ORDER.index(70) + 1, 70)
_AT = ORDER.index(30)
ORDER[_AT : _AT + 2] = [31, 30]
ORDER.remove(80)
ORDER.insert(ORDER.index(82) + 1, 80)
COUNTS = {"received": 99, "unique": 97, "lost": 3, "duplicates": 2, "reordered": 2, "gaps": 4}


def arriving(payload: bytes, *, source: tuple[str, int] = SOURCE, room: int | None = None):  # type: ignore[no-untyped-def]
    kept = payload if room is None else payload[:room]
    return Datagram(kept, source, GROUP, truncated=len(kept) < len(payload), size=len(payload))


def rtp(sequence: int, timestamp: int, *, ssrc: int = 0x1234, payload_type: int = 33) -> bytes:
    header = struct.pack("!BBHII", 0x80, payload_type, sequence % 65536, timestamp % 2**32, ssrc)
    return header + bytes(1316)


def iperf(sequence: int, sent_ns: int, *, final: bool = False) -> bytes:
    number = -sequence if final else sequence
    seconds, rest = divmod(sent_ns, 1_000_000_000)
    low, high = number & 0xFFFFFFFF, number >> 32
    return struct.pack("!IIIi", low, seconds, rest // 1000, high) + bytes(1454)


PIDS = (0x100, 0x101, 0x102)


def ts_packet(pid: int, counter: int, *, discontinuity: bool = False) -> bytes:
    if discontinuity:  # an adaptation field with the discontinuity indicator, then payload
        head = bytes([0x47, pid >> 8, pid & 0xFF, 0x30 | counter % 16, 1, 0x80])
    else:
        head = bytes([0x47, pid >> 8, pid & 0xFF, 0x10 | counter % 16])
    return head + bytes(188 - len(head))


def ts_datagram(number: int) -> bytes:
    """Two packets of each PID (counters 2n and 2n+1), then a null packet."""
    packets = [ts_packet(pid, 2 * number + k) for pid in PIDS for k in (0, 1)]
    return b"".join(packets) + ts_packet(0x1FFF, 0)


BUILDERS: dict[Kind, Callable[[int], bytes]] = {
    Kind.FRAMES: lambda n: encode_frame(7, n, b"x" * 100, timestamp=n * 20 * MS),
    Kind.RTP: lambda n: rtp(65500 + n, 2**32 - 10_000 + n * 1800),  # 20 ms at 90 kHz
    Kind.IPERF: lambda n: iperf(n + 1, n * 20 * MS, final=n == 99),
    Kind.MPEGTS: ts_datagram,
}


def fed(tally: Tally, kind: Kind, order: list[int] = ORDER) -> Tally:
    for n in order:
        tally.account(arriving(BUILDERS[kind](n)), n * 20 * MS + 5 * MS)
    return tally


def rows(tally: Tally) -> list[FlowReport]:
    return [FlowReport.of(flow) for flow in tally.rows()]


def test_doctests() -> None:
    assert doctest.testmod(payloads_module).failed == 0


@pytest.mark.parametrize("kind", [Kind.FRAMES, Kind.RTP, Kind.IPERF], ids=lambda k: k.value)
@pytest.mark.parametrize("detected", [False, True], ids=["told", "detected"])
def test_each_kind_counts_loss_duplicates_and_reordering(kind: Kind, detected: bool) -> None:
    tally = fed(Tally(None if detected else reader_for(kind)), kind)
    (row,) = rows(tally)
    assert row.payload == kind.value
    counts = {name: getattr(row, name) for name in COUNTS}
    assert counts == COUNTS
    assert row.datagrams == 99 and tally.datagrams == 99
    assert row.jitter_ms == pytest.approx(0.0)  # sent and received 20 ms apart, each


@pytest.mark.parametrize("detected", [False, True], ids=["told", "detected"])
def test_mpegts_counts_per_pid_continuity(detected: bool) -> None:
    tally = fed(Tally(None if detected else TransportStreamStamps()), Kind.MPEGTS)
    (row,) = rows(tally)
    assert row.payload == "mpegts" and row.datagrams == 99
    per_pid = {"packets": 198, "lost": 6, "duplicates": 4, "reordered": 4}
    assert row.streams == dict.fromkeys(PIDS, per_pid)
    assert (row.received, row.lost, row.duplicates, row.reordered, row.gaps) == (
        594,
        18,
        12,
        12,
        12,
    )
    assert row.jitter_ms is None and row.delays is None  # no send times in TS


def test_a_ts_discontinuity_restarts_the_count_without_loss() -> None:
    tally = Tally(TransportStreamStamps())
    counters = [5, 6, 7, 0, 1]  # a restart at 0 (discontinuity indicator), then on
    for index, counter in enumerate(counters):
        packet = ts_packet(0x100, counter, discontinuity=index == 3)
        tally.account(arriving(packet * 1), index * MS)
    tally.account(arriving(ts_packet(0x100, 3)), 9 * MS)  # then a gap of one
    (row,) = rows(tally)
    assert (row.received, row.lost, row.gaps) == (6, 1, 1)


def test_ts_packets_without_payload_and_null_packets_do_not_count() -> None:
    adaptation_only = bytes([0x47, 0x01, 0x00, 0x25, 183, 0]) + bytes(182)
    stamps = TransportStreamStamps().read(adaptation_only + ts_packet(0x1FFF, 3))
    assert stamps == ()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (bytes(187), Reason.FOREIGN),
        (ts_packet(0x100, 0)[:-1] + b"\x00" + ts_packet(0x100, 1)[1:], Reason.FOREIGN),
        (b"\x47" + bytes(187) + b"\x46" + bytes(187), Reason.FOREIGN),
    ],
)
def test_ts_refuses_what_is_not_whole_packets(payload: bytes, reason: Reason) -> None:
    result = TransportStreamStamps().read(payload)
    assert isinstance(result, Rejection) and result.reason is reason


def test_rtp_jitter_is_rfc_3550s_hand_computed() -> None:
    """8 kHz audio, a packet every 20 ms (160 units), arriving at 0, 20, 41, 60 and 83 ms:
    transit 0, 0, 8, 0, 24 units; |D| 0, 8, 8, 24; J = 0, 0.5, 0.96875, 2.408203125 units,
    which is 0.301025390625 ms."""
    tally = Tally(RtpStamps())
    for index, arrived_ms in enumerate((0, 20, 41, 60, 83)):
        tally.account(arriving(rtp(index, index * 160, payload_type=0)), arrived_ms * MS)
    (row,) = rows(tally)
    assert row.jitter_ms == pytest.approx(2.408203125 / 8000 * 1000)


def test_rtp_uses_the_clock_given_for_dynamic_payload_types() -> None:
    tally = Tally(RtpStamps(clock=48000))
    for index, arrived_ms in enumerate((0, 20, 41)):
        tally.account(arriving(rtp(index, index * 960, payload_type=111)), arrived_ms * MS)
    (row,) = rows(tally)
    # transit 0, 0, 48 units at 48 kHz: J = 3 units = 0.0625 ms
    assert row.jitter_ms == pytest.approx(3 / 48)


def test_rtp_streams_are_told_apart_by_ssrc() -> None:
    tally = Tally()
    for n in range(5):
        for ssrc in (1, 2):
            tally.account(arriving(rtp(n, n * 3000, ssrc=ssrc)), n * MS)
    assert sorted((row.stream, row.received, row.lost) for row in rows(tally)) == [
        (1, 5, 0),
        (2, 5, 0),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        bytes(11),
        bytes([0x40]) + bytes(20),  # version 1
        bytes([0x80, 200]) + bytes(20),  # RTCP sender report
        bytes([0x81]) + bytes(12),  # one CSRC announced, none there
        bytes([0x90]) + bytes(13),  # an extension cut short
        bytes([0xA0]) + bytes(10) + b"\x00",  # padding of 0
    ],
)
def test_rtp_refuses_what_is_not_rtp(payload: bytes) -> None:
    assert isinstance(RtpStamps().read(payload), Rejection)


def test_iperf_reads_its_final_datagram_and_send_time() -> None:
    ((stamp,),) = [IperfStamps().read(iperf(200, 1_500_000_000, final=True))]
    assert isinstance(stamp, Stamp)
    assert (stamp.sequence, stamp.sent) == (200, 1_500_000_000)
    old_final = struct.pack("!iIIi", -7, 1, 2, 0)  # a 32-bit sender
    assert IperfStamps().read(old_final)[0].sequence == 7  # type: ignore[index]
    assert isinstance(IperfStamps().read(struct.pack("!iIIi", 1, 1, 10**6, 0)), Rejection)


def test_one_way_delays_of_frames() -> None:
    tally = Tally(FrameStamps())
    for n, delay_us in enumerate((100, 110, 120, 3000)):
        tally.account(arriving(encode_frame(7, n, timestamp=n * MS)), n * MS + delay_us * 1000)
    tally.account(arriving(encode_frame(7, 9, timestamp=50 * MS)), 49 * MS)  # clock ahead
    report = MonitorReport.of(
        tally, groups=(GROUP,), port=5004, seconds=1, drops=0, wrong_interface=0, receive_buffer=1
    )
    delays = report.delays()
    assert delays is not None
    assert (delays.count, delays.negative, delays.percentile(0.5)) == (4, 1, 0.11)
    assert delays.percentile(0.99) == pytest.approx(3.0, rel=0.02)
    summary = report.as_dict()["delay"]
    assert isinstance(summary, dict) and summary["p50_ms"] == 0.11 and summary["negative"] == 1
    assert "one-way delay p50/p90/p99 0.110/" in str(report)


def test_the_delay_histogram_has_bins_of_powers_of_two() -> None:
    delays = DelayHistogram()
    for microseconds in (0, 1, 3, 3, 700):
        delays.add(microseconds * 1000)
    bins = delays.bins()
    assert bins[0] == (0.0, 0.001, 1) and bins[1] == (0.001, 0.002, 1)
    assert bins[2] == (0.002, 0.004, 2) and bins[-1] == (0.512, 1.024, 1)
    assert sum(count for _, _, count in bins) == 5
    with pytest.raises(ValueError, match="no delays"):
        DelayHistogram().percentile(0.5)


def test_detection_never_decides_from_one_datagram() -> None:
    tally = Tally()
    tally.account(arriving(encode_frame(7, 0)), 0)
    (row,) = rows(tally)
    assert (row.payload, row.datagrams, row.received) == ("undecided", 1, 0)
    tally.account(arriving(encode_frame(7, 1)), 1)
    assert rows(tally)[0].payload == "undecided"
    tally.account(arriving(encode_frame(7, 2)), 2)
    (row,) = rows(tally)
    assert (row.payload, row.datagrams, row.received) == ("frames", 3, 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda n, r: r.randbytes(300),  # noise
        lambda n, r: bytes(300),  # zeros: an iperf2 header that never moves
        lambda n, r: encode_frame(7, n) if n != 1 else b"hello",  # a stray in a stream
        lambda n, r: rtp(n, 0, ssrc=n),  # RTP whose SSRC changes each time
    ],
    ids=["noise", "zeros", "stray", "ssrc-hopping"],
)
def test_what_no_reader_follows_is_raw(make: Callable[[int, random.Random], bytes]) -> None:
    tally = Tally()
    generator = random.Random(14)
    for n in range(6):
        tally.account(arriving(make(n, generator)), n * MS)
    (row,) = rows(tally)
    assert (row.payload, row.datagrams, row.received, row.bytes > 0) == ("raw", 6, 0, True)
    assert sum(tally.rejected.values()) == 0


def test_raw_flows_still_count_rate_and_arrival_jitter() -> None:
    tally = Tally(RawStamps())
    for arrived_ms in (0, 10, 20, 32, 40):  # gaps 10, 10, 12, 8: changes 0, 2, 4 ms
        tally.account(arriving(b"x" * 125), arrived_ms * MS)
    (row,) = rows(tally)
    assert row.arrival_jitter_ms == pytest.approx((0 + 2 / 16) * 15 / 16 + 4 / 16)
    assert (row.datagrams, row.bytes, row.seconds) == (5, 625, 0.04)
    assert row.datagrams_per_second == pytest.approx(100)
    assert row.bits_per_second == pytest.approx(625 * 8 * 100 / 5)


def test_flows_are_per_source_for_payloads_without_a_stream_id() -> None:
    tally = Tally()
    for n in range(4):
        for port in (5000, 5001):
            tally.account(arriving(iperf(n + 1, n * MS), source=("192.0.2.9", port)), n * MS)
    assert sorted((row.port, row.payload, row.received) for row in rows(tally)) == [
        (5000, "iperf", 4),
        (5001, "iperf", 4),
    ]


def test_the_detector_keeps_what_each_candidate_read() -> None:
    detector = Detector((FrameStamps(), RtpStamps(), TransportStreamStamps(), IperfStamps()))
    chosen = None
    for n in range(DETECT_AFTER):
        chosen = detector.offer(ts_datagram(n))
    assert chosen is not None and chosen.kind is Kind.MPEGTS
    assert len(detector.backlog()) == DETECT_AFTER


def test_detection_is_per_udp_source_and_bounded() -> None:
    tally = Tally(max_flows=2)
    for port in (1, 2, 3):
        tally.account(arriving(encode_frame(port, 0), source=("192.0.2.1", port)), 0)
    assert (len(tally.pending), tally.untracked) == (2, 1)


def test_a_flows_text_names_its_payload_and_pid_errors() -> None:
    order = [0, 1, 2, 4, 5]  # one datagram lost: two packets of each PID
    (row,) = rows(fed(Tally(TransportStreamStamps()), Kind.MPEGTS, order))
    text = str(row)
    assert re.search(r"192\.0\.2\.1:5004 -> 239\.1\.2\.3 mpegts: 5 datagrams", text), text
    assert "TS packets 30, lost 6 (16.67%)" in text
    assert "continuity errors by PID 256: 2 lost, 257: 2 lost, 258: 2 lost" in text
    assert row.as_dict()["pids"] == {
        str(pid): {"packets": 10, "lost": 2, "duplicates": 0, "reordered": 0} for pid in PIDS
    }
