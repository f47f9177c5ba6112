"""Hostile input (issue 8): HEAR, pong and monitor against fuzzed datagrams. (The command line
against generated command lines: ``test_fuzz_cli.py``.)

The servers share one group and port on ``lo``, so every datagram reaches all three. It is
sent in small batches, each waited for until every server has taken it (or the kernel has
dropped it, which it counts), so all of them see all the input. Input comes from seeded
generators: a failure names the seed that reproduces it.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from multicast.core import Sender, send_many, socket_drops
from multicast.core.constants import MAX_PAYLOAD
from multicast.hear import HearUDPHandler, McastServer
from multicast.tools import Monitor, Pong
from multicast.tools.framing import HEADER_SIZE, MAGIC, Flag, Reason, encode_frame, frame_context
from multicast.tools.monitor import MAX_SENDERS
from multicast.tools.payloads import Kind

GROUP = "239.9.1.1"
PORT = 4449
KEY = b"the fuzzed servers' shared key.."
OTHER_KEY = b"a key that forges every tag....."
WAIT = 10.0  # seconds a batch may take to be read by every server; never reached
WHERE = frame_context(GROUP, PORT)  # where keyed frames verify
ELSEWHERE = frame_context(GROUP, PORT + 1)


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
            timestamp=rng.choice([None, None, 0, rng.getrandbits(64)]),
            key=rng.choice([None, KEY, KEY, OTHER_KEY]),
            context=rng.choice([WHERE, WHERE, WHERE, ELSEWHERE]),
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
