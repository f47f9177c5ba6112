"""Faults across test-bed hosts (issue 8): an interface lost and back, TTL 0, a flood.

A receiver that watches interfaces (``watch_interfaces=True``) rejoins by itself once an
interface it joined on is deleted and made again under its name; going down and up needs no
rejoin at all. Negative checks need no waiting (see ``test_core_hosts.py``). The watcher's
netlink parsing is tested in ``tests/unit/test_faults.py``.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import tracemalloc
from collections.abc import Callable
from contextlib import ExitStack, closing, suppress
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from multicast.core import Datagram, Receiver, Sender, open_receiver, socket_drops
from multicast.core.watch import InterfaceWatcher, LinkChange
from multicast.testing import WAIT, Host, Testbed
from multicast.tools import Monitor
from multicast.tools.framing import encode_frame

from support.hosts import PORT, receiver

TIMEOUT = 5.0  # seconds any one datagram may take; never reached when things work
POLL = 0.02  # seconds between tries while waiting for the receiver to come back


@dataclass(frozen=True)
class Case:
    family: socket.AddressFamily
    group: str

    def __str__(self) -> str:
        return "ipv4" if self.family == socket.AF_INET else "ipv6"


CASES = [Case(socket.AF_INET, "239.8.8.1"), Case(socket.AF_INET6, "ff0e::8:1")]
by_family = pytest.mark.parametrize("case", CASES, ids=str)
# Joined on the interface by name, or where the routing table sends the group (eth0 too).
by_join = pytest.mark.parametrize("interface", ["eth0", None], ids=["named", "routed"])


def sender(stack: ExitStack, host: Host, family: socket.AddressFamily, **options: Any) -> Sender:
    """A :class:`Sender` made inside ``host`` (it routes there whichever thread uses it)."""
    return stack.enter_context(host.call(Sender, family, **options))


def until(condition: Callable[[], bool], what: str, step: Callable[[], object]) -> None:
    """Run ``step`` until ``condition`` holds, for at most ``WAIT`` seconds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {WAIT} s")
        step()


def resumes(receiver: Receiver, out: Sender, group: str) -> Datagram:
    """Send (paced) until ``receiver`` gets a datagram again, and return that datagram."""
    got: list[Datagram] = []

    def probe() -> None:
        out.send(b"after", group, PORT)
        with suppress(TimeoutError):
            got.append(receiver.receive(timeout=POLL))

    until(lambda: bool(got), "the receiver did not resume", probe)
    return got[0]


@by_family
@by_join
def test_receiver_rejoins_by_itself_when_its_interface_is_deleted_and_made_again(
    testbed: Testbed, exit_stack: ExitStack, case: Case, interface: str | None
) -> None:
    source, host = testbed.add_hosts(2)
    testbed.bridge(source, host)
    watched = receiver(exit_stack, host, [case.group], interfaces=interface, watch_interfaces=True)
    out = sender(exit_stack, source, case.family)
    (joined,) = watched.memberships
    out.send(b"before", case.group, PORT)
    assert watched.receive(timeout=TIMEOUT).payload == b"before"

    host.delete_interface("eth0")
    out.send(b"lost", case.group, PORT)
    until(lambda: bool(watched.waiting), "the deletion went unnoticed", watched.receive_ready)
    assert (watched.memberships, watched.waiting) == ([], [joined])
    host.create_interface("eth0")

    got = resumes(watched, out, case.group)
    assert got.payload == b"after"
    assert got.interface == host.interface("eth0").index
    assert watched.waiting == []
    (rejoined,) = watched.memberships
    assert rejoined.interface == (host.interface("eth0").index if interface else 0)


@by_family
def test_receiver_keeps_its_membership_while_its_interface_goes_down_and_up(
    testbed: Testbed, exit_stack: ExitStack, case: Case
) -> None:
    source, host = testbed.add_hosts(2)
    testbed.bridge(source, host)
    watched = receiver(exit_stack, host, [case.group], watch_interfaces=True)
    out = sender(exit_stack, source, case.family)
    joined = list(watched.memberships)

    host.link_down("eth0")
    out.send(b"lost", case.group, PORT)
    assert watched.receive_ready() == []
    host.link_up("eth0")

    assert resumes(watched, out, case.group).payload == b"after"
    assert (watched.memberships, watched.waiting) == (joined, [])


