"""The non-blocking UDP peer: hio's conventions, its fixes, and multicast peers.

Runs inside the private namespace of scripts/netns-run: unicast on lo, IPv4 groups and
interface-local IPv6 groups (ff11::/16, ff31::/16) on lo, other cases on test-bed hosts.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from multicast.core import new_socket, request_send_buffer, set_broadcast
from multicast.doing import Doer, Doist
from multicast.exceptions import (
    AddressError,
    BindError,
    ClosedError,
    GroupError,
    InterfaceError,
    MessageSizeError,
    PortError,
)
from multicast.testing import Testbed
from multicast.udp import Address, Peer, PeerDoer, Truncated, openPeer
from multicast.wiring import openWL

WAIT = 2.0  # seconds: the bound on every wait for a datagram
QUIET = 0.3  # seconds of silence that count as "nothing arrives"
LOOPBACK = {"ipv4": "127.0.0.1", "ipv6": "::1"}
GROUPS = {"ipv4": ("239.1.2.3", "232.1.2.3"), "ipv6": ("ff11::1:3", "ff31::1:3")}


def wait_for(peer: Peer, timeout: float = WAIT) -> tuple[bytes, Address | None]:
    """The next datagram for ``peer``, or ``(b'', None)`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        received = peer.receive()
        left = deadline - time.monotonic()
        if received[1] is not None or left <= 0:
            return received
        assert peer.ls is not None
        select.select([peer.ls], [], [], left)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def buffer_max(kind: str) -> int:
    return int(Path(f"/proc/sys/net/core/{kind}_max").read_text())


# --- hio's conventions ------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(LOOPBACK))
def test_two_peers_exchange_datagrams(family: str) -> None:
    host = LOOPBACK[family]
    with openPeer(name="alpha", host=host, port=0) as alpha:
        with openPeer(name="beta", host=host, port=0) as beta:
            assert alpha.ha[0] == beta.ha[0] == host and alpha.port != 0
            assert alpha.send(b"hello beta", beta.ha) == 10
            assert wait_for(beta) == (b"hello beta", alpha.ha)
            assert beta.send(bytearray(b"hello alpha"), alpha.ha) == 11
            assert beta.send(memoryview(b"again"), alpha.ha) == 5
            assert wait_for(alpha) == (b"hello alpha", beta.ha)
            assert wait_for(alpha) == (b"again", beta.ha)
            assert alpha.receive() == beta.receive() == (b"", None)  # nothing queued
            assert alpha.send(b"", beta.ha) == 0  # an empty datagram: 0 bytes sent...
            assert wait_for(beta) == (b"", alpha.ha)  # ...and it arrives: only source tells


def test_addresses_ports_and_reopen_on_the_same_port() -> None:
    peer = Peer(name="p", ha=("127.0.0.1", 0), host="198.51.100.1", port=9)  # ha wins
    assert (peer.host, peer.port, peer.path) == ("127.0.0.1", 0, peer.ha)
    assert peer.open() and peer.opened and peer.port != 0
    port = peer.port
    assert peer.reopen(temp=True) and peer.port == port
    assert peer.close() and not peer.opened and peer.ls is None and peer.port == port
    assert Peer(host="").host == "0.0.0.0"
    assert Peer(host="localhost").host == "127.0.0.1"
    assert Peer(host="::").host == "::" and Peer(host="::").family == socket.AF_INET6
    peer.host, peer.port = "::1", 7
    assert peer.ha == ("::1", 7)


def test_socket_buffers_grow_to_bs() -> None:
    peer = Peer(port=0, bc=1024)
    assert peer.actualBufSizes() == (0, 0)
    with openPeer(port=0) as small:
        default = small.actualBufSizes()
    peer.open()
    try:
        send, receive = peer.actualBufSizes()
        assert send == max(default[0], 2 * min(peer.bs, buffer_max("wmem")))
        assert receive == max(default[1], 2 * min(peer.bs, buffer_max("rmem")))
    finally:
        peer.close()


def test_peer_doer_under_a_doist_keeps_the_documented_tyme_and_closes() -> None:
    peer = Peer(port=0)
    doer = PeerDoer(peer=peer)
    doist = Doist(tock=0.03125, real=True, limit=0.25)
    doist.do(doers=[doer])
    assert doist.tyme == 0.25
    assert not peer.opened and peer.ls is None and peer.port != 0  # opened by enter


def test_failing_peer_doer_still_closes_its_peer() -> None:
    class Failing(PeerDoer):
        def recur(self, tyme: float) -> bool:
            raise RuntimeError("service failed")

    peer = Peer(port=0)
    with pytest.raises(RuntimeError, match="service failed"):
        Doist(limit=1.0).do(doers=[Failing(peer)])
    assert not peer.opened and peer.ls is None


def test_doers_exchange_like_the_hio_demo() -> None:
    """A pinger and an echoer, each a PeerDoer; the echo arrives one pass later."""
    echoer_peer, pinger_peer = Peer(name="echo", port=0), Peer(name="ping", port=0)
    echoes: list[bytes] = []

    class Pinger(PeerDoer):
        def recur(self, tyme: float) -> bool:
            echoes.extend(data for data, _ in self.peer.receiveAll())
            self.peer.send(b"ping %.5f" % tyme, echoer_peer.ha)
            return False

    echoer = PeerDoer(echoer_peer, handler=echoer_peer.send)
    pinger = Pinger(pinger_peer)
    Doist(tock=0.03125, limit=0.25).do(doers=[echoer, pinger])
    assert echoes == [b"ping %.5f" % (n * 0.03125) for n in range(7)]
    assert not echoer_peer.opened and not pinger_peer.opened
    assert pinger.done is False and echoer.done is None


def test_each_pass_drains_everything_queued() -> None:
    """A burst queued before the receiver's turn is handled whole in that one recur."""
    receiver = Peer(name="rx", port=0, bs=2**20)  # room for the whole burst
    handled: list[tuple[float | None, bytes]] = []
    burst = [b"%d" % n for n in range(500)]

    class Burst(Doer):
        def recur(self, tyme: float) -> bool:
            with openPeer(name="tx", port=0) as sender:
                for payload in burst:
                    sender.send(payload, receiver.ha)
            return True

    doer = PeerDoer(receiver, handler=lambda data, _: handled.append((doer.tyme, data)))
    Doist(tock=0.03125, limit=0.125).do(doers=[Burst(), doer])
    assert [data for _, data in handled] == burst
    assert {tyme for tyme, _ in handled} == {0.0}
    assert receiver.drops == 0


def test_wire_logs_hold_both_transcripts_byte_for_byte() -> None:
    with openWL(name="alpha") as alpha_wl, openWL(name="beta", samed=True) as beta_wl:
        with openPeer(name="alpha", port=0, wl=alpha_wl) as alpha:
            with openPeer(name="beta", port=0, wl=beta_wl) as beta:
                alpha.send(b"alpha sends to beta", beta.ha)
                assert wait_for(beta)[0] == b"alpha sends to beta"
                beta.send(b"beta answers", alpha.ha)
                assert wait_for(alpha)[0] == b"beta answers"
                a, b = str(alpha.ha).encode(), str(beta.ha).encode()
        assert alpha_wl.readTx() == b"\nTx " + b + b":\nalpha sends to beta\n"
        assert alpha_wl.readRx() == b"\nRx " + b + b":\nbeta answers\n"
        assert (
            beta_wl.readRx()
            == beta_wl.readTx()
            == (b"\nRx " + a + b":\nalpha sends to beta\n" + b"\nTx " + a + b":\nbeta answers\n")
        )


# --- would-block paths ------------------------------------------------------------------------


def test_receive_with_nothing_queued_returns_the_sentinel() -> None:
    with openPeer(port=0) as peer:
        assert [peer.receive() for _ in range(3)] == [(b"", None)] * 3
        assert peer.receiveAll() == []


def test_send_returns_zero_while_the_kernel_would_block(testbed: Testbed) -> None:
    """A link limited to 8 kbit/s fills the socket's send buffer: then send() returns 0."""
    h1, h2 = testbed.add_hosts(2)
    testbed.connect(h1, h2)
    limit = ["tbf", "rate", "8kbit", "burst", "1600", "limit", "10000000"]
    h1.run(["tc", "qdisc", "add", "dev", "eth0", "root", *limit])
    peer = h1.call(Peer, name="slow", host=h1.address(), port=0, reopen=True)
    try:
        counts = []
        for _ in range(2000):  # the default 208 KiB send buffer holds about 200 of these
            counts.append(peer.send(b"x" * 1000, (h2.address(), 9)))
            if counts[-1] == 0:
                break
        assert counts[-1] == 0 and set(counts[:-1]) == {1000}
    finally:
        peer.close()


# --- fixes ------------------------------------------------------------------------------------


def test_port_is_not_shared_unless_reuse_is_asked() -> None:
    with openPeer(name="first", port=0) as first:
        fds = open_fds()
        second = Peer(name="second", port=first.port)
        with pytest.raises(BindError, match=f"port {first.port}") as raised:
            second.open()
        assert raised.value.errno == errno.EADDRINUSE
        assert second.ls is None and not second.opened and open_fds() == fds
        with openPeer(port=0) as sender:
            for n in range(20):
                sender.send(b"%d" % n, first.ha)
            assert [wait_for(first)[0] for _ in range(20)] == [b"%d" % n for n in range(20)]
    with openPeer(name="a", port=0, reuse=True) as a, openPeer(name="b", port=a.port, reuse=True):
        assert a.opened


def test_bad_arguments_are_named() -> None:
    with pytest.raises(AddressError, match="never looked up"):
        Peer(host="peer.example")
    with pytest.raises(PortError, match="70000"):
        Peer(port=70000)
    with pytest.raises(ValueError, match="bs=0"):
        Peer(bs=0)
    with pytest.raises(ClosedError, match="'idle' is not open") as raised:
        Peer(name="idle").receive()
    assert raised.value.errno == errno.EBADF
    with pytest.raises(ClosedError):
        Peer().send(b"x", ("127.0.0.1", 9))
    with openPeer(port=0) as peer:
        with pytest.raises(AddressError, match="not \\(host, port\\)"):
            peer.send(b"x", "127.0.0.1:9")  # type: ignore[arg-type]
        with pytest.raises(PortError):
            peer.send(b"x", ("127.0.0.1", 0))
        with pytest.raises(MessageSizeError, match="65508 bytes"):
            peer.send(bytes(65508), peer.ha)


def test_oversize_datagram_is_reported_as_truncated(caplog: pytest.LogCaptureFixture) -> None:
    with openPeer(name="small", port=0, bs=16) as small, openPeer(port=0) as sender:
        sender.send(bytes(range(40)), small.ha)
        with caplog.at_level(logging.WARNING, logger="multicast.udp"):
            data, source = wait_for(small)
        assert isinstance(data, Truncated) and data == bytes(range(16)) and data.size == 40
        assert source == sender.ha and small.truncated == 1
        assert "40 bytes" in caplog.text and "'small'" in caplog.text
        sender.send(bytes(16), small.ha)
        data, _ = wait_for(small)
        assert not isinstance(data, Truncated) and small.truncated == 1


def test_largest_datagram_arrives_whole_by_default() -> None:
    with openPeer(port=0) as receiver, openPeer(port=0) as sender:
        sender.send(bytes(65507), receiver.ha)
        data, _ = wait_for(receiver)
        assert len(data) == 65507 and not isinstance(data, Truncated)


def test_send_errors_are_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    with openPeer(name="v4", port=0) as peer, pytest.raises(OSError) as raised:
        peer.send(b"x", ("255.255.255.255", 9))  # broadcast, which the socket may not send
    assert not isinstance(raised.value, BlockingIOError)
    (record,) = [r for r in caplog.records if r.name == "multicast.udp"]
    assert record.levelno == logging.ERROR and "'v4'" in record.getMessage()


def test_kernel_drops_are_counted() -> None:
    with openPeer(name="rx", port=0) as receiver, openPeer(port=0) as sender:
        _, capacity = receiver.actualBufSizes()
        sent = capacity // 256  # far more small datagrams than fit: the kernel drops some
        for _ in range(sent):
            sender.send(b"x" * 32, receiver.ha)
        received = receiver.receiveAll()
        # The kernel stamps its drop count on the next datagram it queues.
        sender.send(b"after the drops", receiver.ha)
        assert wait_for(receiver)[0] == b"after the drops"
        assert received and len(received) + receiver.drops == sent


# --- multicast peers --------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(GROUPS))
def test_multicast_peer_joins_and_receives_a_group(family: str) -> None:
    group = GROUPS[family][0]
    with (
        openPeer(name="member", host="", port=0, groups=[group], interface="lo") as member,
        openPeer(name="sender", host=LOOPBACK[family], port=0, interface="lo") as sender,
    ):
        assert member.host == ("0.0.0.0" if family == "ipv4" else "::")
        assert [str(m.group) for m in member.memberships] == [group]
        assert sender.send(b"to the group", (group, member.port)) == 12
        assert wait_for(member) == (b"to the group", sender.ha)


@pytest.mark.parametrize("family", sorted(GROUPS))
def test_source_specific_peer_hears_its_source(family: str) -> None:
    group = GROUPS[family][1]
    with (
        openPeer(name="ssm", host="", port=0, groups=[group], sources=[LOOPBACK[family]]) as ssm,
        openPeer(name="source", host=LOOPBACK[family], port=0, interface="lo") as source,
    ):
        assert [str(m.source) for m in ssm.memberships] == [LOOPBACK[family]]
        source.send(b"from the source", (group, ssm.port))
        assert wait_for(ssm) == (b"from the source", source.ha)


def test_source_specific_peer_ignores_other_sources() -> None:
    with (
        openPeer(name="ssm", host="", port=0, groups=["232.1.2.4"], sources=["127.0.0.1"]) as ssm,
        openPeer(name="other", host="127.0.0.2", port=0) as other,
    ):
        other.send(b"wrong source", ("232.1.2.4", ssm.port))
        assert wait_for(ssm, QUIET) == (b"", None)


def test_peers_sharing_a_port_hear_only_their_own_groups() -> None:
    with (
        openPeer(name="a", host="", port=0, groups=["239.1.2.6"], reuse=True) as a,
        openPeer(name="b", host="", port=a.port, groups=["239.1.2.7"], reuse=True) as b,
        openPeer(port=0) as sender,
    ):
        sender.send(b"for a", ("239.1.2.6", a.port))
        sender.send(b"for b", ("239.1.2.7", a.port))
        assert wait_for(a)[0] == b"for a" and wait_for(b)[0] == b"for b"
        assert a.receive() == b.receive() == (b"", None)


def test_multicast_arguments_are_checked() -> None:
    with pytest.raises(AddressError, match="none of its groups"):
        Peer(groups=["239.1.2.3"])  # bound to 127.0.0.1: no group would arrive
    assert Peer(host="239.1.2.3", groups=["239.1.2.3"]).host == "239.1.2.3"
    with pytest.raises(GroupError, match="not a multicast address"):
        Peer(host="", groups=["198.51.100.1"])
    with pytest.raises(GroupError, match="mix IPv4 and IPv6"):
        Peer(host="", groups=["239.1.2.3", "ff11::1"])
    with pytest.raises(GroupError, match="no group"):
        Peer(host="", sources=["127.0.0.1"])
    fds = open_fds()
    peer = Peer(host="", port=0, groups=["239.1.2.3"], interface="nonesuch")
    with pytest.raises(InterfaceError, match="nonesuch"):
        peer.open()
    assert peer.ls is None and open_fds() == fds


def test_multicast_peers_across_two_hosts(testbed: Testbed) -> None:
    """Groups of both families, any-source and source-specific, between two hosts.

    On each: a sender with loopback off reaches the member on the other host but not the one
    on its own; a sender with TTL 0 reaches the member on its own host but not the other.
    """
    h1, h2 = testbed.add_hosts(2)
    testbed.connect(h1, h2)
    cases: list[tuple[socket.AddressFamily, str, dict[str, Any]]] = [
        (socket.AF_INET, "239.1.2.8", {}),
        (socket.AF_INET, "232.1.2.8", {"sources": [h1.address()]}),
        (socket.AF_INET6, "ff15::1:8", {}),
        (socket.AF_INET6, "ff35::8000:8", {"sources": [h1.address(socket.AF_INET6)]}),
    ]
    for family, group, extra in cases:
        wildcard = "0.0.0.0" if family == socket.AF_INET else "::"
        joined: dict[str, Any] = {"host": "", "groups": [group], "interface": "eth0", **extra}
        member2 = h2.call(Peer, name="far", port=0, reopen=True, **joined)
        member1 = h1.call(Peer, name="near", port=member2.port, reopen=True, **joined)
        sending: dict[str, Any] = {"host": wildcard, "port": 0, "interface": "eth0"}
        quiet = h1.call(Peer, name="quiet", loopback=False, ttl=2, reopen=True, **sending)
        local = h1.call(Peer, name="local", ttl=0, reopen=True, **sending)
        try:
            assert quiet.send(b"from quiet", (group, member2.port)) == 10
            assert local.send(b"from local", (group, member2.port)) == 10
            assert wait_for(member2) == (b"from quiet", (h1.address(family), quiet.port))
            assert wait_for(member1) == (b"from local", (h1.address(family), local.port))
            assert member1.receive() == member2.receive() == (b"", None)
        finally:
            for peer in (member1, member2, quiet, local):
                peer.close()


# --- core additions made for the peer ---------------------------------------------------------


def test_core_send_buffer_and_broadcast_options() -> None:
    with new_socket() as sock:
        assert request_send_buffer(sock, 65536) == 2 * min(65536, buffer_max("wmem"))
        with pytest.raises(ValueError, match="positive"):
            request_send_buffer(sock, 0)
        set_broadcast(sock)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
        set_broadcast(sock, False)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
    with openPeer(port=0, bcast=True) as peer:
        assert peer.ls is not None
        assert peer.ls.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
