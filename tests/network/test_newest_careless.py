"""The newest commands and options used carelessly: files that are directories, FIFOs or
devices, logs that cannot be written, values a parser lets through. Each ends with one clear
line and an exit code its command documents, never a traceback or a hang. Each command runs
as a process, as a user runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from multicast.exitcodes import COMMAND_EXIT_CODES

from support.cli import free_port, run_multicast, stderr_lines

GROUP = "239.12.3.1"


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command wrote on standard error (no traceback)."""
    lines = stderr_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    return lines[0]


def test_a_log_file_that_cannot_be_written_is_one_line_and_exit_2() -> None:
    """``--log-file /dev/full``: logging printed a traceback for every line it could not
    write, then the run ended with ``[Errno 28]`` and lost its report. Now one line says so,
    the run goes on and reports, and the exit status (2) tells a supervisor."""
    arguments = ["monitor", GROUP, "--port", str(free_port()), "--duration", "0.5"]
    done = run_multicast([*arguments, "--interval", "0.1", "--log-file", "/dev/full"])
    assert done.returncode == 2, done.stderr
    assert one_error_line(done) == (
        "multicast: cannot write log file '/dev/full': No space left on device; the run goes on"
    )
    assert "0 datagrams on 239.12.3.1" in done.stdout  # the final report is still printed
    assert 2 in COMMAND_EXIT_CODES["monitor"]


def test_a_log_file_fifo_nobody_reads_is_refused_at_once(tmp_path: Path) -> None:
    """Opening a FIFO for writing waits for a reader: the monitor hung before it joined."""
    fifo = tmp_path / "log"
    os.mkfifo(fifo)
    done = run_multicast(["monitor", GROUP, "--duration", "0.1", "--log-file", str(fifo)])
    assert done.returncode == 64
    assert one_error_line(done) == (
        f"multicast: cannot open log file '{fifo}': a FIFO that no process reads"
    )
