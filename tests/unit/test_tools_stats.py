"""Receive statistics and send pacing: pure code, checked against direct definitions."""

from __future__ import annotations

import doctest
import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicast.exceptions import OptionError
from multicast.tools import pacing, stats
from multicast.tools.pacing import Pacer, Rate, check_rate, parse_rate
from multicast.tools.stats import (
    Arrival,
    JitterEstimator,
    SequenceTracker,
    percentile,
    summarize,
)


def test_doctests() -> None:
    assert doctest.testmod(stats).failed == 0
    assert doctest.testmod(pacing).failed == 0


def model(arrivals: list[int]) -> dict[str, int]:
    """The counters by their definitions, computed over the whole arrival list at once."""
    seen: set[int] = set()
    highest: int | None = None
    counts = dict.fromkeys(("duplicates", "reordered", "gaps"), 0)
    for sequence in arrivals:
        if sequence in seen:
            counts["duplicates"] += 1
        elif highest is not None and sequence < highest:
            counts["reordered"] += 1
        elif highest is not None and sequence > highest + 1:
            counts["gaps"] += 1
        seen.add(sequence)
        highest = sequence if highest is None else max(highest, sequence)
    counts["received"] = len(arrivals)
    counts["unique"] = len(seen)
    counts["lost"] = (max(seen) - min(seen) + 1 - len(seen)) if seen else 0
    return counts


def tracked(arrivals: list[int], memory: int = 4096) -> dict[str, int]:
    tracker = SequenceTracker(memory)
    for sequence in arrivals:
        tracker.observe(sequence)
    return {name: getattr(tracker, name) for name in model([])}


@st.composite
def streams(draw: st.DrawFn) -> list[int]:
    """A stream as a network delivers it: some numbers lost, some doubled, some moved."""
    start = draw(st.integers(0, 2**63))
    sent = list(range(start, start + draw(st.integers(0, 120))))
    delivered = [n for n in sent if draw(st.integers(0, 9))]  # about one in ten lost
    delivered += draw(st.lists(st.sampled_from(sent), max_size=10)) if sent else []
    for _ in range(draw(st.integers(0, 20))):
        if len(delivered) > 1:
            i = draw(st.integers(0, len(delivered) - 1))
            j = draw(st.integers(0, len(delivered) - 1))
            delivered.insert(j, delivered.pop(i))
    return delivered


@given(streams())
def test_tracker_matches_the_definitions(arrivals: list[int]) -> None:
    assert tracked(arrivals) == model(arrivals)


@given(st.lists(st.integers(0, 60), max_size=200))
def test_tracker_matches_on_any_sequence(arrivals: list[int]) -> None:
    assert tracked(arrivals) == model(arrivals)


def test_tracker_classifies_each_arrival() -> None:
    tracker = SequenceTracker()
    seen = [tracker.observe(n) for n in (10, 11, 15, 12, 12, 9, 16)]
    assert seen == [
        Arrival.FIRST,
        Arrival.IN_ORDER,
        Arrival.GAP,
        Arrival.LATE,
        Arrival.DUPLICATE,
        Arrival.LATE,  # below the first: the stream was joined late
        Arrival.IN_ORDER,
    ]
    assert (tracker.expected, tracker.lost) == (8, 2)  # 9..16 less 13 and 14


def test_huge_jump_costs_one_range() -> None:
    tracker = SequenceTracker()
    for sequence in (0, 2**63, 1, 2**62):
        tracker.observe(sequence)
    assert tracker.lost == 2**63 + 1 - 4
    assert (tracker.gaps, tracker.reordered) == (1, 2)


def test_forgotten_ranges_count_as_duplicates() -> None:
    """Past its memory the tracker cannot tell a very late number from a repeated one."""
    tracker = SequenceTracker(memory=2)
    for sequence in (0, 2, 4, 6):  # three missing ranges: {1}, {3}, {5}
        tracker.observe(sequence)
    assert tracker.observe(3) is Arrival.LATE
    assert tracker.observe(1) is Arrival.DUPLICATE  # {1} was forgotten first
    assert (tracker.lost, tracker.duplicates) == (2, 1)


def test_jitter_follows_rfc3550() -> None:
    jitter = JitterEstimator()
    transit = [100, 104, 98, 120, 100]
    expected = 0.0
    for i, value in enumerate(transit):
        jitter.update(1000 * i, 1000 * i + value)
        if i:
            expected += (abs(value - transit[i - 1]) - expected) / 16
    assert jitter.value == pytest.approx(expected)
    steady = JitterEstimator()
    for i in range(100):
        steady.update(i * 10 + 5_000_000, i * 10)  # any constant clock offset
    assert steady.value == 0.0


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=50),
    st.sampled_from([0.5, 0.9, 0.99]),
)
def test_percentile_matches_statistics(values: list[float], fraction: float) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]
    assert percentile(sorted(values), fraction) == pytest.approx(expected, abs=1e-6)