@by_family
def test_rejoin_when_told_moves_named_memberships_to_the_new_index(
    testbed: Testbed, exit_stack: ExitStack, case: Case
) -> None:
    """Without a watcher, one rejoin() after the interface is back is enough."""
    source, host = testbed.add_hosts(2)
    testbed.bridge(source, host)
    plain = receiver(exit_stack, host, [case.group])
    out = sender(exit_stack, source, case.family)
    old_index = host.interface("eth0").index

    host.delete_interface("eth0")
    assert plain.rejoin() == []  # nothing to join on yet
    assert [m.interface for m in plain.waiting] == [old_index]
    host.create_interface("eth0")
    (rejoined,) = plain.rejoin()

    assert rejoined.interface == host.interface("eth0").index != old_index
    assert plain.memberships == [rejoined]
    out.send(b"again", case.group, PORT)
    assert plain.receive(timeout=TIMEOUT).payload == b"again"
    host.call(plain.leave, case.group, "eth0")  # names resolve in the host
    assert plain.memberships == plain.waiting == []


def test_waiting_memberships_can_be_left(testbed: Testbed, exit_stack: ExitStack) -> None:
    source, host = testbed.add_hosts(2)
    testbed.bridge(source, host)
    plain = receiver(exit_stack, host, ["239.8.8.3"])  # on eth0 by name
    host.call(plain.join, "239.8.8.4")  # where the routing table says: eth0 too

    host.delete_interface("eth0")
    plain.rejoin(removed=[m.interface for m in plain.memberships if m.interface])
    assert [str(m.group) for m in plain.waiting] == ["239.8.8.3", "239.8.8.4"]
    host.call(plain.leave, "239.8.8.4")
    host.create_interface("eth0")
    host.call(plain.leave, "239.8.8.3", "eth0")  # back under a new index, not yet rejoined

    assert plain.rejoin() == []
    assert plain.memberships == plain.waiting == []


@by_family
def test_monitor_reports_the_gap_while_its_interface_was_gone(
    testbed: Testbed, exit_stack: ExitStack, case: Case
) -> None:
    source, host = testbed.add_hosts(2)
    testbed.bridge(source, host)
    monitor = exit_stack.enter_context(host.call(Monitor, [case.group], PORT, interfaces=["eth0"]))
    assert monitor.receiver.watcher is not None  # a monitor watches interfaces by itself
    out = sender(exit_stack, source, case.family)
    sequence = count()

    def send(frames: int) -> None:
        for _ in range(frames):
            out.send(encode_frame(7, next(sequence), b"frame"), case.group, PORT)

    def pump() -> None:
        arrived = time.time_ns()
        for datagram in monitor.ready(POLL):
            monitor.tally.account(datagram, arrived)

    def probe() -> None:
        send(1)
        pump()

    send(100)
    until(lambda: monitor.tally.datagrams == 100, "the first frames did not arrive", pump)
    host.delete_interface("eth0")
    send(50)  # to nowhere: the gap
    until(lambda: bool(monitor.receiver.waiting), "the deletion went unnoticed", pump)
    host.create_interface("eth0")
    until(lambda: monitor.tally.datagrams > 100, "the monitor did not resume", probe)
    send(100)
    last = next(sequence) - 1
    flows = monitor.tally.flows
    key = (case.group, "frames", "", 7)
    until(lambda: flows[key].streams[7].tracker.highest == last, "frames lost", pump)

    report = monitor.report(1.0)
    (flow,) = report.senders
    assert (flow.first_sequence, flow.last_sequence, flow.gaps, flow.duplicates) == (0, last, 1, 0)
    assert flow.lost >= 50
    assert flow.received + flow.lost == last + 1
    assert report.datagrams == flow.received >= 201


@by_family
def test_ttl_0_never_leaves_the_sending_host(
    testbed: Testbed, exit_stack: ExitStack, case: Case
) -> None:
    host, peer = testbed.add_hosts(2)
    testbed.connect(host, peer)
    own = receiver(exit_stack, host, [case.group])
    remote = receiver(exit_stack, peer, [case.group])

    sender(exit_stack, host, case.family, ttl=0).send(b"ttl 0", case.group, PORT)
    sender(exit_stack, host, case.family, ttl=1).send(b"ttl 1", case.group, PORT)

    assert [own.receive(timeout=TIMEOUT).payload for _ in "01"] == [b"ttl 0", b"ttl 1"]
    got = remote.receive(timeout=TIMEOUT)
    assert (got.payload, got.ttl) == (b"ttl 1", 1)
    assert remote.receive_ready() == []


def receive_buffer_errors(family: socket.AddressFamily) -> int:
    """The calling thread's namespace's count of UDP datagrams dropped for a full buffer."""
    if family == socket.AF_INET:
        header, values = (
            line.split()
            for line in Path("/proc/thread-self/net/snmp").read_text().splitlines()
            if line.startswith("Udp:")
        )
        return int(values[header.index("RcvbufErrors")])
    for line in Path("/proc/thread-self/net/snmp6").read_text().splitlines():
        name, value = line.split()
        if name == "Udp6RcvbufErrors":
            return int(value)
    raise AssertionError("no Udp6RcvbufErrors in /proc/thread-self/net/snmp6")


