"""Where the monitor's intervals go: the live view (rendered with rich's own console
capture, no terminal), its fallback without rich, JSON lines, CSV, a log, and the alarms."""

from __future__ import annotations

import csv
import dataclasses
import importlib
import io
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from multicast.core import Datagram
from multicast.exceptions import OptionError
from multicast.tools import monitor_output
from multicast.tools.framing import encode_frame
from multicast.tools.monitor_output import (
    Alarms,
    CsvOutput,
    JsonLinesOutput,
    LinesOutput,
    Output,
    clock_note,
    live_view,
    open_log,
)
from multicast.tools.monitor_report import CSV_FIELDS, SCHEMA, Intervals, MonitorReport
from multicast.tools.tally import Tally

rich = pytest.importorskip("rich", reason="the live view's optional extra (multicast[live])")

MS = 1_000_000
S = 1_000_000_000


def fed() -> tuple[Tally, Intervals]:
    """Two flows: one clean (239.1.1.1), one that lost 2 of 6 (239.1.1.2)."""
    tally = Tally()
    intervals = Intervals(tally, 1.0, start=0.0)
    for n in range(6):
        clean = encode_frame(1, n, b"x" * 100, timestamp=n * MS)
        tally.account(Datagram(clean, ("192.0.2.1", 4000), "239.1.1.1", size=132), n * MS)
    for n in (0, 1, 4, 5):
        lossy = encode_frame(2, n, b"x" * 100, timestamp=n * MS)
        tally.account(Datagram(lossy, ("192.0.2.2", 4000), "239.1.1.2", size=132), n * MS)
    return tally, intervals


def test_the_live_view_puts_totals_on_top_and_the_lossiest_flow_first() -> None:
    from multicast.tools.monitor_live import render, sparkline  # noqa: PLC0415

    tally, intervals = fed()
    line = intervals.poll(1.0, at=1_700_000_000.0, drops=3)
    assert line is not None
    console = rich.console.Console(record=True, width=140, file=io.StringIO())
    console.print(render(tally, line, title="2 groups, port 4000", alarms=1))
    text = console.export_text()
    lines = text.splitlines()
    assert "2 groups, port 4000" in lines[0] and "2 flows" in lines[0]
    assert "lost 2 (16.67%)" in lines[0] and "kernel drops 3" in lines[0] and "alarms 1" in lines[0]
    header = lines[1].split()
    assert header[:3] == ["group", "source", "payload"] and "rate" in header
    assert lines[2].split()[0] == "239.1.1.2" and "33.33%" in lines[2]  # the lossy one first
    assert lines[3].split()[0] == "239.1.1.1"
    assert sparkline([1.0]) in lines[2]
    console = rich.console.Console(record=True, width=140, file=io.StringIO())
    console.print(render(tally, line, title="t", rows=1))
    assert "1 more flows" in console.export_text()


def test_a_sparkline_scales_to_its_largest_value() -> None:
    from multicast.tools.monitor_live import sparkline  # noqa: PLC0415

    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([]) == ""


def test_the_live_view_draws_on_the_whole_screen_and_gives_it_back() -> None:
    from multicast.tools.monitor_live import LiveView  # noqa: PLC0415

    tally, intervals = fed()
    screen = io.StringIO()
    terminal = rich.console.Console(file=screen, force_terminal=True, width=120, height=30)
    view = LiveView(terminal, title="t", tally=tally)
    line = intervals.poll(1.0, at=1_700_000_000.0)
    assert line is not None
    view.interval(line)
    view.close()
    drawn = screen.getvalue()
    assert "\x1b[?1049h" in drawn and "\x1b[?1049l" in drawn  # the alternate screen, left
    assert "239.1.1.2" in drawn


def test_the_live_view_is_chosen_when_rich_is_there() -> None:
    from multicast.tools.monitor_live import LiveView  # noqa: PLC0415

    tally, _ = fed()
    assert isinstance(live_view(io.StringIO(), title="t", tally=tally), LiveView)


def test_without_rich_the_live_view_falls_back_to_interval_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.delitem(sys.modules, "multicast.tools.monitor_live", raising=False)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    tally, intervals = fed()
    stream = io.StringIO()
    view = live_view(stream, title="t", tally=tally)
    assert isinstance(view, LinesOutput)
    line = intervals.poll(1.0, at=1_700_000_000.0)
    assert line is not None
    view.interval(line)
    assert "[  0.00-  1.00 s] datagrams      10" in stream.getvalue()
    with pytest.raises(ImportError):
        importlib.import_module("multicast.tools.monitor_live")


def final_report(tally: Tally, alarms: tuple[str, ...] = ()) -> MonitorReport:
    return MonitorReport.of(
        tally,
        groups=("239.1.1.1", "239.1.1.2"),
        port=4000,
        seconds=1.0,
        drops=0,
        wrong_interface=0,
        receive_buffer=1,
        started=1_700_000_000.0,
        alarms=alarms,
    )


def one_interval_and_the_end(make: Callable[[io.StringIO], Output]) -> str:
    """What the output ``make`` builds writes for one interval of :func:`fed`, and the end."""
    tally, intervals = fed()
    stream = io.StringIO()
    output = make(stream)
    line = intervals.poll(1.0, at=1_700_000_001.0)
    assert line is not None
    output.interval(line)
    output.final(final_report(tally))
    return stream.getvalue()


