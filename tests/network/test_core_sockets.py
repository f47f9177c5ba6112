"""The core socket layer on `lo`: IPv4 groups and interface-local IPv6 groups (ff11::/16).

Everything here runs inside the private namespace of scripts/netns-run.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

import pytest

from multicast.core import (
    Receiver,
    Sender,
    bind_socket,
    constants,
    interfaces,
    join_group,
    list_interfaces,
    new_socket,
    open_receiver,
    parse_group,
    request_receive_buffer,
    resolve_interface,
    send_datagram,
    set_isolation,
    set_unicast_ttl,
)
from multicast.exceptions import (
    BindError,
    GroupError,
    InterfaceError,
    MessageSizeError,
    SocketOptionError,
    UnsupportedError,
)

FAMILIES = {
    "ipv4": (socket.AF_INET, "239.1.1.1", "239.1.1.2", "232.1.1.1"),
    "ipv6": (socket.AF_INET6, "ff11::1:1", "ff11::1:2", "ff31::1:1"),
}
TIMEOUT = 2.0


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[socket.AddressFamily, str, str, str]:
    return FAMILIES[request.param]


def _lo_sender(family: socket.AddressFamily, **options: object) -> Sender:
    return Sender(family, interface="lo", **options)  # type: ignore[arg-type]


def _nothing_arrives(receiver: Receiver, wait: float = 0.3) -> bool:
    try:
        receiver.receive(timeout=wait)
    except TimeoutError:
        return True
    return False


def test_lo_is_listed_and_resolvable() -> None:
    lo = resolve_interface("lo")
    assert lo.loopback and lo.multicast and lo.up
    assert resolve_interface(lo.index) == lo
    assert resolve_interface(str(lo.index)) == lo
    assert resolve_interface("127.0.0.1") == lo
    assert resolve_interface("::1") == lo
    assert lo in list_interfaces()


def test_unknown_interface_is_named() -> None:
    with pytest.raises(InterfaceError, match=r"unknown interface 'eth9' \(interfaces here: lo"):
        resolve_interface("eth9")
    with pytest.raises(InterfaceError, match=r"'198\.18\.0\.1'"):
        resolve_interface("198.18.0.1")


def test_metadata_group_interface_ttl(family: tuple[socket.AddressFamily, str, str, str]) -> None:
    af, group_a, group_b, _ = family
    with open_receiver([group_a, group_b], 0, interfaces="lo") as receiver:
        port = receiver.port
        with _lo_sender(af, ttl=7) as sender:
            sender.send(b"to a", group_a, port)
            sender.send(b"to b", group_b, port)
        first = receiver.receive(TIMEOUT)
        second = receiver.receive(TIMEOUT)
    lo = resolve_interface("lo").index
    assert (first.payload, first.group, first.interface, first.ttl) == (b"to a", group_a, lo, 7)
    assert (second.payload, second.group) == (b"to b", group_b)
    assert not first.truncated and first.size == 4
    assert first.source[0] in {"127.0.0.1", "::1"}


def test_isolation_between_groups_on_one_port(
    family: tuple[socket.AddressFamily, str, str, str],
) -> None:
    af, group_a, group_b, _ = family
    with open_receiver([group_a], 0, interfaces="lo") as only_a:
        port = only_a.port
        with open_receiver([group_b], port, interfaces="lo") as only_b, _lo_sender(af) as sender:
            sender.send(b"for b", group_b, port)
            assert only_b.receive(TIMEOUT).payload == b"for b"
            assert _nothing_arrives(only_a)


def test_without_isolation_linux_leaks_other_groups() -> None:
    """The reason isolation is on by default: IP_MULTICAST_ALL=1 delivers every joined group."""
    with open_receiver(["239.1.1.1"], 0, interfaces="lo", isolate=False) as leaky:
        port = leaky.port
        with open_receiver(["239.1.1.2"], port, interfaces="lo") as other, Sender() as sender:
            sender.send(b"b", "239.1.1.2", port)
            assert other.receive(TIMEOUT).payload == b"b"
            assert leaky.receive(TIMEOUT).group == "239.1.1.2"


def test_two_receivers_on_one_port_both_receive(
    family: tuple[socket.AddressFamily, str, str, str],
) -> None:
    af, group, _, _ = family
    with open_receiver([group], 0, interfaces="lo") as first:
        with open_receiver([group], first.port, interfaces="lo") as second:
            with _lo_sender(af) as sender:
                sender.send(b"both", group, first.port)
            assert first.receive(TIMEOUT).payload == b"both"
            assert second.receive(TIMEOUT).payload == b"both"


def test_reuse_port_receivers_both_receive() -> None:
    with open_receiver(["239.1.1.1"], 0, reuse_port=True) as first:
        with open_receiver(["239.1.1.1"], first.port, reuse_port=True) as second, Sender() as s:
            s.send(b"x", "239.1.1.1", first.port)
            assert first.receive(TIMEOUT).payload == second.receive(TIMEOUT).payload == b"x"


def test_source_specific_join_accepts_only_its_source(
    family: tuple[socket.AddressFamily, str, str, str],
    other_source: dict[socket.AddressFamily, str],
) -> None:
    af, _, _, ssm_group = family
    chosen = "127.0.0.1" if af == socket.AF_INET else "::1"
    other = other_source[af]
    with open_receiver([ssm_group], 0, interfaces="lo", sources=[chosen]) as receiver:
        port = receiver.port
        with _lo_sender(af, source=other) as stranger, _lo_sender(af, source=chosen) as friend:
            stranger.send(b"stranger", ssm_group, port)
            friend.send(b"friend", ssm_group, port)
        got = receiver.receive(TIMEOUT)
        assert (got.payload, got.source[0]) == (b"friend", chosen)
        assert _nothing_arrives(receiver)


def test_leave_stops_delivery(family: tuple[socket.AddressFamily, str, str, str]) -> None:
    af, group, _, _ = family
    with open_receiver([group], 0, interfaces="lo") as receiver, _lo_sender(af) as sender:
        sender.send(b"1", group, receiver.port)
        assert receiver.receive(TIMEOUT).payload == b"1"
        receiver.leave(group, "lo")
        assert receiver.memberships == []
        sender.send(b"2", group, receiver.port)
        assert _nothing_arrives(receiver)


def test_truncation_is_flagged_never_silent(
    family: tuple[socket.AddressFamily, str, str, str],
) -> None:
    af, group, _, _ = family
    with open_receiver([group], 0, interfaces="lo", max_size=100) as receiver:
        with _lo_sender(af) as sender:
            sender.send(bytes(range(256)) * 12, group, receiver.port)
        got = receiver.receive(TIMEOUT)
    assert got.truncated
    assert got.size == 3072
    assert got.payload == bytes(range(100))


def test_whole_largest_datagram(family: tuple[socket.AddressFamily, str, str, str]) -> None:
    af, group, _, _ = family
    largest = constants.MAX_PAYLOAD[af]
    with open_receiver([group], 0, interfaces="lo") as receiver, _lo_sender(af) as sender:
        sender.send(b"z" * largest, group, receiver.port)
        got = receiver.receive(TIMEOUT)
        assert (len(got.payload), got.truncated) == (largest, False)
        with pytest.raises(MessageSizeError, match=f"{largest + 1} bytes is over the {largest}"):
            sender.send(b"z" * (largest + 1), group, receiver.port)


def test_kernel_drops_are_counted(family: tuple[socket.AddressFamily, str, str, str]) -> None:
    af, group, _, _ = family
    with open_receiver([group], 0, interfaces="lo", receive_buffer=4096) as receiver:
        with _lo_sender(af) as sender:
            for _ in range(200):
                sender.send(b"d" * 512, group, receiver.port)
        ready = receiver.receive_ready()
        kept = len(ready)
        assert 0 < kept < 200
        with _lo_sender(af) as sender:
            sender.send(b"last", group, receiver.port)
        last = receiver.receive(TIMEOUT)
    assert last.drops == receiver.drops == 200 - kept


def test_receive_buffer_reports_granted_size() -> None:
    with contextlib.closing(new_socket()) as sock:
        granted = request_receive_buffer(sock, 1 << 20)
        assert granted >= 1 << 20  # Linux books twice the request
        assert granted == sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        with pytest.raises(ValueError, match="must be positive"):
            request_receive_buffer(sock, 0)


def test_receive_ready_drains_without_blocking() -> None:
    with open_receiver(["239.1.1.1"], 0) as receiver, Sender() as sender:
        assert receiver.receive_ready() == []
        for n in range(5):
            sender.send(bytes([n]), "239.1.1.1", receiver.port)
        payloads = []
        for _ in range(50):
            payloads += [d.payload for d in receiver.receive_ready()]
            if len(payloads) == 5:
                break
        assert payloads == [bytes([n]) for n in range(5)]


def test_unicast_ttl(family: tuple[socket.AddressFamily, str, str, str]) -> None:
    af = family[0]
    loopback = "127.0.0.1" if af == socket.AF_INET else "::1"
    with Receiver(0, family=af) as receiver, contextlib.closing(new_socket(af)) as sock:
        set_unicast_ttl(sock, 5)
        send_datagram(sock, b"reply", loopback, receiver.port)
        got = receiver.receive(TIMEOUT)
    assert (got.payload, got.group, got.ttl) == (b"reply", loopback, 5)
    with pytest.raises(ValueError, match="unicast TTL 0"):
        set_unicast_ttl(sock, 0)


def test_ttl_zero_still_reaches_this_host() -> None:
    with open_receiver(["239.1.1.1"], 0) as receiver, Sender(ttl=0) as sender:
        sender.send(b"local", "239.1.1.1", receiver.port)
        assert receiver.receive(TIMEOUT).ttl == 0


def test_joining_what_is_joined_is_no_error(caplog: pytest.LogCaptureFixture) -> None:
    """As python-zeroconf does: a second join of the same membership is logged (debug) only."""
    caplog.set_level(logging.DEBUG, logger="multicast.core.membership")
    with open_receiver(["239.1.1.1", "239.1.1.1"], 0, interfaces="lo") as receiver:
        again = receiver.join("239.1.1.1", "lo")
        assert receiver.memberships == [again]
    assert caplog.messages == ["239.1.1.1 on interface 1 is already joined on this socket"] * 2


def test_errors_name_group_and_interface() -> None:
    with open_receiver(["239.1.1.1"], 0, interfaces="lo") as receiver:
        with pytest.raises(SocketOptionError, match=r"cannot leave 239\.1\.1\.2 on interface 1"):
            receiver.leave("239.1.1.2", "lo")
        with pytest.raises(GroupError, match="not of this socket's address family"):
            receiver.join("ff11::1")
        with pytest.raises(InterfaceError, match="'nope0'"):
            receiver.join("239.1.1.3", "nope0")
    with pytest.raises(GroupError, match="mix IPv4 and IPv6"):
        open_receiver(["239.1.1.1", "ff11::1"], 0)
    with pytest.raises(GroupError, match="no group"):
        open_receiver([], 0)
    with pytest.raises(ValueError, match="TTL 300"):
        Sender(ttl=300)


def test_bind_conflict_without_reuse_is_clear() -> None:
    with Receiver(0) as first, contextlib.closing(new_socket()) as plain:
        with pytest.raises(BindError, match=f"cannot bind to 0.0.0.0 port {first.port}"):
            bind_socket(plain, None, first.port)


def test_every_interface_joins_on_each_multicast_interface() -> None:
    with open_receiver(["239.1.1.1"], 0, every_interface=True) as receiver:
        assert [m.interface for m in receiver.memberships] == [resolve_interface("lo").index]


def test_unsupported_platform_names_the_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "LINUX", False)
    with contextlib.closing(new_socket()) as sock:
        with pytest.raises(UnsupportedError, match="group isolation"):
            set_isolation(sock)
        with pytest.raises(UnsupportedError, match="group membership"):
            join_group(sock, "239.1.1.1")


def test_a_receive_with_a_timeout_leaves_the_socket_timeout_alone() -> None:
    with (
        open_receiver(["239.1.1.9"], 0, interfaces="lo") as receiver,
        _lo_sender(socket.AF_INET) as sender,
    ):
        with pytest.raises(TimeoutError):
            receiver.receive(timeout=0.05)
        assert receiver.sock.gettimeout() is None
        late = threading.Timer(0.3, sender.send, (b"late", "239.1.1.9", receiver.port))
        late.start()
        try:
            got = receiver.receive()  # no timeout: waits longer than the one before
        finally:
            late.join()
        assert got.payload == b"late"


def test_a_zoned_group_is_resolved_once_per_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    group = "ff11::1:9%lo"
    with open_receiver([group], 0) as receiver, _lo_sender(socket.AF_INET6) as sender:
        asked: list[str] = []
        by_name = interfaces.index_by_name

        def counted(sock: socket.socket, name: str) -> int | None:
            asked.append(name)
            return by_name(sock, name)

        def no_listing() -> None:
            raise AssertionError("interfaces were listed to send a datagram")

        monkeypatch.setattr(interfaces, "index_by_name", counted)
        monkeypatch.setattr(interfaces, "list_interfaces", no_listing)
        for _ in range(3):
            sender.send(b"zoned", parse_group(group), receiver.port)
        got = [receiver.receive(TIMEOUT) for _ in range(3)]
    assert [d.payload for d in got] == [b"zoned"] * 3
    assert asked == ["lo"]
