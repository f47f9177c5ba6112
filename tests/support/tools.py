"""The tools (stream, monitor, ping, pong, doctor) run as ``python -m multicast`` processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from multicast.tools.doctor import parse_igmp

LIMIT = 15.0  # seconds: the bound on every command run here


def command(line: str, *more: str) -> list[str]:
    """``python -m multicast`` with the words of ``line`` and then ``more``."""
    return [sys.executable, "-m", "multicast", *line.split(), *more]


def wait_joined(group: str, process: subprocess.Popen[str]) -> None:
    """Wait (bounded) until this namespace lists ``group`` in /proc/net/igmp."""
    deadline = time.monotonic() + LIMIT
    while group not in {m.group for m in parse_igmp(Path("/proc/net/igmp").read_text())[0]}:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{group} never joined"
        time.sleep(0.02)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of ``process``, killed after LIMIT s."""
    try:
        out, err = process.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err
