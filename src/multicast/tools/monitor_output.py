"""Where the monitor's intervals and report go: text lines, JSON lines, CSV, a log (a file
or syslog), the live view; and the alarms of unattended runs (:class:`Alarms`, pure).

Each output is told every interval (:meth:`Output.interval`) and the final report
(:meth:`Output.final`). The live view lives in :mod:`multicast.tools.monitor_live`, which
needs the optional ``rich`` package: :func:`live_view` falls back to interval lines
without it.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO

from multicast.core import list_interfaces
from multicast.exceptions import OptionError
from multicast.tools.monitor_report import (
    CSV_FIELDS,
    IntervalReport,
    MonitorReport,
    wall_clock,
)
from multicast.tools.payloads import NANOSECONDS
from multicast.tools.tally import Tally

__all__ = [
    "Alarms",
    "CsvOutput",
    "JsonLinesOutput",
    "LinesOutput",
    "LogOutput",
    "Output",
    "clock_note",
    "live_view",
    "local_addresses",
    "open_log",
]


class Output:
    """Takes the monitor's intervals and final report; by default, ignores them."""

    failure: str | None = None
    """Why some of the output could not be written, if it could not (the run went on)."""

    def interval(self, report: IntervalReport) -> None:
        """One interval ended."""

    def final(self, report: MonitorReport) -> None:
        """The run ended."""

    def close(self) -> None:
        """Release what the output holds."""


class LinesOutput(Output):
    """An interval line each interval, on ``stream`` (flushed: a pipe sees it at once)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def interval(self, report: IntervalReport) -> None:
        print(report, file=self.stream, flush=True)


class JsonLinesOutput(Output):
    """One JSON object per line: each interval, then the final report."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def interval(self, report: IntervalReport) -> None:
        print(json.dumps(report.as_dict()), file=self.stream, flush=True)

    def final(self, report: MonitorReport) -> None:
        print(json.dumps(report.as_dict()), file=self.stream, flush=True)


class CsvOutput(Output):
    """Rows of :data:`CSV_FIELDS`: one per flow and interval, then one per flow for the run
    (``type`` ``final``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.writer = csv.DictWriter(stream, CSV_FIELDS, extrasaction="ignore")
        self.writer.writeheader()

    def interval(self, report: IntervalReport) -> None:
        for flow in report.flows:
            self.writer.writerow(
                {
                    **flow,
                    "at": round(report.at, 3),
                    "type": "interval",
                    "start": round(report.start, 3),
                    "end": round(report.end, 3),
                }
            )
        self.stream.flush()

    def final(self, report: MonitorReport) -> None:
        end = round(report.started + report.seconds, 3)
        for flow in report.senders:
            self.writer.writerow(
                {
                    **flow.as_dict(),
                    "at": end,
                    "type": "final",
                    "start": 0.0,
                    "end": round(report.seconds, 3),
                }
            )
        self.stream.flush()


class LogOutput(Output):
    """A log line per interval and per alarm, and a summary line at the end, through
    ``logger`` (a file or syslog: :func:`open_log`).

    A line that cannot be written (a full disk, a syslog gone away) does not end the run:
    the first such failure is said in one line on standard error and kept in
    :attr:`failure`, for the command's exit status."""

    def __init__(self, logger: logging.Logger, where: str) -> None:
        self.logger = logger
        self.where = where
        for handler in logger.handlers:
            if isinstance(handler, _Noting):
                handler.on_failure = self._failed

    def _failed(self) -> None:
        """Note why a line was not written (the handler's exception in flight), once."""
        if self.failure is not None:
            return
        error = sys.exc_info()[1]
        why = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        self.failure = f"cannot write {self.where}: {why}"
        if sys.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                print(f"multicast: {self.failure}; the run goes on", file=sys.stderr, flush=True)

    def interval(self, report: IntervalReport) -> None:
        self.logger.info("%s", report)
        for alarm in report.alarms:
            self.logger.warning("ALARM %s", alarm)

    def final(self, report: MonitorReport) -> None:
        summary = str(report).splitlines()[0]
        self.logger.info("%s; %d alarms", summary, len(report.alarms))

    def close(self) -> None:
        for handler in list(self.logger.handlers):
            try:
                handler.close()  # a file handler flushes, and may fail, here
            except OSError:
                self._failed()
            self.logger.removeHandler(handler)


class _Noting(logging.Handler):
    """A handler that calls :attr:`on_failure` (set by the :class:`LogOutput` holding it)
    when a record cannot be written, instead of printing a traceback on standard error as
    logging's own ``handleError`` does."""

    on_failure: Callable[[], None] | None = None

    def handleError(self, record: logging.LogRecord) -> None:
        if self.on_failure is not None:
            self.on_failure()


class _FileLog(_Noting, logging.StreamHandler[TextIO]):
    """Appends to a file already open: the one :func:`_open_for_append` checked."""

    def close(self) -> None:
        try:
            self.stream.close()  # flushes: may fail (a full disk), for the caller to note
        finally:
            super().close()


class _SyslogLog(_Noting, logging.handlers.SysLogHandler):
    pass


