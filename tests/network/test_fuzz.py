"""Hostile input (issue 8): HEAR, pong and monitor against fuzzed datagrams; the command
line against generated argument lists.

The servers share one group and port on ``lo``, so every datagram reaches all three. It is
sent in small batches, each waited for until every server has taken it (or the kernel has
dropped it, which it counts), so all of them see all the input. Input comes from seeded
generators: a failure names the seed that reproduces it.

The command line runs in a child process (``python tests/test_fuzz.py``) that reads the
argument lists as JSON on standard input, runs :func:`multicast.__main__.main` on each with
its output captured and a timer that interrupts it (as Ctrl-C does) if it is still running
after ``CASE_LIMIT`` seconds, and writes one JSON result per list. A child keeps the test
process's signals, file descriptors and standard streams out of reach of what it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import pytest

from multicast.__main__ import main
from multicast.cli import McastDispatch
from multicast.core import Sender, send_many, socket_drops
from multicast.core.constants import MAX_PAYLOAD
from multicast.exceptions import EXIT_CODES
from multicast.hear import HearUDPHandler, McastServer
from multicast.tools import Monitor, Pong
from multicast.tools.framing import HEADER_SIZE, MAGIC, Flag, Reason, encode_frame
from multicast.tools.monitor import MAX_SENDERS
from multicast.tools.payloads import Kind

GROUP = "239.9.1.1"
PORT = 4449
KEY = b"the fuzzed servers' shared key.."
OTHER_KEY = b"a key that forges every tag....."
WAIT = 10.0  # seconds a batch may take to be read by every server; never reached


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---------------------------------------------------------------------------------------------
# Datagrams


@dataclass
class Forger:
    """Seeded hostile datagrams: random bytes, oversize, truncated and forged frames, and
    enough well-formed ones (some of them probes under the right key) to reach every path."""

    rng: random.Random

    def __post_init__(self) -> None:
        self.sent: list[bytes] = []  # recent well-formed frames, to replay

    def frame(self) -> bytes:
        rng = self.rng
        sender = rng.choice([1, 2, 3, rng.getrandbits(64)])  # a few known, many unknown
        flags = rng.choice([Flag.NONE, Flag.PROBE, Flag.REPLY, Flag.PROBE | Flag.REPLY])
        frame = encode_frame(
            sender,
            rng.getrandbits(rng.choice([4, 16, 64])),
            rng.randbytes(rng.choice([0, 8, 9, 64])),
            flags=flags,
            timestamp=rng.choice([None, 0, rng.getrandbits(64)]),
            key=rng.choice([None, KEY, KEY, OTHER_KEY]),
        )
        self.sent = [*self.sent[-63:], frame]
        return frame

    def damaged(self, frame: bytes) -> bytes:
        """``frame`` with some bytes (header fields, payload or tag) replaced at random."""
        data = bytearray(frame)
        for _ in range(self.rng.randint(1, 4)):
            data[self.rng.randrange(len(data))] = self.rng.getrandbits(8)
        return bytes(data)

    def datagram(self) -> bytes:
        rng = self.rng
        kind = rng.random()
        if kind < 0.25:
            return rng.randbytes(rng.choice([0, 1, HEADER_SIZE - 1, HEADER_SIZE, 100, 500]))
        if kind < 0.30:  # past the magic: version, flags and lengths at random
            return MAGIC + rng.randbytes(rng.choice([0, 1, HEADER_SIZE, 100]))
        if kind < 0.50:
            return self.frame()
        if kind < 0.65:  # truncated
            frame = self.frame()
            return frame[: rng.randrange(len(frame))]
        if kind < 0.80:  # forged
            return self.damaged(self.frame())
        if kind < 0.90 and self.sent:  # replayed
            return rng.choice(self.sent)
        if kind < 0.95:  # oversize: a frame with more behind it than its header says
            return self.frame() + rng.randbytes(rng.choice([1, 700]))
        if kind < 0.999:  # text for HEAR, some of it not UTF-8, some of it STOP
            return rng.choice(
                [b"STOP", b"hello STOP", "\u00e9t\u00e9 \u2603".encode(), b"\xff\xfe"]
            )
        return rng.randbytes(rng.randrange(8000, MAX_PAYLOAD[socket.AF_INET] + 1))


class CountingHandler(HearUDPHandler):
    """HEAR's own handler, counting the datagrams it was given."""

    handled = 0

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            CountingHandler.handled += 1


def pong_taken(pong: Pong) -> int:
    return pong.answerer.probes + pong.answerer.ignored + sum(pong.answerer.rejected.values())


def caught_up(taken: int, sock: socket.socket, sent: int) -> bool:
    """Whether a server took or the kernel dropped (reading its counter only then) ``sent``."""
    return taken >= sent or taken + (socket_drops(sock) or 0) >= sent


