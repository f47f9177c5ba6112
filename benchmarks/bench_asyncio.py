"""CPU per datagram and loss: multicast.aio against asyncio's DatagramProtocol and sockperf.

Run it inside the private network namespace (it refuses to run anywhere else)::

    scripts/netns-run .venv/bin/python benchmarks/bench_asyncio.py [--rates 50000,max]

For each stream (a rate in datagrams per second, or ``max``) a ``sockperf throughput``
client sends ``--seconds`` of ``--size``-byte datagrams to one group on ``lo``, once per
receiver, in this order: a ``sockperf server`` (C, one ``recvfrom`` per datagram: what the
kernel needs), this package's :mod:`multicast.aio` receiver (``async for``) with its
default coalescing and with ``coalesce=0``, and the standard asyncio path
(``loop.create_datagram_endpoint`` with a ``DatagramProtocol``). Every receiver runs in its
own process with the same receive buffer. Its CPU time (user and system, every thread,
from ``/proc/PID/task/*/schedstat``) is taken from the moment it has joined until its
socket is drained after the stream; its kernel drops come from the ``drops`` column of
``/proc/net/udp``. "lost" is what was sent but neither received nor dropped by the kernel,
i.e. lost by the receiver itself. ``--repeat N`` runs the series N times and shows summed
counts and the median CPU per datagram.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from multicast import aio
from multicast.core import open_receiver

GROUP = "239.77.0.1"
PORT = 5077
READY_TIMEOUT = 5.0  # seconds for a receiver to bind and join
DRAIN_TIMEOUT = 5.0  # seconds for a receiver to empty its socket after the stream
EXIT_TIMEOUT = 10.0  # seconds for a receiver to report and exit after SIGINT
AIO_DEFAULT = "multicast.aio"
AIO_EVERY_WAKE_UP = "aio coalesce=0"
RECEIVERS = ("sockperf", AIO_DEFAULT, AIO_EVERY_WAKE_UP, "DatagramProtocol")


# --- the receivers (each runs as `bench_asyncio.py --receiver NAME`) ---------------------------


async def receive_with_aio(buffer: int, coalesce: float) -> dict[str, int]:
    async with aio.open_receiver(GROUP, PORT, receive_buffer=buffer, coalesce=coalesce) as receiver:
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, receiver.close)
        print("ready", flush=True)
        received = 0
        async for _ in receiver:
            received += 1
        return {"received": received, "overflow_drops": receiver.overflow_drops}


class _Counter(asyncio.DatagramProtocol):
    received = 0

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.received += 1


async def receive_with_protocol(buffer: int) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    receiver = open_receiver([GROUP], PORT, receive_buffer=buffer, blocking=False)
    transport, counter = await loop.create_datagram_endpoint(_Counter, sock=receiver.sock)
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stopped.set)
    print("ready", flush=True)
    await stopped.wait()
    transport.close()
    return {"received": counter.received}


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Result:
    stream: str
    receiver: str
    sent: int
    received: int
    kernel_drops: int
    cpu_ns: int

    @property
    def lost(self) -> int:
        return self.sent - self.received - self.kernel_drops

    @property
    def cpu_us_per_datagram(self) -> float:
        return self.cpu_ns / max(self.received, 1) / 1000


def _cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in nanoseconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total


def _udp_socket(port: int) -> tuple[int, int] | None:
    """(receive queue bytes, drops) of the IPv4 UDP socket bound to ``port``, if any."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return int(fields[4].split(":")[1], 16), int(fields[12])
    return None


def _joined(group: str) -> bool:
    """Whether some socket here joined ``group`` (it is listed in /proc/net/igmp)."""
    hexed = f"{int.from_bytes(socket.inet_aton(group), sys.byteorder):08X}"
    return hexed in Path("/proc/net/igmp").read_text()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _receiver_command(name: str, buffer: int) -> list[str]:
    if name == "sockperf":
        options = f"-i {GROUP} -p {PORT} --dont-reply --buffer-size {buffer}"
        return ["sockperf", "server", *options.split()]
    return [sys.executable, __file__, "--receiver", name, "--buffer", str(buffer)]


def _received(name: str, output: str) -> int:
    if name == "sockperf":
        found = re.search(r"Total (\d+) messages received", output)
        if found is None:
            raise RuntimeError(f"sockperf server reported no total:\n{output}")
        return int(found.group(1))
    report = json.loads(output.strip().splitlines()[-1])
    received: int = report["received"]
    return received


