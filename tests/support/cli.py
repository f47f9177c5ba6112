"""The ``multicast`` command for the tests of the command line and the reference API: run as a
process or in-process with its tools' work recorded instead of done."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any
from unittest import mock

from multicast.core import Sender

WAIT = 10.0  # seconds: the bound on every wait of these tests


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without MULTICAST_* settings (the namespace marker stays),
    plus ``settings``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MULTICAST_") or name == "MULTICAST_NETNS"
    }
    environment.update(settings)
    return environment


def free_port(family: socket.AddressFamily = socket.AF_INET) -> int:
    """A UDP port no socket of this namespace uses right now."""
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        port: int = probe.getsockname()[1]
        return port


def run_multicast(
    arguments: Sequence[str], *, stdin: bytes = b"", **settings: str
) -> subprocess.CompletedProcess[str]:
    """``python -m multicast ARGUMENTS`` to its end (bounded by WAIT)."""
    return subprocess.run(
        [sys.executable, "-m", "multicast", *arguments],
        input=stdin.decode("latin-1"),
        env=clean_environment(**settings),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def start_multicast(arguments: Sequence[str], **options: object) -> subprocess.Popen[str]:
    """``python -m multicast ARGUMENTS`` started, its standard error a text pipe."""
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "multicast", *arguments],
        env=clean_environment(),
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


class Lines:
    """The lines of a text stream, read by a thread of their own so that waits are bounded."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        """The next line containing ``text``; AssertionError after ``timeout`` or at the end."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout} s; saw {self.seen!r}")

    def rest(self) -> list[str]:
        """Every line seen, once the stream has ended (bounded by WAIT)."""
        self._thread.join(WAIT)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.seen.append(line)
        return self.seen


@contextlib.contextmanager
def echo_server(*arguments: str) -> Iterator[tuple[subprocess.Popen[str], Lines]]:
    """``python -m multicast --daemon HEAR ARGUMENTS``, listening; SIGTERM at the end if it is
    still running. Yields the process and the lines of its standard error."""
    hear = start_multicast(["--daemon", "HEAR", *arguments])
    assert hear.stderr is not None
    lines = Lines(hear.stderr)
    try:
        lines.wait_for("listening")
        yield hear, lines
    finally:
        if hear.poll() is None:
            hear.send_signal(signal.SIGTERM)
        hear.wait(WAIT)


def send_until_exit(process: subprocess.Popen[str], payload: bytes, group: str, port: int) -> None:
    """Send ``payload`` every 50 ms until ``process`` ends (it joins at a time of its own);
    kill it and fail if it is still running after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    with Sender() as sender:
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait(WAIT)
                raise AssertionError(f"{process.args} did not end within {WAIT} s")
            sender.send(payload, group, port)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.05)


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@contextlib.contextmanager
def recording(tool: type[Any]) -> Iterator[list[dict[str, Any]]]:
    """Record the keywords ``tool.doStep`` is called with, instead of running it."""
    calls: list[dict[str, Any]] = []

    def record(self: object, *args: object, **kwargs: Any) -> tuple[bool, None]:
        calls.append(kwargs)
        return True, None

    with mock.patch.object(tool, "doStep", record):
        yield calls