def open_log(*, file: str | None = None, syslog: str | None = None) -> LogOutput:
    """A :class:`LogOutput` appending to ``file``, or sending to the syslog socket at
    ``syslog`` (a path such as ``/dev/log``). A path that cannot be opened is an
    :class:`OptionError` naming it; so is a FIFO no process reads (opening it would wait)."""
    logger = logging.getLogger(f"multicast.monitor.log.{id(object())}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler: logging.Handler
    where = f"log file {file!r}" if file is not None else f"syslog socket {syslog!r}"
    try:
        if file is not None:
            handler = _FileLog(_open_for_append(file))
            handler.setFormatter(logging.Formatter("%(message)s"))
        elif syslog is not None:
            if not Path(syslog).is_socket():  # the handler would drop every line silently
                raise FileNotFoundError(errno.ENOENT, "no socket there")
            handler = _SyslogLog(address=syslog, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
            handler.setFormatter(logging.Formatter("multicast-monitor: %(message)s"))
        else:
            raise OptionError("a log needs a file or a syslog socket")
    except OSError as error:
        raise OptionError(f"cannot open {where}: {error.strerror or error}") from None
    logger.addHandler(handler)
    return LogOutput(logger, where)


def _open_for_append(file: str) -> TextIO:
    """Open ``file`` for appending without waiting: a FIFO with no reader fails at once
    (``ENXIO``) instead of hanging. What was opened is what is written, blocking again: a
    second open could wait for ever once the reader seen by the first had gone."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(file, flags, 0o666)
    except OSError as error:
        if error.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "a FIFO that no process reads") from None
        raise
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a", encoding="utf-8")


class Alarms:
    """Decides, at each interval, which alarms to raise. Pure.

    A flow whose loss over the interval passes ``loss_percent``, or a joined group with no
    datagram for ``silence`` seconds, raises an alarm once; it may raise it again after it
    has recovered (a clean interval; a datagram of the group).
    """

    def __init__(
        self,
        *,
        loss_percent: float | None = None,
        silence: float | None = None,
        groups: Sequence[str] = (),
    ) -> None:
        if loss_percent is not None and not 0 <= loss_percent < 100:
            raise OptionError(f"alarm loss {loss_percent} must be a percentage from 0 to 100")
        if silence is not None and not silence > 0:
            raise OptionError(f"alarm silence {silence} must be a number of seconds above 0")
        self.loss_percent = loss_percent
        self.silence = silence
        self.groups = list(dict.fromkeys(groups))
        self.raised: list[str] = []
        self._lossy: set[tuple[object, ...]] = set()
        self._silent: set[str] = set()

    @property
    def active(self) -> bool:
        """Whether any alarm is set up."""
        return self.loss_percent is not None or self.silence is not None

    def check(self, report: IntervalReport, tally: Tally, now: int, joined: int) -> list[str]:
        """The alarms raised by the interval ``report`` ending at ``now`` (ns, wall clock),
        for groups joined at ``joined`` (ns); they are also kept in :attr:`raised`."""
        fired = [*self._loss(report.flows), *self._silence(tally, now, joined)]
        stamped = [f"{wall_clock(now / NANOSECONDS)} {alarm}" for alarm in fired]
        self.raised.extend(stamped)
        return stamped

    def _loss(self, flows: Iterable[dict[str, object]]) -> list[str]:
        if self.loss_percent is None:
            return []
        fired = []
        for flow in flows:
            key = (flow["group"], flow["source"], flow["port"], flow["stream"])
            lost, received, duplicates = (
                int(str(flow[name])) for name in ("lost", "received", "duplicates")
            )
            expected = received - duplicates + lost
            percent = 100 * lost / expected if expected > 0 else 0.0
            if percent > self.loss_percent and lost > 0:
                if key not in self._lossy:
                    self._lossy.add(key)
                    fired.append(
                        f"loss {percent:.2f}% over {self.loss_percent:g}% on {flow['group']} "
                        f"from {flow['source']}:{flow['port']}"
                    )
            else:
                self._lossy.discard(key)
        return fired

    def _silence(self, tally: Tally, now: int, joined: int) -> list[str]:
        if self.silence is None:
            return []
        fired = []
        limit = self.silence * NANOSECONDS
        for group in self.groups:
            last = tally.last_by_group.get(group, joined)
            if now - last >= limit:
                if group not in self._silent:
                    self._silent.add(group)
                    fired.append(f"{group} silent for {(now - last) / NANOSECONDS:.1f} s")
            else:
                self._silent.discard(group)
        return fired


def live_view(stream: TextIO, *, title: str, tally: Tally) -> Output:
    """The full-screen live view of ``tally`` on ``stream`` (a terminal) when ``rich`` is
    installed; else interval lines."""
    try:
        from rich.console import Console  # noqa: PLC0415 (the optional extra)

        from multicast.tools.monitor_live import LiveView  # noqa: PLC0415
    except ImportError:
        return LinesOutput(stream)
    return LiveView(Console(file=stream), title=title, tally=tally)


def local_addresses() -> set[str]:
    """This host's addresses (to say whether a sender shares this host's clock)."""
    addresses = {"127.0.0.1", "::1"}
    for interface in list_interfaces():
        addresses.update(str(address) for address in (*interface.ipv4, *interface.ipv6))
    return addresses


def clock_note(sources: Iterable[str], local: set[str]) -> str:
    """What the one-way delays of ``sources`` assume of the clocks."""
    listed = set(sources)
    if listed and listed <= local:
        return "sender on this host: one clock"
    return "sender elsewhere: valid only if the clocks are synchronised (NTP, PTP)"
