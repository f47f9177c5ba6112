"""Receive statistics: sequence accounting, RFC 3550 jitter and percentiles. Pure code.

>>> track = SequenceTracker()
>>> [track.observe(n).name for n in (1, 2, 4, 3, 3, 6)]
['FIRST', 'IN_ORDER', 'GAP', 'LATE', 'DUPLICATE', 'GAP']
>>> track.received, track.lost, track.duplicates, track.reordered, track.gaps
(6, 1, 1, 1, 2)
>>> summarize([1.0, 2.0, 3.0, 4.0]).p50
2.5
"""

from __future__ import annotations

import enum
import math
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from multicast.exceptions import OptionError

__all__ = [
    "Arrival",
    "DelayHistogram",
    "JitterEstimator",
    "SequenceTracker",
    "Summary",
    "percentile",
    "summarize",
]


class Arrival(enum.Enum):
    """What one sequence number meant when it arrived."""

    FIRST = "first"  # the first number of the stream
    IN_ORDER = "in-order"  # one past the highest so far
    GAP = "gap"  # beyond the highest so far, skipping some numbers
    LATE = "late"  # a number skipped earlier, arriving after higher ones (reordered)
    DUPLICATE = "duplicate"  # already received


class SequenceTracker:
    """Loss, duplicates, reordering and gaps of one sender's sequence numbers.

    The numbers still missing are kept as at most ``memory`` disjoint ranges (16 bytes each),
    so a forward jump of any size costs one range. When more ranges are missing than that,
    the oldest are forgotten, and a number from a forgotten range that still arrives counts
    as a duplicate. Loss is what the lowest-to-highest span expected less the distinct
    numbers received, so a late arrival takes back the loss its gap counted.
    """

    def __init__(self, memory: int = 1024) -> None:
        if memory < 1:
            raise OptionError("memory must hold at least one range")
        self.memory = memory
        self.received = 0  # every arrival, duplicates included
        self.unique = 0  # distinct sequence numbers
        self.duplicates = 0
        self.reordered = 0  # late arrivals that filled a gap
        self.gaps = 0  # forward jumps that skipped at least one number
        self.lowest: int | None = None
        self.highest: int | None = None
        # Missing numbers: sorted disjoint half-open ranges [starts[i], ends[i]), as unsigned
        # 64-bit numbers (sequence numbers are).
        self._starts = array("Q")
        self._ends = array("Q")

    @property
    def expected(self) -> int:
        """Numbers from the lowest to the highest seen."""
        if self.lowest is None or self.highest is None:
            return 0
        return self.highest - self.lowest + 1

    @property
    def lost(self) -> int:
        return self.expected - self.unique

    def observe(self, sequence: int) -> Arrival:
        """Account one arrival of ``sequence``."""
        self.received += 1
        if self.lowest is None or self.highest is None:
            self.lowest = self.highest = sequence
            self.unique = 1
            return Arrival.FIRST
        if sequence > self.highest:
            arrival = Arrival.IN_ORDER
            if sequence > self.highest + 1:
                self._add_missing(len(self._starts), self.highest + 1, sequence)
                self.gaps += 1
                arrival = Arrival.GAP
            self.highest = sequence
            self.unique += 1
            return arrival
        if sequence < self.lowest:
            # Older than anything seen (the stream was joined late, or its first was delayed).
            if sequence + 1 < self.lowest:
                self._add_missing(0, sequence + 1, self.lowest)
            self.lowest = sequence
            return self._late()
        index = bisect_right(self._starts, sequence) - 1
        if index < 0 or sequence >= self._ends[index]:
            self.duplicates += 1
            return Arrival.DUPLICATE
        self._remove_missing(index, sequence)
        return self._late()

    def _late(self) -> Arrival:
        self.unique += 1
        self.reordered += 1
        return Arrival.LATE

    def _add_missing(self, index: int, start: int, end: int) -> None:
        self._starts.insert(index, start)
        self._ends.insert(index, end)
        if len(self._starts) > self.memory:
            del self._starts[0], self._ends[0]

    def _remove_missing(self, index: int, sequence: int) -> None:
        start, end = self._starts[index], self._ends[index]
        if start == sequence and end == sequence + 1:
            del self._starts[index], self._ends[index]
        elif start == sequence:
            self._starts[index] = sequence + 1
        elif end == sequence + 1:
            self._ends[index] = sequence
        else:
            self._ends[index] = sequence
            self._add_missing(index + 1, sequence + 1, end)


