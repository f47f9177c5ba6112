"""The programs that :mod:`run` measures, one per process: receivers, senders, echo and ping.

Run as ``python benchmarks/workers.py ROLE [options]`` by ``run.py``, inside its private
network namespace. Sockets are configured through :mod:`multicast.core` even for the plain
Python paths: those differ from ours only in how they read and write datagrams.

Protocol with ``run.py``: a serving worker (receiver, echo server) prints ``ready`` once it
has joined, answers SIGUSR1 with a JSON line ``{"received": N}``, and on SIGINT prints its
final JSON line and exits. A client worker prints one JSON line when done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import selectors
import signal
import socket
import statistics
import struct
import time
from collections.abc import Callable
from types import FrameType

from multicast.core import (
    Sender,
    join_group,
    new_socket,
    open_receiver,
    request_receive_buffer,
    send_many,
    set_reuse,
)

BUFFER = 4 << 20  # receive buffer of every receiver (the namespace allows 4 MiB)
MAX_SIZE = 65_535  # largest datagram a receiver reads whole
REPLY_WAIT = 1.0  # seconds the echo client waits for the last answers
PING_WAIT = 0.2  # seconds a ping waits for the last reply (at 1,000/s, 200 round trips)


def _say(record: dict[str, object]) -> None:
    print(json.dumps(record), flush=True)


class _Serving:
    """A serving worker's count, reported on SIGUSR1 (SIGINT stops it: KeyboardInterrupt).

    The count is ``received``, or what ``count`` returns where the worker keeps its own.
    """

    def __init__(self, count: Callable[[], int] | None = None) -> None:
        self.received = 0
        self._count = count
        signal.signal(signal.SIGUSR1, self._report)

    def _report(self, signum: int, frame: FrameType | None) -> None:
        _say({"received": self._count() if self._count else self.received})

    def ready(self) -> None:
        print("ready", flush=True)

    def finish(self, **extra: object) -> None:
        _say({"received": self.received, **extra})


def _plain_socket(options: argparse.Namespace) -> socket.socket:
    """A socket joined to the group on lo, with the receive buffer, and nothing else."""
    sock = new_socket(options.family)
    set_reuse(sock)
    request_receive_buffer(sock, BUFFER)
    sock.bind(("", options.port))
    join_group(sock, options.group, "lo")
    return sock


# --- receivers --------------------------------------------------------------------------------


def receive_ours(options: argparse.Namespace) -> None:
    """The core receiver: wait for a datagram and take all queued, with their metadata
    (of ``--groups``, comma-separated, when given: one worker of a sharded load)."""
    serving = _Serving()
    groups = options.groups.split(",") if options.groups else [options.group]
    with open_receiver(
        groups, options.port, interfaces="lo", receive_buffer=BUFFER, max_size=MAX_SIZE
    ) as receiver:
        serving.ready()
        try:
            while True:
                serving.received += len(receiver.receive_batch())
        except KeyboardInterrupt:
            serving.finish(kernel_drops=receiver.drops)


def receive_monitor(options: argparse.Namespace) -> None:
    """``multicast monitor``'s receiving loop (:class:`multicast.tools.Monitor`): every datagram
    read, timed and accounted (sockperf's are not frames: each is counted as foreign)."""
    from multicast.tools.monitor import Monitor  # noqa: PLC0415 - a part run.py may skip

    with Monitor(
        [options.group], options.port, interfaces=["lo"], receive_buffer=BUFFER
    ) as monitor:
        _Serving(count=lambda: monitor.tally.datagrams).ready()
        report = monitor.run()  # until SIGINT
    _say({"received": report.datagrams})


def receive_plain(options: argparse.Namespace) -> None:
    """The usual Python loop: one blocking ``recvfrom`` per datagram."""
    serving = _Serving()
    sock = _plain_socket(options)
    serving.ready()
    try:
        while True:
            sock.recvfrom(MAX_SIZE)
            serving.received += 1
    except KeyboardInterrupt:
        serving.finish()


def receive_aio(options: argparse.Namespace) -> None:
    """This package's asyncio receiver, ``async for``."""
    from multicast import aio  # noqa: PLC0415 - a part of the package run.py may skip

    async def main() -> None:
        serving = _Serving()
        loop = asyncio.get_running_loop()
        async with aio.open_receiver(
            options.group, options.port, interfaces="lo", receive_buffer=BUFFER
        ) as receiver:
            loop.add_signal_handler(signal.SIGINT, receiver.close)
            serving.ready()
            async for _ in receiver:
                serving.received += 1
            serving.finish(kernel_drops=receiver.kernel_drops)

    asyncio.run(main())


class _Counting(asyncio.DatagramProtocol):
    def __init__(self, serving: _Serving) -> None:
        self.serving = serving

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.serving.received += 1


def receive_protocol(options: argparse.Namespace) -> None:
    """The standard asyncio path: ``create_datagram_endpoint`` with a ``DatagramProtocol``."""

    async def main() -> None:
        serving = _Serving()
        loop = asyncio.get_running_loop()
        sock = _plain_socket(options)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Counting(serving), sock=sock)
        stopped = asyncio.Event()
        loop.add_signal_handler(signal.SIGINT, stopped.set)
        serving.ready()
        await stopped.wait()
        transport.close()
        serving.finish()

    asyncio.run(main())


