"""Send rates: parsing ``--rate`` and spacing datagrams to keep it. Pure code.

A rate is datagrams per second (``1000``, ``2.5k``, ``1000pps``), bits per second
(``800kbps``, ``10Mbps``, ``1Gbps``; bits are counted over the UDP payload), bytes per second
(``50MBps``), or ``max``. A number without a unit is datagrams per second, or bits per second
where the caller asks for iperf2's convention (``parse_rate("10M", bare="bps")``).

>>> parse_rate("10Mbps").datagrams_per_second(1250)
1000.0
>>> parse_rate("2k").datagrams_per_second(1250)
2000.0
>>> parse_rate("max").datagrams_per_second(1250) is None
True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from multicast.exceptions import OptionError

__all__ = ["Pacer", "Rate", "parse_rate"]

_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_RATE = re.compile(
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<prefix>[kmg]?)(?P<unit>pps|bps)?", re.IGNORECASE
)
# Lateness the schedule makes up for by sending back to back; beyond it, the lost time is lost.
_MAX_CATCH_UP = 0.01


@dataclass(frozen=True, slots=True)
class Rate:
    """A send rate: ``per_second`` datagrams or bits, or None for as fast as the host allows."""

    per_second: float | None
    bits: bool = False

    def datagrams_per_second(self, size: int) -> float | None:
        """The rate in datagrams per second for datagrams of ``size`` bytes (None: no limit)."""
        if self.per_second is None:
            return None
        return self.per_second / (8 * size) if self.bits else self.per_second

    def __str__(self) -> str:
        if self.per_second is None:
            return "max"
        return f"{self.per_second:g} {'bit/s' if self.bits else 'datagrams/s'}"


def parse_rate(text: str, *, bare: str = "pps") -> Rate:
    """Parse a ``--rate`` value; :class:`OptionError` names what is wrong with it.

    ``bare`` is the unit of a number without one: ``"pps"`` or ``"bps"`` (iperf2's).
    """
    value = text.strip()
    if value.lower() == "max":
        return Rate(None)
    match = _RATE.fullmatch(value)
    if match is None:
        raise OptionError(
            f"rate {text!r} is not a number with an optional k/M/G prefix and unit pps, bps "
            "or Bps, nor 'max'"
        )
    amount = float(match["number"]) * _PREFIX[match["prefix"].lower()]
    if not (amount > 0 and math.isfinite(amount)):
        raise OptionError(f"rate {text!r} must be above zero")
    unit = match["unit"] or bare
    if unit == "Bps":  # bytes: the one unit whose case matters
        return Rate(amount * 8, bits=True)
    return Rate(amount, bits=unit.lower() == "bps")


class Pacer:
    """When the next batch is due, for ``rate`` datagrams per second (None: always now).

    The schedule is absolute, so sleeping a little too long is made up by sending sooner;
    lateness past 10 ms (a stalled host) is dropped rather than sent as one long burst.

    >>> pacer = Pacer(100.0, start=0.0)
    >>> pacer.delay(0.0), pacer.sent(5, now=0.0), pacer.delay(0.01)
    (0.0, None, 0.04)
    """

    def __init__(self, rate: float | None, *, start: float) -> None:
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise OptionError(f"rate {rate} datagrams/s must be above zero")
        self.rate = rate
        self.due = start

    def delay(self, now: float) -> float:
        """Seconds to wait before the next batch may go (0.0: now)."""
        if self.rate is None:
            return 0.0
        return max(0.0, round(self.due - now, 9))

    def sent(self, count: int, *, now: float) -> None:
        """Account ``count`` datagrams sent at ``now``."""
        if self.rate is not None:
            self.due = max(self.due, now - _MAX_CATCH_UP) + count / self.rate
