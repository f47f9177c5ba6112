"""The sender's rate: fixed, or adaptive to the slowest receiver's loss. Pure: time is an argument.

The adaptive rule is *AIMD-like control on the worst receiver's excess loss* (in the spirit of
NORM-CC and TFMCC, which also follow the worst receiver, but without their round-trip-time
equation: on one segment the round trip is too short to measure, and random loss on a path
is repaired, not a reason to slow down):

- Every receiver reports, about every 100 ms, how many of the sender's packets it missed
  over that interval (``p`` of ``n``), and its kernel's drop count for its socket.
- A receiver's *floor* is the lowest loss among its last 20 reports of at least 200
  packets: loss the path has whatever the rate, which slowing down would not cure.
- Congestion is a receiver's kernel drop count growing (its receive buffer overflowed: it is
  slower than the rate), or its loss above its floor by more than 2 points and more than
  three standard deviations of a loss measured over ``n`` packets, ``3 sqrt(p(1-p)/n)``.
- On congestion the rate is cut to ``decrease`` (3/4) of what was actually sent over the
  last interval (or of the rate, if lower), at most once per ``hold`` (200 ms); otherwise,
  if the rate and not the host was the limit (at least 80 % of it was sent), it grows by
  ``increase`` (x1.1) every ``interval`` (100 ms), up to the ceiling (``--rate``). It
  starts at the ceiling or 1 Gbit/s, whichever is lower, and until the first congestion
  it doubles instead (a slow start, as TCP's): a fast path is found in a few intervals.

So the rate settles just under what the slowest live receiver takes, while a lossy path
(every receiver repairs its loss anyway) does not slow the session down.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["AdaptiveRate", "FixedRate", "RateControl"]

_FLOOR_REPORTS = 20
_FLOOR_PACKETS = 200  # a report over fewer packets does not set the floor


@dataclass(slots=True)
class FixedRate:
    """A constant rate in bits per second (None: as fast as the host sends)."""

    bits_per_second: float | None

    def report(self, receiver: int, loss_ppm: int, packets: int, drops: int, now: float) -> None:
        """Nothing changes a fixed rate."""

    def update(self, now: float, sent_bits: int, *, busy: bool = True) -> None:
        """Nothing changes a fixed rate."""

    def forget(self, receiver: int) -> None:
        """Nothing to forget."""


@dataclass(slots=True)
class _Seen:
    losses: deque[float] = field(default_factory=lambda: deque(maxlen=_FLOOR_REPORTS))
    drops: int | None = None
    congested: bool = False


@dataclass(slots=True)
class AdaptiveRate:
    """The rule in the module's docstring; ``bits_per_second`` is the rate now."""

    ceiling: float
    bits_per_second: float
    floor_rate: float = 1e6
    threshold: float = 0.02
    decrease: float = 0.75
    increase: float = 1.1
    starting: bool = True  # no congestion yet: double rather than increase
    interval: float = 0.1
    hold: float = 0.2
    decreases: int = 0
    _seen: dict[int, _Seen] = field(default_factory=dict)
    _next_update: float = 0.0
    _updated_at: float = 0.0
    _sent_bits: int = 0
    _cut_at: float = float("-inf")

    def report(self, receiver: int, loss_ppm: int, packets: int, drops: int, now: float) -> None:
        """One receiver's report: its loss over ``packets`` and its cumulative kernel drops."""
        seen = self._seen.setdefault(receiver, _Seen())
        loss = loss_ppm / 1e6
        grew = seen.drops is not None and drops > seen.drops
        seen.drops = drops
        if grew:
            seen.congested = True
        if packets <= 0:
            return
        if seen.losses:
            margin = max(self.threshold, 3 * math.sqrt(loss * (1 - loss) / packets))
            if loss - min(seen.losses) > margin:
                seen.congested = True
        if packets >= _FLOOR_PACKETS:
            seen.losses.append(loss)

    def forget(self, receiver: int) -> None:
        """A receiver that finished or was dropped no longer steers the rate."""
        self._seen.pop(receiver, None)

    def update(self, now: float, sent_bits: int, *, busy: bool = True) -> None:
        """Apply the rule once per interval; ``sent_bits`` counts every bit sent so far;
        ``busy``: the sender had data to send all along (its rate says what the host can do)."""
        if now < self._next_update:
            return
        elapsed = now - self._updated_at
        achieved = (sent_bits - self._sent_bits) / elapsed if elapsed > 0 else 0.0
        self._next_update = now + self.interval
        self._updated_at, self._sent_bits = now, sent_bits
        congested = any(seen.congested for seen in self._seen.values())
        for seen in self._seen.values():
            seen.congested = False
        if congested:
            if now - self._cut_at >= self.hold:
                # From what was actually sent: a ceiling the host never reached cuts nothing.
                base = min(self.bits_per_second, achieved) if busy else self.bits_per_second
                self.bits_per_second = max(self.floor_rate, base * self.decrease)
                self._cut_at = now
                self.decreases += 1
                self.starting = False
        elif busy and achieved >= 0.8 * self.bits_per_second:  # the rate was the limit
            factor = 2.0 if self.starting else self.increase
            self.bits_per_second = min(self.ceiling, self.bits_per_second * factor)


RateControl = FixedRate | AdaptiveRate