def echo_plain(options: argparse.Namespace) -> None:
    """A plain Python echo server: ``recvfrom``, then ``sendto`` the payload back, unicast."""
    serving = _Serving()
    sock = _plain_socket(options)
    serving.ready()
    try:
        while True:
            payload, source = sock.recvfrom(MAX_SIZE)
            sock.sendto(payload, source)
            serving.received += 1
    except KeyboardInterrupt:
        serving.finish()


def pong_ours(options: argparse.Namespace) -> None:
    """This package's ``multicast pong`` reflector (:class:`multicast.tools.Pong`)."""
    from multicast.tools import Pong  # noqa: PLC0415 - a part of the package run.py may skip

    with Pong(
        [options.group], options.port, interfaces=["lo"], busy_poll=options.busy_poll
    ) as pong:
        _Serving(count=lambda: pong.answerer.replies).ready()
        report = pong.serve()  # until SIGINT
    _say({"received": report.replies})


# --- senders ----------------------------------------------------------------------------------


def _timed(send: Callable[[], int]) -> None:
    """Run a send loop; report datagrams sent, process CPU and wall seconds it took."""
    cpu, wall = time.process_time(), time.perf_counter()
    sent = send()
    _say(
        {
            "sent": sent,
            "cpu": time.process_time() - cpu,
            "seconds": time.perf_counter() - wall,
        }
    )


def _sender(options: argparse.Namespace) -> Sender:
    return Sender(options.family, interface="lo", loopback=True)


def send_ours(options: argparse.Namespace) -> None:
    """The core's ``send_many``: batches of 1024 payloads, ``sendmmsg`` underneath."""
    payloads = [bytes(options.size)] * 1024
    with _sender(options) as sender:

        def loop() -> int:
            sent = 0
            while sent < options.count:
                sent += send_many(
                    sender.sock, payloads[: options.count - sent], options.group, options.port
                )
            return sent

        _timed(loop)


def send_single(options: argparse.Namespace) -> None:
    """The core's ``Sender.send``: one datagram per call."""
    payload = bytes(options.size)
    with _sender(options) as sender:

        def loop() -> int:
            for _ in range(options.count):
                sender.send(payload, options.group, options.port)
            return int(options.count)

        _timed(loop)


def send_plain(options: argparse.Namespace) -> None:
    """The usual Python loop: one ``sendto`` per datagram."""
    payload = bytes(options.size)
    with _sender(options) as sender:
        sock, address = sender.sock, (options.group, options.port)

        def loop() -> int:
            for _ in range(options.count):
                sock.sendto(payload, address)
            return int(options.count)

        _timed(loop)


# --- clients ----------------------------------------------------------------------------------


def _payload(size: int, index: int) -> bytes:
    """Printable text of ``size`` bytes starting with ``index`` (HEAR answers only UTF-8)."""
    return f"{index:010d}".encode().ljust(size, b"x")


