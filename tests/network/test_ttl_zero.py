"""TTL 0 keeps datagrams on the sending host, for every sender of the package (issue 12).

Linux itself drops a TTL-0 multicast datagram only when the sending host has a member of the
group on the outgoing interface (see ``multicast.core.hostscope``), so each case here has
**no** member on the sending host unless it says so. Two test-bed hosts share a veth link; a
member on the far host must get nothing. A negative check needs no waiting: after the TTL-0
datagrams, a TTL-1 marker follows on the same link, and the far member's first datagram must
be that marker (a leaked datagram would have arrived before it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from multicast import events
from multicast.aio import open_sender
from multicast.cli import main
from multicast.core import Receiver, Sender, send_to, set_ttl
from multicast.core.hostscope import GUARDS_KEPT, guarded_groups
from multicast.testing import Host, Testbed
from multicast.tools import run_stream
from multicast.udp import Peer

from support.hosts import PORT, receiver, send

TIMEOUT = 5.0


@dataclass(frozen=True)
class Case:
    family: socket.AddressFamily
    group: str
    loopback: bool

    def __str__(self) -> str:
        family = "ipv4" if self.family == socket.AF_INET else "ipv6"
        return f"{family}-loopback-{'on' if self.loopback else 'off'}"


CASES = [
    Case(family, group, loopback)
    for family, group in ((socket.AF_INET, "239.12.0.1"), (socket.AF_INET6, "ff0e::12:1"))
    for loopback in (True, False)
]
by_case = pytest.mark.parametrize("case", CASES, ids=str)


@pytest.fixture
def hosts(testbed: Testbed) -> tuple[Host, Host]:
    """The sending host and the far host, one veth link between them (eth0 on both)."""
    near, far = testbed.add_hosts(2)
    testbed.connect(near, far)
    return near, far


def nothing_leaked(near: Host, member: Receiver, group: str) -> None:
    """The far member's first datagram is a TTL-1 marker that ``near`` sent after its TTL-0
    ones over the same link."""
    send(near, group, b"marker", ttl=1)
    got = member.receive(timeout=TIMEOUT)
    assert (got.payload, got.ttl) == (b"marker", 1), f"a TTL-{got.ttl} datagram left the host"
    assert member.receive_ready() == []


# --- each sender of the package, with no member on the sending host -------------------------


def core_sender(near: Host, case: Case, interface: str | None) -> None:
    def body() -> None:
        with Sender(case.family, ttl=0, interface=interface, loopback=case.loopback) as out:
            assert out.send(b"zero", case.group, PORT) == 4  # as the kernel: sent, and dropped
            assert out.send_many([b"one", b"two"], case.group, PORT) == 2

    near.call(body)


def say(near: Host, case: Case, interface: str | None) -> None:
    assert case.loopback, "SAY has no loopback option"
    where = ["--iface", interface] if interface else []
    argv = ["SAY", "--group", case.group, "--port", str(PORT), "--ttl", "0", *where, "-m", "x"]
    assert near.call(main, argv) == (0, (True, None))


def stream(near: Host, case: Case, interface: str | None) -> None:
    report = near.call(
        run_stream,
        case.group,
        PORT,
        rate="max",
        count=200,
        ttl=0,
        interface=interface,
        loopback=case.loopback,
    )
    assert (report.sent, report.errors) == (200, 0)


def multicaster(near: Host, case: Case, interface: str | None) -> None:
    class Three(events.Multicaster):
        def __iter__(self) -> Iterator[bytes]:
            return iter([b"a", b"b", b"c"])

    with events.Poller() as poller:
        three = near.call(
            Three,
            case.group,
            PORT,
            0,
            interface=interface,
            loopback=case.loopback,
            poller=poller,
        )
        for _ in range(100):
            if three.closed:
                break
            poller.poll(0.01)
        assert (three.closed, three.sent) == (True, 3)


def event_sendto(near: Host, case: Case, interface: str | None) -> None:
    assert case.loopback, "sendto has no loopback option"
    near.call(events.sendto, [b"a", b"b"], case.group, PORT, 0, interface=interface)


def peer(near: Host, case: Case, interface: str | None) -> None:
    wildcard = "0.0.0.0" if case.family == socket.AF_INET else "::"
    sending = near.call(
        Peer,
        name="ttl0",
        host=wildcard,
        port=0,
        ttl=0,
        loopback=case.loopback,
        interface=interface,
        reopen=True,
    )
    try:
        assert sending.send(b"from the peer", (case.group, PORT)) == 13
    finally:
        sending.close()


def aio_sender(near: Host, case: Case, interface: str | None) -> None:
    async def body() -> None:
        with open_sender(
            case.group, PORT, ttl=0, interface=interface, loopback=case.loopback
        ) as out:
            assert await out.send(b"async") == 5

    near.call(asyncio.run, body())


SENDERS: dict[str, Callable[[Host, Case, str | None], None]] = {
    "core-Sender": core_sender,
    "SAY": say,
    "stream": stream,
    "events-Multicaster": multicaster,
    "events-sendto": event_sendto,
    "udp-Peer": peer,
    "aio-sender": aio_sender,
}
LOOPBACK_ONLY = {"SAY", "events-sendto"}  # they send with loopback on, always


@pytest.mark.parametrize(
    ("name", "case"),
    [
        pytest.param(name, case, id=f"{name}-{case}")
        for name in sorted(SENDERS)
        for case in CASES
        if case.loopback or name not in LOOPBACK_ONLY
    ],
)
@pytest.mark.parametrize("interface", ["eth0", None], ids=["named", "routed"])
def test_ttl_0_never_reaches_another_host(
    hosts: tuple[Host, Host], exit_stack: ExitStack, case: Case, interface: str | None, name: str
) -> None:
    near, far = hosts
    member = receiver(exit_stack, far, [case.group])
    SENDERS[name](near, case, interface)
    nothing_leaked(near, member, case.group)


@by_case
def test_with_loopback_on_a_member_on_the_sending_host_still_receives(
    hosts: tuple[Host, Host], exit_stack: ExitStack, case: Case
) -> None:
    near, far = hosts
    remote = receiver(exit_stack, far, [case.group])
    own = receiver(exit_stack, near, [case.group])
    core_sender(near, case, "eth0")
    if case.loopback:
        assert [own.receive(timeout=TIMEOUT).payload for _ in "012"] == [b"zero", b"one", b"two"]
    assert own.receive_ready() == []
    nothing_leaked(near, remote, case.group)


def test_a_zoned_link_local_group_stays_too(
    hosts: tuple[Host, Host], exit_stack: ExitStack
) -> None:
    near, far = hosts
    remote = receiver(exit_stack, far, ["ff02::12:2"])
    own = receiver(exit_stack, near, ["ff02::12:2"])
    with near.call(Sender, socket.AF_INET6, ttl=0) as out:  # no interface: the zone says
        out.send(b"zoned", "ff02::12:2%eth0", PORT)
    assert own.receive(timeout=TIMEOUT).payload == b"zoned"
    nothing_leaked(near, remote, "ff02::12:2")


def test_the_guard_follows_the_ttl_and_closes_with_the_sender(hosts: tuple[Host, Host]) -> None:
    near, _ = hosts
    out = near.call(Sender, socket.AF_INET, ttl=0, interface="eth0")
    out.send(b"x", "239.12.0.3", PORT)
    (membership,) = guarded_groups(out.sock)
    assert str(membership.group) == "239.12.0.3"
    set_ttl(out.sock, 2)  # TTL above 0: no guard is needed any more
    out.send(b"y", "239.12.0.3", PORT)
    assert guarded_groups(out.sock) == [membership]  # forgotten only with the socket
    out.close()
    assert guarded_groups(out.sock) == []


def test_many_groups_reuse_the_least_recently_used_membership(
    hosts: tuple[Host, Host], exit_stack: ExitStack
) -> None:
    """More groups than one socket may join (``igmp_max_memberships``, 20): each send still
    stays on the host, the guard leaving the group it used least recently."""
    near, far = hosts
    groups = [f"239.12.1.{n}" for n in range(1, 31)]
    members = [receiver(exit_stack, far, groups[:15]), receiver(exit_stack, far, groups[15:])]
    with near.call(Sender, socket.AF_INET, ttl=0, interface="eth0") as out:
        for group in groups:
            out.send(b"x", group, PORT)
        held = guarded_groups(out.sock)
        assert 0 < len(held) <= min(GUARDS_KEPT, 20)
        assert str(held[-1].group) == groups[-1]
    nothing_leaked(near, members[0], groups[0])
    nothing_leaked(near, members[1], groups[-1])


def test_loopback_off_sends_nothing_and_says_so_once(
    hosts: tuple[Host, Host], caplog: pytest.LogCaptureFixture
) -> None:
    near, _ = hosts
    caplog.set_level(logging.WARNING, logger="multicast.core.hostscope")
    with near.call(Sender, socket.AF_INET6, ttl=0, interface="eth0", loopback=False) as out:
        for _ in range(3):
            assert out.send(b"nowhere", "ff0e::12:4", PORT) == 7
    (record,) = caplog.records
    assert record.getMessage() == (
        "TTL 0 with loopback off: datagrams to ff0e::12:4 reach no one, so none is sent"
    )


def test_a_raw_socket_set_through_the_core_is_guarded_too(
    hosts: tuple[Host, Host], exit_stack: ExitStack
) -> None:
    near, far = hosts
    member = receiver(exit_stack, far, ["239.12.0.5"])

    def body() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            set_ttl(sock, 0)
            send_to(sock, b"raw", ("239.12.0.5", PORT))

    near.call(body)
    nothing_leaked(near, member, "239.12.0.5")