def test_summary() -> None:
    summary = summarize([4.0, 1.0, 3.0, 2.0])
    assert (summary.count, summary.min, summary.max, summary.avg) == (4, 1.0, 4.0, 2.5)
    assert summary.stddev == pytest.approx(statistics.pstdev([1, 2, 3, 4]))
    assert summary.p50 == 2.5
    assert summarize([7.0]).as_dict() == dict.fromkeys(
        ("min", "avg", "max", "stddev", "p50", "p90", "p99"), 7.0
    ) | {"stddev": 0.0}
    with pytest.raises(ValueError, match="no values"):
        summarize([])
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 1.5)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1000", Rate(1000.0, "bits")),  # iperf2: a bare number is bits per second
        ("10M", Rate(10 * 2.0**20, "bits")),  # uppercase prefixes are powers of two
        ("10m", Rate(10e6, "bits")),  # lowercase ones powers of ten
        ("2.5k", Rate(2500.0, "bits")),
        ("2.5K", Rate(2560.0, "bits")),
        ("1000pps", Rate(1000.0, "datagrams")),
        ("2kpps", Rate(2000.0, "datagrams")),
        ("800kbps", Rate(800e3, "bits")),
        ("10MBps", Rate(10 * 2.0**20, "bytes")),  # bytes, not megabits
        ("1gbps", Rate(1e9, "bits")),
        ("1G", Rate(2.0**30, "bits")),
        (" MAX ", Rate(None)),
        (".5", Rate(0.5, "bits")),
    ],
)
def test_parse_rate_follows_iperf2(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    "text",
    ["", "fast", "-5", "0", "0pps", "1e3", "10 Mbit", "5x", "10PPS", "\u0661\u0660", "1_000"],
)
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(OptionError, match="rate"):
        parse_rate(text)


def test_a_rate_in_bits_per_second_for_send_file() -> None:
    assert parse_rate("10M").bits_per_second() == 10 * 2**20
    assert parse_rate("5MBps").bits_per_second() == 40 * 2**20
    assert parse_rate("max").bits_per_second() is None
    with pytest.raises(OptionError, match="in datagrams"):
        parse_rate("2kpps").bits_per_second()


def test_rate_in_datagrams() -> None:
    assert parse_rate("8kbps").datagrams_per_second(100) == 10.0
    assert parse_rate("8000").datagrams_per_second(100) == 10.0
    assert parse_rate("1kBps").datagrams_per_second(100) == 10.0
    assert parse_rate("10pps").datagrams_per_second(100) == 10.0
    assert str(parse_rate("10m")) == "1e+07 bit/s"
    assert str(parse_rate("2kBps")) == "2000 byte/s"


def test_absurd_rates_are_refused_and_slow_ones_warned_about() -> None:
    assert check_rate(parse_rate("max"), 1200) is None
    assert check_rate(parse_rate("10m"), 1200) is None
    with pytest.raises(OptionError, match="use --rate max"):
        check_rate(parse_rate("100gpps"), 1200)
    with pytest.raises(OptionError, match="above 10,000,000"):
        check_rate(parse_rate("1000G"), 64)
    warning = check_rate(parse_rate("1000"), 1200)  # bits/s: one datagram every 9.6 s
    assert warning is not None and "every 9.6 s" in warning and "pps" in warning


@given(
    st.floats(1.0, 1e6),
    st.integers(1, 64),
    st.lists(st.floats(0.0, 0.005), min_size=1, max_size=100),
)
def test_pacer_keeps_the_rate_despite_late_wakeups(
    rate: float, burst: int, lateness: list[float]
) -> None:
    """Waking up to 5 ms late each time, the schedule still averages the rate."""
    pacer = Pacer(rate, start=0.0)
    now = sent = 0.0
    for late in lateness:
        now += pacer.delay(now) + late
        assert pacer.delay(now) == 0.0
        pacer.sent(burst, now=now)
        sent += burst
    # Everything sent is due by the schedule, and the schedule is not behind by more than
    # the last lateness plus one batch.
    assert pacer.due >= sent / rate - 1e-9
    assert pacer.due <= now + burst / rate + 1e-9 + 0.005


def test_pacer_drops_a_long_stall() -> None:
    pacer = Pacer(100.0, start=0.0)
    pacer.sent(1, now=0.0)
    pacer.sent(1, now=5.0)  # five seconds late: only 10 ms are made up, not 500 datagrams
    assert pacer.delay(5.0) == 0.0
    pacer.sent(1, now=5.0)
    assert pacer.delay(5.0) == pytest.approx(0.01)
    assert Pacer(None, start=0.0).delay(-1.0) == 0.0
    with pytest.raises(OptionError):
        Pacer(math.inf, start=0.0)
