"""`make demo`: multicast crossing a private network, as a library and as the command line.

Run only through ``scripts/netns-run`` (``make demo`` does): inside that private namespace
it builds two hosts, ``alpha`` and ``beta``, joined by a veth pair, so nothing reaches the
machine's own interfaces. Every wait is bounded.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from multicast.core import Receiver, Sender, open_receiver, resolve_interface
from multicast.testing import Host, Testbed
from multicast.tools import Pong, run_monitor, run_ping, run_stream
from multicast.tools.monitor import IntervalReport
from multicast.tools.ping import Reply

GROUP = "239.42.42.42"
GROUP6 = "ff0e::4242"
PORT = 59259
MULTICAST = str(Path(sys.executable).with_name("multicast"))


def show(datagram_text: str) -> None:
    print(f"    {datagram_text}", flush=True)


def receive_three(beta: Host, receiver: Receiver) -> None:
    for _ in range(3):
        d = receiver.receive(timeout=2.0)
        name = beta.call(interface_name, d.interface)
        show(
            f"{d.payload!r} from {d.source[0]} port {d.source[1]} to {d.group} "
            f"on {name}, TTL {d.ttl}"
        )


def interface_name(index: int | None) -> str:
    """The name of an interface of the calling host (call it inside that host)."""
    return resolve_interface(index).name if index else "?"


def library_exchange(alpha: Host, beta: Host) -> None:
    for group, family in ((GROUP, "IPv4"), (GROUP6, "IPv6")):
        print(f"1. {family}: beta joins {group} on eth0; alpha sends three datagrams (TTL 4).")
        receiver = beta.call(open_receiver, [group], PORT, interfaces="eth0")
        with receiver:
            sender = alpha.call(Sender, receiver.family, ttl=4, interface="eth0")
            with sender:
                for n in range(3):
                    sender.send(f"hello #{n}".encode(), group, PORT)
            receive_three(beta, receiver)


def hear_answers_say(alpha: Host, beta: Host) -> None:
    print("2. beta runs `multicast --use-std --daemon HEAR --allow-stop`; alpha says hello.")
    hear = beta.popen(
        [
            MULTICAST,
            "--use-std",
            "--daemon",
            "HEAR",
            "--group",
            GROUP,
            "--port",
            str(PORT),
            "--allow-stop",
        ]
    )
    time.sleep(0.5)  # let it join
    # A SAY from the command line, then one from a socket that reads the answer: HEAR's
    # answer is never larger than the datagram it answers, so this one is padded.
    alpha.run([MULTICAST, "SAY", "--group", GROUP, "--port", str(PORT), "-m", "hello", "HEAR"])
    with alpha.call(Sender, ttl=1, interface="eth0") as sender:
        sender.send(b"hello from a socket".ljust(90), GROUP, PORT)
        sender.sock.settimeout(2.0)
        answer, source = sender.sock.recvfrom(2048)
        show(f"alpha got the answer {answer.decode()!r} from {source[0]}")
        sender.send(b"STOP", GROUP, PORT)
    output, _ = hear.communicate(timeout=5)
    for line in output.splitlines():
        show(f"beta: {line}")


def stream_to_monitor(alpha: Host, beta: Host) -> None:
    print("3. alpha streams 3000 frames at 1000/s; beta's monitor shows them live.")

    def interval(report: IntervalReport) -> None:
        show(f"beta monitor: {report}")

    monitoring = beta.start(run_monitor, [GROUP], PORT, duration=3.8, on_interval=interval)
    time.sleep(0.3)
    sent = alpha.call(run_stream, GROUP, PORT, rate="1000pps", count=3000, interface="eth0")
    show(f"alpha stream: {sent}")
    for line in str(monitoring.result(timeout=10)).splitlines():
        show(f"beta monitor: {line}")


def ping_pong(alpha: Host, beta: Host) -> None:
    print("4. beta answers as `pong`; alpha pings the group five times.")
    pong = beta.call(Pong, [GROUP], PORT)
    with pong:
        serving = beta.start(pong.serve, duration=4.0)

        def reply(got: Reply) -> None:
            show(f"alpha ping: {got}")

        report = alpha.call(run_ping, GROUP, PORT, count=5, interval=0.2, on_reply=reply)
        for line in str(report).splitlines():
            show(f"alpha ping: {line}")
        serving.result(timeout=10)


def main() -> int:
    if os.environ.get("MULTICAST_NETNS") != "private":
        print("demo: run me through scripts/netns-run (make demo)", file=sys.stderr)
        return 3
    with Testbed() as bed:
        alpha, beta = bed.add_host("alpha"), bed.add_host("beta")
        bed.connect(alpha, beta)
        print(f"alpha {alpha.address()} and beta {beta.address()} share a link (eth0).\n")
        library_exchange(alpha, beta)
        hear_answers_say(alpha, beta)
        stream_to_monitor(alpha, beta)
        ping_pong(alpha, beta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