FLOOD = 30_000  # datagrams sent at full rate while the receiver drains
SIZE = 1000  # bytes each
BATCH = 256  # datagrams the receiver takes at most per call
# What a drain may hold at once, in Python memory: one batch of datagrams, and the fast
# path's cache of decoded origins (bounded; each drop count makes a new entry), with room.
MEMORY_BOUND = 2 * BATCH * (SIZE + 1024) + 1024 * 1024
# Floods from a process of its own, so that only the receiver's memory is measured here.
FLOODER = """
import sys
from itertools import repeat
from multicast.core import Sender, parse_group, send_many
group, port, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with Sender(parse_group(group).family) as out:
    print(send_many(out.sock, repeat(bytes(size), count), group, port))
"""


@by_family
def test_flooded_receiver_keeps_bounded_memory_and_counts_drops_as_the_kernel(
    testbed: Testbed, exit_stack: ExitStack, case: Case
) -> None:
    source, host = testbed.add_hosts(2)
    testbed.connect(source, host)
    flooded = receiver(
        exit_stack, host, [case.group], receive_buffer=64 * 1024, max_size=2048, blocking=False
    )
    out = sender(exit_stack, source, case.family)
    errors_before = host.call(receive_buffer_errors, case.family)
    flooded.receive_ready()  # this thread's batch buffers exist before measuring
    for _ in range(1000):  # nobody reads yet: the small buffer overflows for certain
        out.send(bytes(SIZE), case.group, PORT)

    received = 0
    last: list[Datagram] = []

    def drain() -> None:
        nonlocal received
        batch = flooded.receive_batch(BATCH, timeout=POLL)
        received += len(batch)
        last[:] = batch[-1:] or last

    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        flood = source.popen(
            [sys.executable, "-c", FLOODER, case.group, str(PORT), str(FLOOD), str(SIZE)]
        )
        until(lambda: flood.poll() is not None, "the flood did not end", drain)
        out.send(b"end", case.group, PORT)  # queued behind the flood: it carries the last count
        until(lambda: bool(last) and last[0].payload == b"end", "no end marker", drain)
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    output, errors = flood.communicate(timeout=WAIT)
    assert flood.returncode == 0, errors
    sent = 1000 + int(output)

    kernel = host.call(receive_buffer_errors, case.family) - errors_before
    assert flooded.drops == kernel == host.call(socket_drops, flooded.sock) > 0
    assert received - 1 + flooded.drops <= sent
    assert peak - start < MEMORY_BOUND, (peak - start, end - start)
    assert end - start < MEMORY_BOUND // 2, (peak - start, end - start)


# ---------------------------------------------------------------------------------------------
# The watcher on a host whose interface comes and goes (its parsing: tests/unit/test_faults.py).


def test_watcher_reports_what_happens_to_an_interface(
    testbed: Testbed, exit_stack: ExitStack
) -> None:
    host, peer = testbed.add_hosts(2)
    testbed.connect(host, peer)
    watcher = exit_stack.enter_context(closing(host.call(InterfaceWatcher, routes=False)))
    index = host.interface("eth0").index
    assert not watcher.changes()

    host.link_down("eth0")
    host.delete_interface("eth0")
    host.create_interface("eth0")

    seen: list[LinkChange] = []
    new_index = host.interface("eth0").index

    def read() -> None:
        seen.extend(watcher.changes().links)
        time.sleep(POLL)

    until(lambda: LinkChange(new_index, "eth0", True, True, False) in seen, "no return", read)
    down = LinkChange(index, "eth0", up=False, running=False, removed=False)
    removed = LinkChange(index, "eth0", up=False, running=False, removed=True)
    assert (
        seen.index(down)
        < seen.index(removed)
        < min(position for position, change in enumerate(seen) if change.index == new_index)
    )


def test_receiver_closes_its_watcher(testbed: Testbed) -> None:
    host, peer = testbed.add_hosts(2)
    testbed.connect(host, peer)
    fds = len(os.listdir("/proc/self/fd"))
    watched = host.call(open_receiver, ["239.8.8.2"], PORT, watch_interfaces=True)
    assert watched.watcher is not None and len(os.listdir("/proc/self/fd")) == fds + 2
    watched.close()
    assert watched.watcher.closed and len(os.listdir("/proc/self/fd")) == fds