def fuzz_servers(count: int, seed: int) -> None:
    """Send ``count`` hostile datagrams to HEAR, pong and monitor; check they took them all."""
    fds = open_fds()
    forger = Forger(random.Random(seed))
    CountingHandler.handled = 0
    hear = McastServer((GROUP, PORT), CountingHandler, allow_stop=False)
    serving = threading.Thread(target=hear.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    try:
        with (
            Monitor([GROUP], PORT, max_size=1024, payload=Kind.FRAMES) as monitor,
            Pong([GROUP], PORT, key=KEY) as pong,
            Sender() as out,
        ):
            sent = 0
            for size in [64] * (count // 64) + [count % 64]:
                batch = [forger.datagram() for _ in range(size)]
                sent += send_many(out.sock, batch, GROUP, PORT)
                deadline = time.monotonic() + WAIT
                while not (
                    caught_up(monitor.tally.datagrams, monitor.receiver.sock, sent)
                    and caught_up(pong_taken(pong), pong.receiver.sock, sent)
                    and caught_up(CountingHandler.handled, hear.socket, sent)
                ):
                    assert time.monotonic() < deadline, f"a server fell behind (seed {seed})"
                    arrived = time.time_ns()
                    for datagram in monitor.ready(0.001):
                        monitor.tally.account(datagram, arrived)
                    for datagram in pong.ready(0):
                        pong.answer(datagram)
            report = monitor.report(1.0)
            json.dumps(report.as_dict())
            str(report)
            pong_report = pong.report(1.0)
            assert sent == count
            assert report.datagrams + monitor.drops == sent
            assert pong_taken(pong) + pong.drops == sent
            assert CountingHandler.handled + (socket_drops(hear.socket) or 0) == sent
    finally:
        hear.shutdown()
        serving.join(timeout=WAIT)
        hear.server_close()
    assert not serving.is_alive()
    # Every path was reached.
    assert report.truncated and report.untracked and len(report.senders) == MAX_SENDERS
    assert all(report.rejected[r.value] for r in (Reason.FOREIGN, Reason.MALFORMED))
    assert all(pong_report.rejected.values()), pong_report.rejected
    assert pong_report.replies and pong_report.ignored
    gc.collect()
    assert open_fds() == fds


@pytest.fixture
def hear_errors(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """HEAR's error log lines: a datagram it could not answer (never expected here)."""
    caplog.set_level(logging.WARNING, logger="multicast.hear")
    yield lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_servers_survive_100000_fuzzed_datagrams(hear_errors: Callable[[], list[str]]) -> None:
    fuzz_servers(100_000, seed=8)
    assert hear_errors() == []


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(3))
def test_servers_survive_more_fuzzed_datagrams(
    hear_errors: Callable[[], list[str]], seed: int
) -> None:
    fuzz_servers(300_000, seed=100 + seed)
    assert hear_errors() == []


# ---------------------------------------------------------------------------------------------
# The command line

CASE_LIMIT = 0.2  # seconds a command may run before it is interrupted
HOSTILE = [
    "", " ", "-", "--", "=", "-m", "\x00", "\udcff", "\u202e", "\n", "x" * 5000, "\u0661",
    "0x10", "1e3", "1e309", "nan", "inf", "-inf", "-0", "-1", "9" * 40, "256", "65536",
    "255.255.255.255", "0.0.0.0", "::", "192.0.2.1", "239.1.2.3/24", "example.invalid",
    "ff02::1%lo", "ff11::1%eth9", "eth9", "99999", "-5kbps", "1e400bps", "12 kbps",
]  # fmt: skip
GROUPS = ["239.1.2.3", "224.0.0.1", "232.1.1.1", "ff11::1", "ff31::8000:1", "127.0.0.1"]
# Values that make sense for each option (the command still may not accept them together).
PLAUSIBLE = {
    "--port": ["4446", "65535"],
    "--group": ["239.1.2.3", "ff11::1"],
    "--groups": ["239.1.2.3", "239.1.2.4"],
    "--source": ["127.0.0.1", "::1"],
    "--iface": ["lo", "1", "127.0.0.1"],
    "--ttl": ["0", "1", "255"],
    "--count": ["1", "2", "0"],
    "--timeout": ["0.01", "0"],
    "--duration": ["0.01", "0"],
    "--interval": ["0.01"],
    "--wait": ["0.01"],
    "--rate": ["max", "10k", "1Mbps"],
    "--size": ["64", "1200", "65507"],
    "--max-size": ["64", "70000"],
    "--burst": ["1", "8"],
    "-m": ["hello", "STOP"],
    "--key-file": ["/dev/null", "/nonexistent"],
    "--key-env": ["PATH", "MULTICAST_NOPE"],
}
# Commands that run until stopped get a bound most of the time (the timer is the backstop).
BOUNDS = {
    "RECV": ["--timeout", "0.01"],
    "HEAR": ["--timeout", "0.01"],
    "monitor": ["--duration", "0.01"],
    "pong": ["--duration", "0.01"],
    "stream": ["--count", "2", "--rate", "max"],
    "ping": ["--count", "1", "--wait", "0.01"],
    "doctor": ["--no-self-test"],
}


def command_options() -> dict[str, list[tuple[str, bool]]]:
    """Each command of the real parser: its option strings, and whether each takes a value."""
    parser = McastDispatch().buildArgs(None)
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {
        name: [(o, action.nargs != 0) for action in sub._actions for o in action.option_strings]
        for name, sub in commands.choices.items()
    }


def argument_lists(count: int, seed: int) -> list[list[str]]:
    """``count`` seeded argument lists: half of them plausible (a real command, its options
    with sensible values), half hostile (odd values, random text, options of other commands,
    shuffled or cut lists)."""
    rng = random.Random(seed)
    commands = command_options()
    names = sorted(commands)
    every_option = sorted({entry for options in commands.values() for entry in options})

    def text() -> str:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(1, 0x3000)]))
                       for _ in range(rng.randrange(1, 12)))  # fmt: skip

    def value(option: str, plausible: bool) -> str:
        if plausible and option in PLAUSIBLE:
            return rng.choice(PLAUSIBLE[option])
        return rng.choice([*HOSTILE, *GROUPS, text()])

    lists = []
    for _ in range(count):
        plausible = rng.random() < 0.5
        argv: list[str] = []
        if rng.random() < 0.1:
            argv.append(rng.choice(["--use-std", "--daemon", "-v", "-h", text()]))
        name = rng.choice(names if plausible else [*names, "nope", "say", text()])
        argv.append(name)
        options = commands.get(name, every_option) if rng.random() < 0.9 else every_option
        for option, takes_value in rng.sample(options, min(len(options), rng.randrange(5))):
            if option in ("-h", "--help") and rng.random() < 0.9:
                continue  # help is one path; do not spend every tenth case on it
            argv.append(option)
            if takes_value or not plausible:
                argv.extend(value(option, plausible) for _ in range(rng.choice([1, 1, 1, 2])))
        if name in ("stream", "monitor", "ping", "pong") or not plausible:
            argv.append(value("--group", plausible))  # the GROUP they take
        if name in BOUNDS and rng.random() < 0.95:
            argv.extend(BOUNDS[name])
        if not plausible and rng.random() < 0.2:
            rng.shuffle(argv)
        if not plausible and rng.random() < 0.1:
            argv = argv[: rng.randrange(len(argv) + 1)]
        lists.append(argv)
    return lists


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_argument_lists(lists: list[list[str]]) -> dict[str, Any]:
    """In the child: run each list through ``main``; the results and the open files left."""
    warnings.simplefilter("always", ResourceWarning)  # an unclosed socket says so on stderr
    signal.signal(signal.SIGALRM, _interrupt)
    fds = open_fds()
    results = []
    for argv in lists:
        output = io.StringIO()
        outcome: tuple[int, Any] | None = None
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                signal.setitimer(signal.ITIMER_REAL, CASE_LIMIT)
                try:
                    outcome = main(argv)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except KeyboardInterrupt:
                pass  # the timer went off just after main returned
        code, result = outcome if outcome is not None else (None, None)
        results.append({"code": code, "result": repr(result), "output": output.getvalue()})
    with contextlib.redirect_stderr(io.StringIO()) as late:
        gc.collect()  # sockets left in reference cycles: an unclosed one warns now
    return {"results": results, "fds": [fds, open_fds()], "late": late.getvalue()}


