"""Join and leave latency, the channel-change times of IPTV: per joined channel, and how the
leave was measured (pure: the monitor fills them in, its report shows them).

:class:`ChannelReport` is one channel: from its join to its first datagram, and from its
leave to its last. :class:`LeaveMeasure` says where that last datagram was seen: on the wire
(a packet socket, :mod:`multicast.tools.wire`), which shows how long the network goes on
sending after the leave; or, without one, through the monitor's own socket, which shows only
what was already inside this host.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChannelReport", "LeaveMeasure", "latency_lines"]


@dataclass(frozen=True, slots=True)
class ChannelReport:
    """A joined group: when it was joined and left, and how long its datagrams took to come
    and to stop (the channel-change times of IPTV)."""

    channel: str  # the group, or SOURCE,GROUP
    group: str
    joined: float  # wall clock, seconds
    join_ms: float | None  # from the join to the first datagram
    left: float | None = None
    leave_ms: float | None = None  # from the leave to the last datagram after it
    after_leave: int | None = None  # datagrams on the wire after the leave (None: not watched)
    still_arriving: bool | None = None  # on the wire when the wait ended (None: not watched)

    def as_dict(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "joined": self.joined,
            "join_ms": None if self.join_ms is None else round(self.join_ms, 3),
            "left": self.left,
            "leave_ms": None if self.leave_ms is None else round(self.leave_ms, 3),
            "after_leave": self.after_leave,
            "still_arriving": self.still_arriving,
        }


@dataclass(frozen=True, slots=True)
class LeaveMeasure:
    """How the leave latency was measured: for ``wait`` seconds after the leave, on the wire
    of ``interfaces``, or (``wire`` false) through the monitor's socket, ``note`` saying why."""

    wait: float
    wire: bool
    interfaces: tuple[str, ...] = ()
    drops: int = 0  # frames the packet sockets dropped (queue full): the last may be among them
    note: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "wait": self.wait,
            "measured": "wire" if self.wire else "socket",
            "interfaces": list(self.interfaces),
            "drops": self.drops,
            "note": self.note,
        }


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    middle = ordered[len(ordered) // 2]
    return f"min {ordered[0]:.3f} / median {middle:.3f} / max {ordered[-1]:.3f} ms"


def _groups(count: int) -> str:
    return f"{count} group{'' if count == 1 else 's'}"


def _leave_lines(channels: tuple[ChannelReport, ...], leave: LeaveMeasure) -> list[str]:
    if not leave.wire:
        leaves = [c.leave_ms for c in channels if c.leave_ms is not None]
        counted = f"{_groups(len(leaves))}: {_spread(leaves)}" if leaves else "none after it"
        return [
            "  leave to last datagram, through the socket only (what was already inside this "
            f"host), {counted}",
            f"  wire not watched: {leave.note}",
        ]
    stopped = [c.leave_ms for c in channels if c.leave_ms is not None and not c.still_arriving]
    still = sum(1 for c in channels if c.still_arriving)
    silent = sum(1 for c in channels if c.after_leave == 0)
    parts = [f"{_groups(len(stopped))} stopped, {_spread(stopped)}"] if stopped else []
    if still:
        parts.append(f"{_groups(still)} still arriving when the wait ended")
    if silent:
        parts.append(f"{_groups(silent)} with none after the leave")
    if leave.drops:
        parts.append(f"{leave.drops} frames dropped by the watch: the last may be among them")
    if leave.note:
        parts.append(leave.note)
    where = ", ".join(leave.interfaces)
    watched = f"on the wire of {where} for {leave.wait:.3f} s"
    return [f"  leave to last datagram, {watched}: " + "; ".join(parts)]


def latency_lines(channels: tuple[ChannelReport, ...], leave: LeaveMeasure | None) -> list[str]:
    """The report's lines on join and leave latency (none when there is nothing to say)."""
    lines = []
    joins = [c.join_ms for c in channels if c.join_ms is not None]
    if joins:
        silent = len(channels) - len(joins)
        lines.append(
            f"  join to first datagram, {len(joins)} groups: {_spread(joins)}"
            + (f"; {silent} groups silent" if silent else "")
        )
    if leave is not None:
        lines += _leave_lines(channels, leave)
    return lines
