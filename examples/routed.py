"""Multicast across three PIM-SM routers (FRR's pimd), in under a minute.

Run only through ``scripts/netns-run`` (``make routed`` does), as root, with the Debian
package ``frr`` installed. Inside that private namespace it builds::

    sender --- r1 --- r2 (RP) --- r3 --- rcv1
                                     \\-- rcv2

and shows an any-source group crossing through the rendezvous point, a source-specific one
crossing on its own tree, the TTL a datagram needs to cross three routers, a receiver that
leaves taking its branch out of the routers' tables, and a router restarted mid-stream.
Every wait is bounded.
"""

from __future__ import annotations

import socket
import sys
import time

from multicast.core import Datagram, Receiver, Sender, open_receiver
from multicast.testing import Testbed
from multicast.testing.routers import PimRouter, RoutedLine, frr_problem, routed_line, wait_until

PORT = 4446
ASM, SSM = "239.30.0.1", "232.30.0.1"
LIMIT = 10.0  # seconds: the bound on every wait


def until_received(sender: Sender, group: str, receiver: Receiver, payload: bytes) -> Datagram:
    """Send to ``group`` every 50 ms until ``receiver`` gets ``payload``; that datagram."""
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        sender.send(payload, group, PORT)
        for datagram in receiver.receive_batch(64, timeout=0.05):
            if datagram.payload == payload:
                return datagram
    raise SystemExit(f"{payload!r} to {group} did not arrive within {LIMIT} s")


def mroutes(router: PimRouter) -> None:
    """The router's multicast routing table, as pimd and as the kernel have it."""
    print(f"    {router.name}: vtysh -c 'show ip mroute'")
    for row in router.vtysh("show ip mroute").splitlines()[3:]:
        if row.strip():
            print(f"      {row.rstrip()}")
    print(f"    {router.name}: ip mroute show")
    for row in router.host.run(["ip", "mroute", "show"]).stdout.splitlines():
        print(f"      {row}")


def crossing(line: RoutedLine, sender: Sender) -> tuple[Receiver, Receiver]:
    rcv1, rcv2 = line.receivers
    source = line.sender.address()
    print(f"2. rcv1 joins {ASM} (any source), rcv2 joins ({source}, {SSM}); the sender sends.")
    asm = rcv1.call(open_receiver, [ASM], PORT, interfaces="eth0")
    ssm = rcv2.call(open_receiver, [SSM], PORT, interfaces="eth0", sources=[source])
    for group, receiver, name in ((ASM, asm, "rcv1"), (SSM, ssm, "rcv2")):
        got = until_received(sender, group, receiver, group.encode())
        print(f"    {name} got {got.payload!r} from {got.source[0]}, TTL 8 - 3 routers = {got.ttl}")
    mroutes(line.routers[2])
    return asm, ssm


def hops(line: RoutedLine, ssm: Receiver) -> None:
    print("3. TTL 3 reaches r3 with 1 and stops there; TTL 4 crosses and arrives with 1.")
    for ttl in (3, 4):
        with line.sender.call(Sender, socket.AF_INET, ttl=ttl, interface="eth0") as once:
            once.send(f"ttl {ttl}".encode(), SSM, PORT)
    got = ssm.receive(timeout=LIMIT)
    print(
        f"    rcv2 got {got.payload!r} with TTL {got.ttl}; nothing else: {ssm.receive_ready() == []}"
    )


def leaving(line: RoutedLine, sender: Sender, asm: Receiver) -> None:
    rcv2, r3 = line.receivers[1], line.routers[2]
    source = line.sender.address()
    print(f"4. rcv2 joins {ASM} too: r3 forwards it on both branches; then rcv2 leaves.")
    with rcv2.call(open_receiver, [ASM], PORT, interfaces="eth0") as second:
        until_received(sender, ASM, second, b"both branches")
        print(f"    r3 sends ({source}, {ASM}) out of {sorted(r3.outgoing(ASM, source))}")
    took = wait_until(
        "r3 prunes rcv2's branch", lambda: r3.outgoing(ASM, source) == {"eth1"}, LIMIT
    )
    print(f"    {took:.2f} s after the leave r3 sends it out of {sorted(r3.outgoing(ASM, source))}")
    until_received(sender, ASM, asm, b"rcv1 still")
    print("    rcv1 still receives it")


def restart(line: RoutedLine, sender: Sender, asm: Receiver, ssm: Receiver) -> None:
    r2 = line.routers[1]
    print("5. r2 (the RP, in the middle) is restarted mid-stream.")
    r2.stop()
    started = time.monotonic()
    r2.start()
    for group, receiver in ((ASM, asm), (SSM, ssm)):
        until_received(sender, group, receiver, b"after restart")
    print(f"    both groups flow again {time.monotonic() - started:.2f} s after the restart")


def main() -> int:
    problem = frr_problem()
    if problem is not None:
        print(f"routed: cannot run FRR routers here: {problem}", file=sys.stderr)
        return 3
    began = time.monotonic()
    with Testbed() as testbed:
        line = routed_line(testbed)
        took = line.converge()
        print(
            f"1. sender - r1 - r2 (RP {line.rp}) - r3 - rcv1, rcv2: PIM neighbours in {took:.2f} s"
        )
        with line.sender.call(Sender, socket.AF_INET, ttl=8, interface="eth0") as sender:
            asm, ssm = crossing(line, sender)
            with asm, ssm:
                hops(line, ssm)
                leaving(line, sender, asm)
                restart(line, sender, asm, ssm)
        line.stop()
    print(f"done in {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