def test_json_lines_are_one_object_per_interval_and_a_final_one() -> None:
    written = one_interval_and_the_end(JsonLinesOutput)
    first, last = (json.loads(text) for text in written.splitlines())
    assert (first["schema"], first["type"], first["at"], first["datagrams"]) == (
        SCHEMA,
        "interval",
        1_700_000_001.0,
        10,
    )
    assert {flow["group"]: flow["lost"] for flow in first["flows"]} == {
        "239.1.1.1": 0,
        "239.1.1.2": 2,
    }
    assert (last["schema"], last["type"], last["summary"]["lost"]) == (SCHEMA, "final", 2)
    assert last["at"] == 1_700_000_001.0 and len(last["senders"]) == 2


def test_csv_has_its_columns_then_rows_per_flow() -> None:
    rows = list(csv.DictReader(io.StringIO(one_interval_and_the_end(CsvOutput))))
    assert list(rows[0]) == list(CSV_FIELDS)
    assert [(r["type"], r["group"], r["lost"]) for r in rows] == [
        ("interval", "239.1.1.1", "0"),
        ("interval", "239.1.1.2", "2"),
        ("final", "239.1.1.1", "0"),
        ("final", "239.1.1.2", "2"),
    ]


def test_a_log_file_gets_a_line_per_interval_each_alarm_and_a_summary(tmp_path: Path) -> None:
    tally, intervals = fed()
    log = open_log(file=str(tmp_path / "monitor.log"))
    line = intervals.poll(1.0, at=1_700_000_001.0)
    assert line is not None
    alarms = Alarms(loss_percent=10.0)
    fired = alarms.check(line, tally, 1_700_000_001 * S, 1_700_000_000 * S)
    log.interval(dataclasses.replace(line, alarms=tuple(fired)))
    log.final(final_report(tally, tuple(alarms.raised)))
    log.close()
    lines = (tmp_path / "monitor.log").read_text().splitlines()
    assert "datagrams" in lines[0] and lines[1].startswith("ALARM ")
    assert "loss 33.33% over 10% on 239.1.1.2 from 192.0.2.2:4000" in lines[1]
    assert "10 datagrams on 239.1.1.1, 239.1.1.2" in lines[2] and lines[2].endswith("1 alarms")
    assert logging.getLogger("multicast.monitor").handlers == []


def test_a_log_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match=r"cannot open log file '/nonexistent/dir/x\.log'"):
        open_log(file="/nonexistent/dir/x.log")
    with pytest.raises(OptionError, match=r"cannot open syslog socket '.*nothing-here'"):
        open_log(syslog=str(tmp_path / "nothing-here"))


def test_a_log_fifo_is_written_through_the_descriptor_that_was_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that leaves right after the check must not make a second open wait for
    ever: the lines go to the one descriptor opened, and a reader gone is a failure noted."""
    tally, intervals = fed()
    fifo = tmp_path / "log"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    real_open = os.open

    def open_then_reader_leaves(path: str, flags: int, mode: int = 0o777) -> int:
        fd = real_open(path, flags, mode)
        os.close(reader)  # the reader seen by the check goes away at once
        return fd

    monkeypatch.setattr(monitor_output.os, "open", open_then_reader_leaves)
    log = open_log(file=str(fifo))  # returns: nothing opens the FIFO a second time
    monkeypatch.undo()
    line = intervals.poll(1.0, at=1_700_000_001.0)
    assert line is not None and tally.datagrams > 0
    log.interval(line)  # no reader: EPIPE, noted, not raised
    log.close()
    assert log.failure is not None and "Broken pipe" in log.failure


def test_alarms_fire_once_until_recovered() -> None:
    tally, intervals = fed()
    alarms = Alarms(loss_percent=50.0, silence=2.0, groups=["239.1.1.1", "239.1.1.3"])
    line = intervals.poll(1.0)
    assert line is not None

    def check(now: float) -> list[str]:
        return [alarm.split(" ", 1)[1] for alarm in alarms.check(line, tally, int(now * S), 0)]

    # Loss 33 % is under 50 %; 239.1.1.3 never had a datagram: silent since the join.
    assert check(3) == ["239.1.1.1 silent for 3.0 s", "239.1.1.3 silent for 3.0 s"]
    assert check(4) == []  # raised once
    frame = encode_frame(1, 6, timestamp=0)
    tally.account(Datagram(frame, ("192.0.2.1", 4000), "239.1.1.1", size=32), int(4.5 * S))
    assert check(5) == []  # 239.1.1.1 recovered; 239.1.1.3 still silent, raised already
    assert check(7) == ["239.1.1.1 silent for 2.5 s"]
    assert len(alarms.raised) == 3 and alarms.active
    assert not Alarms().active
    with pytest.raises(OptionError, match="percentage"):
        Alarms(loss_percent=100.0)
    with pytest.raises(OptionError, match="seconds"):
        Alarms(silence=0.0)


def test_the_clock_note_says_whose_clocks_delays_compare() -> None:
    assert clock_note({"127.0.0.1"}, {"127.0.0.1"}) == "sender on this host: one clock"
    assert "synchronised" in clock_note({"192.0.2.1"}, {"127.0.0.1"})
