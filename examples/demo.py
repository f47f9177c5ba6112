"""`make demo`: multicast crossing a private network, with what the kernel says about each datagram.

Run only through ``scripts/netns-run`` (``make demo`` does): it builds two hosts joined by a
veth pair inside the private namespace, so nothing reaches the machine's own interfaces.
"""

from __future__ import annotations

import os
import sys

from multicast.core import Receiver, Sender, open_receiver, resolve_interface

GROUP = "239.42.42.42"
PORT = 59259
COUNT = 3


def receive_and_print(receiver: Receiver, count: int) -> None:
    for _ in range(count):
        datagram = receiver.receive(timeout=2.0)
        interface = resolve_interface(datagram.interface).name if datagram.interface else "?"
        print(
            f"  received {datagram.payload!r} from {datagram.source[0]}:{datagram.source[1]}"
            f" to group {datagram.group} on {interface} (ttl {datagram.ttl})"
        )


def basic_exchange() -> None:
    print(f"1. A receiver joins {GROUP} on lo; a sender sends {COUNT} datagrams.")
    with open_receiver([GROUP], PORT, interfaces="lo") as receiver, Sender(ttl=1) as sender:
        for n in range(COUNT):
            sender.send(f"hello #{n}".encode(), GROUP, PORT)
        receive_and_print(receiver, COUNT)


def main() -> int:
    if os.environ.get("MULTICAST_NETNS") != "private":
        print("demo: run me through scripts/netns-run (make demo)", file=sys.stderr)
        return 3
    basic_exchange()
    return 0


if __name__ == "__main__":
    sys.exit(main())