def _send_stream(rate: str, seconds: float, size: int) -> int:
    options = (
        f"-i {GROUP} -p {PORT} -m {size} -t {seconds} --mps {rate}"
        " --mc-loopback-enable --mc-ttl 0 --dontwarmup"
    )
    result = subprocess.run(
        ["sockperf", "throughput", *options.split()],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    found = re.search(r"Total of (\d+) messages sent", result.stdout + result.stderr)
    if found is None:
        raise RuntimeError(f"sockperf client reported no total:\n{result.stdout}")
    return int(found.group(1))


def measure(name: str, rate: str, seconds: float, size: int, buffer: int) -> Result:
    """Run receiver ``name`` on one stream and measure it."""
    _wait(lambda: _udp_socket(PORT) is None, READY_TIMEOUT, f"port {PORT} to be free")
    receiver = subprocess.Popen(
        _receiver_command(name, buffer),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait(
            lambda: _udp_socket(PORT) is not None and _joined(GROUP),
            READY_TIMEOUT,
            f"{name} to join {GROUP}",
        )
        time.sleep(0.2)  # let it settle into its wait
        cpu_before = _cpu_ns(receiver.pid)
        sent = _send_stream(rate, seconds, size)
        _wait(lambda: (_udp_socket(PORT) or (0, 0))[0] == 0, DRAIN_TIMEOUT, f"{name} to drain")
        time.sleep(0.1)  # and to finish handling what it read last
        cpu = _cpu_ns(receiver.pid) - cpu_before
        state = _udp_socket(PORT)
        drops = state[1] if state else 0
        receiver.send_signal(signal.SIGINT)
        output, _ = receiver.communicate(timeout=EXIT_TIMEOUT)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    stream = f"{rate} dgram/s" if rate != "max" else "full rate"
    return Result(stream, name, sent, _received(name, output), drops, cpu)


def report(runs: list[Result]) -> None:
    """One line per stream and receiver: counts summed over the runs, the median CPU."""
    print(
        f"{'stream':<16}{'receiver':<18}{'sent':>9}{'received':>10}{'kernel drops':>14}"
        f"{'lost':>7}{'CPU µs/dgram':>14}{'vs sockperf':>12}"
    )
    lines: dict[tuple[str, str], list[Result]] = {}
    for run in runs:
        lines.setdefault((run.stream, run.receiver), []).append(run)
    cpu = {
        key: statistics.median(r.cpu_us_per_datagram for r in same) for key, same in lines.items()
    }
    for (stream, receiver), same in lines.items():
        sent, received = sum(r.sent for r in same), sum(r.received for r in same)
        drops, lost = sum(r.kernel_drops for r in same), sum(r.lost for r in same)
        ratio = cpu[stream, receiver] / cpu[stream, "sockperf"]
        print(
            f"{stream:<16}{receiver:<18}{sent:>9}{received:>10}{drops:>14}{lost:>7}"
            f"{cpu[stream, receiver]:>14.2f}{ratio:>12.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50000,max", help="streams: datagrams/s or 'max'")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each stream")
    parser.add_argument("--size", type=int, default=64, help="payload bytes (at least 14)")
    parser.add_argument("--buffer", type=int, default=1 << 20, help="receive buffer bytes")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (median CPU)")
    parser.add_argument("--receiver", choices=RECEIVERS[1:], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.receiver == AIO_DEFAULT:
        report_line = asyncio.run(receive_with_aio(options.buffer, aio.DEFAULT_COALESCE))
    elif options.receiver == AIO_EVERY_WAKE_UP:
        report_line = asyncio.run(receive_with_aio(options.buffer, 0.0))
    elif options.receiver:
        report_line = asyncio.run(receive_with_protocol(options.buffer))
    if options.receiver:
        print(json.dumps(report_line), flush=True)
        return
    if os.environ.get("MULTICAST_NETNS") != "private":
        sys.exit(
            "run this inside the private namespace: scripts/netns-run .venv/bin/python " + __file__
        )
    if not 0 < options.seconds <= 10 or not 14 <= options.size <= 65507:
        sys.exit("--seconds must be in (0, 10] and --size in [14, 65507]")
    if not 1 <= options.repeat <= 10:
        sys.exit("--repeat must be in [1, 10]")
    if not 0 < options.buffer <= 4 << 20:
        sys.exit("--buffer must be at most 4 MiB (net.core.rmem_max cannot be raised here)")
    runs = []
    for _ in range(options.repeat):
        for rate in options.rates.split(","):
            for name in RECEIVERS:
                runs.append(measure(name, rate, options.seconds, options.size, options.buffer))
    report(runs)


if __name__ == "__main__":
    main()
