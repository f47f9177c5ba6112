"""Deadlines and ``poll()`` timeouts: the one way the core turns a timeout into a wait.

>>> poll_milliseconds(None) is None
True
>>> poll_milliseconds(deadline(0))
0
"""

from __future__ import annotations

import math
import time

__all__ = ["deadline", "poll_milliseconds"]

_LONGEST_POLL = 2**31 - 1  # milliseconds: what poll() takes in one call (24 days)


def deadline(timeout: float | None) -> float | None:
    """The ``time.monotonic`` time at which ``timeout`` seconds from now end (None: never;
    a negative timeout is no time)."""
    # No max(): a builtin call costs more than the test, and a busy receiver comes here.
    return None if timeout is None else time.monotonic() + (timeout if timeout > 0 else 0.0)


def poll_milliseconds(deadline: float | None) -> int | None:
    """The ``poll()`` timeout that waits until ``deadline`` (``time.monotonic``; None: no
    limit), or at most the longest single wait: wait again while the deadline is ahead."""
    if deadline is None:
        return None
    left = (deadline - time.monotonic()) * 1000
    return 0 if left <= 0 else _LONGEST_POLL if left >= _LONGEST_POLL else math.ceil(left)