def echo_client(options: argparse.Namespace) -> None:
    """Send ``count`` datagrams at ``rate`` per second; count the unicast answers."""
    with _sender(options) as sender, selectors.DefaultSelector() as selector:
        sock = sender.sock
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        buffer = bytearray(MAX_SIZE)
        answered = sent = 0
        start = time.perf_counter()
        deadline = start + options.count / options.rate + REPLY_WAIT
        while time.perf_counter() < deadline and answered < options.count:
            due = min(options.count, int((time.perf_counter() - start) * options.rate) + 1)
            if due > sent:
                batch = [_payload(options.size, i) for i in range(sent, due)]
                sent += send_many(sock, batch, options.group, options.port)
            wait = (sent / options.rate) - (time.perf_counter() - start)
            if selector.select(max(wait, 0) if sent < options.count else 0.05):
                while True:
                    try:
                        sock.recv_into(buffer)
                    except BlockingIOError:
                        break
                    answered += 1
        _say({"sent": sent, "answered": answered})


_PROBE = struct.Struct("!Qd")  # sequence number, send time


def ping_plain(options: argparse.Namespace) -> None:
    """Probe the group ``count`` times at ``rate`` per second, one blocking wait per probe."""
    with _sender(options) as sender:
        sock = sender.sock
        rtts: list[float] = []
        start = time.perf_counter()
        for index in range(options.count):
            time.sleep(max(0.0, start + index / options.rate - time.perf_counter()))
            sent_at = time.perf_counter()
            sock.sendto(
                _PROBE.pack(index, sent_at).ljust(options.size, b"\0"),
                (options.group, options.port),
            )
            sock.settimeout(max(1 / options.rate, 0.05))
            try:
                while True:
                    reply = sock.recv(MAX_SIZE)
                    if _PROBE.unpack_from(reply)[0] == index:
                        rtts.append(time.perf_counter() - _PROBE.unpack_from(reply)[1])
                        break
            except TimeoutError:
                continue
        _say({"sent": options.count, "received": len(rtts), "rtt_us": _percentiles(rtts)})


def ping_ours(options: argparse.Namespace) -> None:
    """This package's ``multicast ping`` (:func:`multicast.tools.run_ping`)."""
    from multicast.tools import run_ping  # noqa: PLC0415 - a part run.py may skip

    report = run_ping(
        options.group,
        options.port,
        count=options.count,
        interval=1 / options.rate,
        wait=PING_WAIT,
        size=options.size,
        interface="lo",
        busy_poll=options.busy_poll,
    )
    rtt = report.responders[0].rtt if report.responders else None
    percentiles = {"p50": rtt.p50 * 1e3, "p99": rtt.p99 * 1e3} if rtt else {}
    _say({"sent": report.sent, "received": report.received, "rtt_us": percentiles})


def _percentiles(seconds: list[float]) -> dict[str, float]:
    if len(seconds) < 2:
        return {}
    cuts = statistics.quantiles([s * 1e6 for s in seconds], n=100, method="inclusive")
    return {"p50": cuts[49], "p99": cuts[98]}


ROLES: dict[str, Callable[[argparse.Namespace], None]] = {
    "receive-ours": receive_ours,
    "receive-plain": receive_plain,
    "receive-monitor": receive_monitor,
    "receive-aio": receive_aio,
    "receive-protocol": receive_protocol,
    "echo-plain": echo_plain,
    "pong-ours": pong_ours,
    "send-ours": send_ours,
    "send-single": send_single,
    "send-plain": send_plain,
    "echo-client": echo_client,
    "ping-plain": ping_plain,
    "ping-ours": ping_ours,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--group", required=True)
    parser.add_argument("--groups", default="", help="groups to join instead of --group")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--busy-poll", type=float, default=0.0, help="seconds: latency mode")
    options = parser.parse_args(argv)
    options.family = socket.AF_INET6 if ":" in options.group else socket.AF_INET
    ROLES[options.role](options)


if __name__ == "__main__":
    main()
