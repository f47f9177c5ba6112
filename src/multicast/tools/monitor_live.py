"""The monitor's full-screen live view, drawn with ``rich`` (the optional extra
``multicast[live]``): a line of totals, then one row per flow, the lossiest first, each with
a sparkline of its rate over the last intervals. Only used on a terminal.

:func:`render` builds what is shown from an interval and the tally (testable with rich's
own console capture); :class:`LiveView` redraws it in place each interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from multicast.tools.monitor_output import Output
from multicast.tools.monitor_report import IntervalReport, MonitorReport, wall_clock
from multicast.tools.payloads import stream_text
from multicast.tools.tally import Flow, Tally

__all__ = ["LiveView", "render", "sparkline"]

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """One bar per value: eighths of the largest (all lowest when every value is 0).

    >>> sparkline([0, 1, 2, 4])
    '▁▂▄█'
    """
    top = max(values, default=0.0)
    if top <= 0:
        return _BARS[0] * len(values)
    steps = len(_BARS)
    return "".join(_BARS[max(0, min(steps, math.ceil(v / top * steps)) - 1)] for v in values)


def _loss(flow: Flow) -> float:
    expected = flow.total("unique") + flow.lost
    return flow.lost / expected if expected else 0.0


def render(
    tally: Tally, interval: IntervalReport, *, title: str, alarms: int = 0, rows: int = 40
) -> RenderableType:
    """The view after ``interval``: totals on top, then at most ``rows`` flows by loss."""
    flows = sorted(tally.flows.values(), key=lambda f: (-_loss(f), f.group, f.source, f.port))
    lost = sum(flow.lost for flow in flows)
    expected = sum(flow.total("unique") for flow in flows) + lost
    header = Text.assemble(
        (f"{wall_clock(interval.at)}  ", "bold"),
        f"{title}  {interval.end:.0f} s  ",
        f"{len(flows)} flows  {interval.bits_per_second / 1e6:.3f} Mbit/s  ",
        f"{interval.datagrams_per_second:.0f} pps  ",
        (f"lost {lost} ({lost / expected if expected else 0:.2%})", "red" if lost else ""),
        f"  kernel drops {interval.drops}  ",
        (f"alarms {alarms}", "bold red" if alarms else ""),
    )
    table = Table(expand=True, pad_edge=False, box=None, header_style="bold")
    for name, justify in (
        ("group", "left"),
        ("source", "left"),
        ("payload", "left"),
        ("Mbit/s", "right"),
        ("pps", "right"),
        ("lost", "right"),
        ("loss", "right"),
        ("dup", "right"),
        ("reord", "right"),
        ("jitter ms", "right"),
        ("rate", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    span = max(interval.end - interval.start, 1e-9)
    rates = {(f["group"], f["source"], f["port"], f["stream"]): f for f in interval.flows}
    for flow in flows[:rows]:
        now = rates.get(
            (
                flow.group,
                flow.source,
                flow.port,
                stream_text(flow.kind, flow.stream),
            )
        )
        bits = float(str(now["bits_per_second"])) if now else 0.0
        pps = int(str(now["datagrams"])) / span if now else 0.0
        jitter = flow.jitter_seconds
        loss = _loss(flow)
        table.add_row(
            flow.group,
            f"{flow.source}:{flow.port}",
            f"{flow.kind.value} {stream_text(flow.kind, flow.stream) or ''}".rstrip(),
            f"{bits / 1e6:.3f}",
            f"{pps:.0f}",
            str(flow.lost),
            Text(f"{loss:.2%}", style="red" if loss else ""),
            str(flow.duplicates),
            str(flow.reordered),
            "-" if jitter is None else f"{jitter * 1000:.3f}",
            sparkline(list(flow.history)),
        )
    hidden = len(flows) - rows
    parts: list[RenderableType] = [header, table]
    if hidden > 0:
        parts.append(Text(f"... {hidden} more flows (the least lossy)", style="dim"))
    return Group(*parts)


class LiveView(Output):
    """Redraws :func:`render` of ``tally`` in place, on the whole screen of ``console``,
    each interval; the screen is given back when the run ends (the report is printed then)."""

    def __init__(self, console: Console, *, title: str, tally: Tally) -> None:
        self.console = console
        self.title = title
        self.tally = tally
        self.alarms = 0
        self.live = Live(console=self.console, auto_refresh=False, screen=True)
        self.started = False

    def interval(self, report: IntervalReport) -> None:
        self.alarms += len(report.alarms)
        rows = max(5, self.console.size.height - 4)
        view = render(self.tally, report, title=self.title, alarms=self.alarms, rows=rows)
        if not self.started:
            self.live.start()
            self.started = True
        self.live.update(view, refresh=True)

    def final(self, report: MonitorReport) -> None:
        self.close()

    def close(self) -> None:
        if self.started:
            self.live.stop()
            self.started = False