class JitterEstimator:
    """Interarrival jitter as RFC 3550 §6.4.1 defines it, in the units of the times given.

    ``J += (|D| - J) / 16`` where ``D`` is the change in transit time between consecutive
    arrivals; a constant clock offset between sender and receiver cancels out.

    >>> jitter = JitterEstimator()
    >>> for sent, arrived in ((0, 100), (10, 110), (20, 130)):
    ...     jitter.update(sent, arrived)
    >>> jitter.value
    0.625
    """

    def __init__(self) -> None:
        self.value = 0.0
        self._transit: int | None = None

    def update(self, sent: int, arrived: int) -> None:
        transit = arrived - sent
        if self._transit is not None:
            self.value += (abs(transit - self._transit) - self.value) / 16
        self._transit = transit


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) of sorted values, interpolating between ranks.

    >>> percentile([10.0, 20.0, 30.0], 0.9)
    28.0
    """
    if not ordered:
        raise OptionError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise OptionError(f"fraction {fraction} is outside 0..1")
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution of a set of measurements (round-trip times, for one)."""

    count: int
    min: float
    avg: float
    max: float
    stddev: float  # population standard deviation
    p50: float
    p90: float
    p99: float

    def as_dict(self) -> dict[str, float]:
        return {
            "min": self.min,
            "avg": self.avg,
            "max": self.max,
            "stddev": self.stddev,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
        }


def summarize(values: Sequence[float]) -> Summary:
    """Count, min, mean, max, standard deviation and percentiles of ``values`` (not empty)."""
    if not values:
        raise OptionError("no values to summarize")
    ordered = sorted(values)
    mean = math.fsum(ordered) / len(ordered)
    variance = math.fsum((v - mean) ** 2 for v in ordered) / len(ordered)
    return Summary(
        count=len(ordered),
        min=ordered[0],
        avg=mean,
        max=ordered[-1],
        stddev=math.sqrt(variance),
        p50=percentile(ordered, 0.50),
        p90=percentile(ordered, 0.90),
        p99=percentile(ordered, 0.99),
    )


class DelayHistogram:
    """One-way delays, in buckets: exact to the microsecond below 128 µs, then 64 buckets
    per power of two (each within 1.6 % of its values). Memory grows with the spread of the
    delays, never with their number.

    A negative delay (the sender's clock ahead of this one) is counted apart.

    >>> delays = DelayHistogram()
    >>> for microseconds in (100, 100, 120, 5000):
    ...     delays.add(microseconds * 1000)
    >>> delays.percentile(0.5), delays.percentile(1.0), delays.count
    (0.1, 4.992, 4)
    """

    SUB = 64  # buckets per power of two, past the exact ones
    EXACT = 2 * SUB  # microseconds counted one by one

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0  # delays of 0 or more
        self.negative = 0
        self.min_ns: int | None = None  # of every delay, negative ones too
        self.max_ns: int | None = None

    @classmethod
    def bucket(cls, microseconds: int) -> int:
        if microseconds < cls.EXACT:
            return microseconds
        shift = microseconds.bit_length() - 7
        return cls.EXACT + (shift - 1) * cls.SUB + (microseconds >> shift) - cls.SUB

    @classmethod
    def lowest(cls, bucket: int) -> int:
        """The smallest number of microseconds in ``bucket``."""
        if bucket < cls.EXACT:
            return bucket
        shift, step = divmod(bucket - cls.EXACT, cls.SUB)
        return (step + cls.SUB) << (shift + 1)

    def add(self, nanoseconds: int) -> None:
        self.min_ns = nanoseconds if self.min_ns is None else min(self.min_ns, nanoseconds)
        self.max_ns = nanoseconds if self.max_ns is None else max(self.max_ns, nanoseconds)
        if nanoseconds < 0:
            self.negative += 1
            return
        index = self.bucket(nanoseconds // 1000)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.count += 1

    def merge(self, other: DelayHistogram) -> None:
        """Add ``other``'s delays to these."""
        for index, count in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + count
        self.count += other.count
        self.negative += other.negative
        for value in (other.min_ns, other.max_ns):
            if value is not None:
                self.min_ns = value if self.min_ns is None else min(self.min_ns, value)
                self.max_ns = value if self.max_ns is None else max(self.max_ns, value)

    def percentile(self, fraction: float) -> float:
        """The ``fraction`` quantile (0..1) of the delays of 0 or more, in milliseconds: the
        lowest value of the bucket that holds it (nearest rank)."""
        if not self.count:
            raise ValueError("percentile of no delays")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction {fraction} is outside 0..1")
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return self.lowest(index) / 1000
        raise AssertionError("the counts add up to the count")  # pragma: no cover

    def bins(self) -> list[tuple[float, float, int]]:
        """The delays in powers of two of microseconds: ``(from_ms, to_ms, count)`` from the
        lowest bin with a delay to the highest."""
        by_power: dict[int, int] = {}
        for index, count in self.counts.items():
            power = self.lowest(index).bit_length()  # 0 for 0 µs, 1 for 1 µs, 2 for 2-3 ...
            by_power[power] = by_power.get(power, 0) + count
        if not by_power:
            return []
        return [
            ((1 << power >> 1) / 1000, (1 << power) / 1000, by_power.get(power, 0))
            for power in range(min(by_power), max(by_power) + 1)
        ]
