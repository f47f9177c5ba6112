"""Loss of a Doist-driven peer receiving steady UDP streams, beside a plain socket.

A sender process paces datagrams of 32 bytes to 127.0.0.1 at a fixed rate for a few
seconds. Three receivers take each stream in turn:

- ``peer``: a :class:`~multicast.udp.Peer` with ``bc=1024`` (a 1.2 MB buffer request, the
  documented way to give a peer room) driven by a ``Doist(tock=1/32, real=True)`` through a
  :class:`~multicast.udp.PeerDoer` that drains every queued datagram on each pass;
- ``peer, default bs``: the same with the default buffer size, which the kernel leaves at
  its default receive buffer (about 256 small datagrams, less than one pass at 10,000/s);
- ``plain socket``: the reference, a blocking ``recv_into`` loop with the same receive
  buffer as ``peer``, reading each datagram as it comes.

Run it inside the private namespace (it refuses to run elsewhere)::

    scripts/netns-run .venv/bin/python benchmarks/bench_peer.py [--seconds 3] [--rates 10000 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from multicast.core import bind_socket, new_socket, request_receive_buffer, send_datagram
from multicast.doing import Doist
from multicast.udp import Peer, PeerDoer

HOST = "127.0.0.1"
PAYLOAD = 32
TOCK = 1 / 32
START_DELAY = 0.3  # seconds the sender waits, so the receiver is ready first
DRAIN = 0.5  # seconds the receivers keep reading after the stream ends
SLICE = 0.0005  # seconds between the sender's bursts


@dataclass
class Outcome:
    receiver: str
    rate: int
    sent: int
    received: int
    drops: int | None

    @property
    def loss(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0


def send_stream(port: int, rate: int, seconds: float) -> int:
    """Send ``rate`` datagrams per second for ``seconds`` to ``port``; the count sent."""
    total = int(rate * seconds)
    payload = bytearray(PAYLOAD)
    with new_socket() as sock:
        time.sleep(START_DELAY)
        start = time.monotonic()
        deadline = start + seconds + 1.0
        sent = 0
        while sent < total and time.monotonic() < deadline:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while sent < due:
                payload[:8] = sent.to_bytes(8, "big")
                send_datagram(sock, payload, HOST, port)
                sent += 1
            time.sleep(SLICE)
    return sent


def start_sender(port: int, rate: int, seconds: float) -> subprocess.Popen[str]:
    command = [sys.executable, __file__, "--send", str(port), str(rate), str(seconds)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def sent_by(sender: subprocess.Popen[str], seconds: float) -> int:
    out, _ = sender.communicate(timeout=START_DELAY + seconds + 5.0)
    return int(json.loads(out)["sent"])


def run_peer(rate: int, seconds: float, bc: int | None) -> Outcome:
    peer = Peer(name="bench", port=0, bc=bc, reopen=True)  # learn a free port; enter reopens it
    received = 0

    def count(data: bytes, source: tuple[str, int]) -> None:
        nonlocal received
        received += 1

    sender = start_sender(peer.port, rate, seconds)
    doist = Doist(tock=TOCK, real=True, limit=START_DELAY + seconds + DRAIN)
    doist.do(doers=[PeerDoer(peer, handler=count)])
    name = "peer" if bc else "peer, default bs"
    return Outcome(name, rate, sent_by(sender, seconds), received, peer.drops)


def run_plain(rate: int, seconds: float, bc: int) -> Outcome:
    with new_socket() as sock:
        request_receive_buffer(sock, bc * Peer.MaxGramSize)
        bind_socket(sock, HOST, 0)
        sender = start_sender(sock.getsockname()[1], rate, seconds)
        buffer = bytearray(65535)
        received = 0
        sock.settimeout(DRAIN)
        deadline = time.monotonic() + START_DELAY + seconds + 5.0
        while time.monotonic() < deadline:
            try:
                sock.recv_into(buffer)
            except TimeoutError:
                if sender.poll() is not None:
                    break
                continue
            received += 1
        return Outcome("plain socket", rate, sent_by(sender, seconds), received, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each stream")
    parser.add_argument("--rates", type=int, nargs="+", default=[10_000, 20_000])
    parser.add_argument("--send", nargs=3, metavar=("PORT", "RATE", "SECONDS"), help="internal")
    args = parser.parse_args()
    if args.send:
        port, rate, seconds = args.send
        print(json.dumps({"sent": send_stream(int(port), int(rate), float(seconds))}))
        return
    if os.environ.get("MULTICAST_NETNS") != "private":
        sys.exit(
            "run me inside the private namespace: scripts/netns-run .venv/bin/python " + __file__
        )
    bc = 1024
    print(f"{args.seconds:g} s streams of {PAYLOAD}-byte datagrams to {HOST}; Doist tock {TOCK} s")
    print(f"{'receiver':<18} {'rate/s':>7} {'sent':>7} {'received':>9} {'loss %':>7} {'drops':>6}")
    for rate in args.rates:
        for outcome in (
            run_plain(rate, args.seconds, bc),
            run_peer(rate, args.seconds, bc),
            run_peer(rate, args.seconds, None),
        ):
            drops = "" if outcome.drops is None else str(outcome.drops)
            print(
                f"{outcome.receiver:<18} {outcome.rate:>7} {outcome.sent:>7} "
                f"{outcome.received:>9} {outcome.loss:>7.2f} {drops:>6}",
                flush=True,
            )


if __name__ == "__main__":
    main()
