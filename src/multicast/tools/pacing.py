"""Send rates: parsing ``--rate`` and spacing datagrams to keep it. Pure code.

A rate is written as iperf2 writes its ``-b``: a number, an optional prefix, an optional
unit. Without a unit it is **bits** per second (``10M``); ``pps`` makes it datagrams per
second (``1000pps``), ``bps`` says bits (``800kbps``) and ``Bps`` bytes (``10MBps``). Bits
and bytes are counted over the UDP payload. As in iperf2, lowercase prefixes are powers of
ten (``k`` 10^3, ``m`` 10^6, ``g`` 10^9) and uppercase ones powers of two (``K`` 2^10, ``M``
2^20, ``G`` 2^30). ``max`` sends as fast as the host allows.

>>> parse_rate("10m").datagrams_per_second(1250)
1000.0
>>> parse_rate("2kpps").datagrams_per_second(1250)
2000.0
>>> parse_rate("1MBps").per_second, parse_rate("1MBps").unit
(1048576.0, 'bytes')
>>> parse_rate("max").datagrams_per_second(1250) is None
True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from multicast.exceptions import OptionError

__all__ = ["MAX_DATAGRAMS_PER_SECOND", "Pacer", "Rate", "check_rate", "parse_rate"]

Unit = Literal["bits", "bytes", "datagrams"]

_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "K": 2.0**10, "M": 2.0**20, "G": 2.0**30}
_UNITS: dict[str, Unit] = {"": "bits", "bps": "bits", "Bps": "bytes", "pps": "datagrams"}
_RATE = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ ]*(?P<prefix>[kmgKMG]?)(?P<unit>bps|Bps|pps)?",
    re.ASCII,
)
_SYMBOL = {"bits": "bit/s", "bytes": "byte/s", "datagrams": "datagrams/s"}
MAX_DATAGRAMS_PER_SECOND = 10_000_000
"""A rate above this many datagrams a second is refused: no host sends that; ``max`` is the
way to send as fast as the host allows."""
# Lateness the schedule makes up for by sending back to back; beyond it, the lost time is lost.
_MAX_CATCH_UP = 0.01


@dataclass(frozen=True, slots=True)
class Rate:
    """A send rate: ``per_second`` bits, bytes or datagrams (``unit``), or None for as fast
    as the host allows."""

    per_second: float | None
    unit: Unit = "bits"

    def datagrams_per_second(self, size: int) -> float | None:
        """The rate in datagrams per second for datagrams of ``size`` bytes (None: no limit)."""
        if self.per_second is None:
            return None
        if self.unit == "datagrams":
            return self.per_second
        return self.per_second / (size * (8 if self.unit == "bits" else 1))

    def bits_per_second(self) -> float | None:
        """The rate in bits per second (None: no limit); :class:`OptionError` for a rate in
        datagrams, whose size this does not know."""
        if self.per_second is None:
            return None
        if self.unit == "datagrams":
            raise OptionError(f"rate {self} is in datagrams, not bits or bytes, per second")
        return self.per_second * (8 if self.unit == "bytes" else 1)

    def __str__(self) -> str:
        if self.per_second is None:
            return "max"
        return f"{self.per_second:g} {_SYMBOL[self.unit]}"


def parse_rate(text: str) -> Rate:
    """Parse a ``--rate`` value; :class:`OptionError` names what is wrong with it."""
    value = text.strip()
    if value.lower() == "max":
        return Rate(None)
    match = _RATE.fullmatch(value)
    if match is None:
        raise OptionError(
            f"rate {text!r} is not a number with an optional prefix (k m g, K M G) and unit "
            "(bps: bits, the default; Bps: bytes; pps: datagrams), nor 'max'"
        )
    amount = float(match["number"]) * _PREFIX[match["prefix"]]
    if not (amount > 0 and math.isfinite(amount)):
        raise OptionError(f"rate {text!r} must be above zero")
    return Rate(amount, _UNITS[match["unit"] or ""])


def check_rate(rate: Rate, size: int) -> str | None:
    """Refuse a rate no host can send (:class:`OptionError`); a warning for a rate of less
    than one datagram a second, which is likely a unit mistaken, else None."""
    per_second = rate.datagrams_per_second(size)
    if per_second is None:
        return None
    if per_second > MAX_DATAGRAMS_PER_SECOND:
        speed = (
            "" if rate.unit == "datagrams" else f" ({per_second:.4g} datagrams/s of {size} bytes)"
        )
        raise OptionError(
            f"rate {rate}{speed} is above {MAX_DATAGRAMS_PER_SECOND:,} datagrams/s; use "
            "--rate max to send as fast as the host allows"
        )
    if per_second < 1:
        return (
            f"rate {rate} is one datagram of {size} bytes every {1 / per_second:.4g} s "
            "(a rate without a unit is in bits/s; write pps for datagrams/s)"
        )
    return None


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
        left = self.due - now  # no max(): ping calls this per probe, and builtins cost
        return round(left, 9) if left > 0 else 0.0

    def sent(self, count: int, *, now: float) -> None:
        """Account ``count`` datagrams sent at ``now``."""
        if self.rate is not None:
            floor = now - _MAX_CATCH_UP
            self.due = (self.due if self.due > floor else floor) + count / self.rate