def fuzz_cli(count: int, seed: int) -> None:
    lists = argument_lists(count, seed)
    child = subprocess.run(
        [sys.executable, __file__],
        input=json.dumps(lists),
        capture_output=True,
        text=True,
        timeout=count * (CASE_LIMIT + 0.1) + 30,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    done = json.loads(child.stdout)
    fds_before, fds_after = done["fds"]
    assert fds_after == fds_before, "the commands left files or sockets open"
    assert done["late"] == "", done["late"]
    for argv, outcome in zip(lists, done["results"], strict=True):
        where = f"seed {seed}, argv {argv!r}"
        assert "Traceback" not in outcome["output"], f"{where}:\n{outcome['output']}"
        assert "ResourceWarning" not in outcome["output"], f"{where}:\n{outcome['output']}"
        assert "internal error" not in outcome["result"], f"{where}: {outcome['result']}"
        assert outcome["code"] is None or outcome["code"] in EXIT_CODES, where


def test_cli_survives_generated_argument_lists() -> None:
    fuzz_cli(1_000, seed=8)


@pytest.mark.soak
def test_cli_survives_10000_generated_argument_lists() -> None:
    fuzz_cli(10_000, seed=80)


if __name__ == "__main__":  # the child of fuzz_cli
    sys.stdout.write(json.dumps(run_argument_lists(json.load(sys.stdin))))
