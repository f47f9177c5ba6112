"""Bad values given to the library (issue 12, section 4): each raises a ``MulticastError``
subclass that names it, before any socket is left open; nothing is ever looked up in DNS;
errors the kernel gives on joining and sending say what to do about them.

The pure rules (``parse_port``, ``parse_ttl``, framing) are tested in ``tests/unit``.
"""

from __future__ import annotations

import errno
import gc
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from multicast.core import Receiver, Sender, join_group, new_socket, open_receiver
from multicast.exceptions import (
    AddressError,
    AuthKeyError,
    GroupError,
    MulticastError,
    OptionError,
    PortError,
    SendError,
    SocketOptionError,
)
from multicast.testing import Testbed
from multicast.tools import Monitor, Pong

from support.cli import free_port

GROUP = "239.12.4.1"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Fail on any name lookup of the socket module; yields the lookups tried."""
    tried: list[object] = []

    def refuse(*args: object, **kwargs: object) -> object:
        tried.append(args)
        raise AssertionError(f"a name was looked up: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyname", refuse)
    yield tried


def refused_without_leak(
    make: Callable[[], object], error: type[MulticastError], fragment: str
) -> None:
    """``make()`` raises ``error`` with ``fragment`` in its text and leaves no socket open."""
    before = open_fds()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(error, match=fragment):
            make()
        gc.collect()
    assert open_fds() == before


@pytest.mark.parametrize(
    ("make", "error", "fragment"),
    [
        (lambda: Receiver(70000), PortError, "port 70000 is out of range"),
        (lambda: Receiver("x"), PortError, "port 'x' is not a whole number"),  # type: ignore[arg-type]
        (lambda: open_receiver([GROUP], 70000), PortError, "70000"),
        (lambda: open_receiver([GROUP], 5000.5), PortError, "5000.5"),  # type: ignore[arg-type]
        (lambda: open_receiver([GROUP], 5000, max_size=-1), OptionError, "max_size -1"),
        (lambda: Receiver(5000, family=socket.AF_UNIX), AddressError, "family"),
        (lambda: Sender(ttl=1.5), OptionError, "TTL 1.5"),  # type: ignore[arg-type]
        (lambda: Sender(ttl=True), OptionError, "TTL True"),
        (lambda: Sender(source_port=70000), PortError, "70000"),
        (lambda: Sender(source="::1"), AddressError, "source ::1 is not IPv4"),
        (lambda: Sender(socket.AF_INET6, source="127.0.0.1"), AddressError, "not IPv6"),
        (lambda: Monitor([GROUP], 5000, key=b"short"), AuthKeyError, "5 bytes"),
        (lambda: Pong([GROUP], 5000, key=b"short"), AuthKeyError, "5 bytes"),
        (lambda: Pong([GROUP], 5000, ttl=0), OptionError, "unicast TTL 0"),
    ],
)
def test_a_bad_value_is_named_and_leaves_no_socket_open(
    make: Callable[[], object], error: type[MulticastError], fragment: str
) -> None:
    refused_without_leak(make, error, fragment)


@pytest.mark.parametrize("source", ["x", "localhost", "example.invalid"])
def test_a_sender_never_looks_up_its_source(no_dns: list[object], source: str) -> None:
    refused_without_leak(lambda: Sender(source=source), AddressError, "never looked up in DNS")
    assert no_dns == []


@pytest.mark.parametrize(
    ("destination", "error", "fragment"),
    [
        ("localhost", GroupError, "never looked up in DNS"),
        ("", GroupError, "'' is not an IP address"),
        (123, GroupError, "'123' is not an IP address"),
        (1.5, GroupError, "'1.5' is not an IP address"),
        ("127.0.0.1", GroupError, "'127.0.0.1' is not a multicast address"),
        ("ff02::1", GroupError, "not of this socket's family|is not IPv4"),
        (["239.1.2.3"], GroupError, "is not an IP address"),
    ],
)
def test_a_sender_sends_only_to_groups_given_as_literals(
    no_dns: list[object], destination: object, error: type[MulticastError], fragment: str
) -> None:
    port = free_port()
    with Sender() as sender, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", port))
        listener.setblocking(False)
        with pytest.raises((error, AddressError), match=fragment):
            sender.send(b"x", destination, port)  # type: ignore[arg-type]
        with pytest.raises(BlockingIOError):
            listener.recv(16)  # nothing went out
    assert no_dns == []


@pytest.mark.parametrize("port", [0, 70000, "5_000", True, 5000.0, None])
def test_a_sender_checks_the_port(port: object) -> None:
    with Sender() as sender, pytest.raises(PortError):
        sender.send(b"x", GROUP, port)  # type: ignore[arg-type]


def test_one_group_may_be_given_as_a_string() -> None:
    port = free_port()
    with open_receiver(GROUP, port, blocking=False) as receiver, Sender() as sender:
        assert [str(m.group) for m in receiver.memberships] == [GROUP]
        sender.send(b"one", GROUP, port)
        assert receiver.receive(timeout=5).payload == b"one"


# --- the kernel's refusals, with the way out --------------------------------------------------


def test_the_21st_group_names_the_sysctl_that_limits_groups() -> None:
    """On one socket (RECV's and HEAR's; a Receiver spreads its groups over sockets)."""
    limit = int(Path("/proc/sys/net/ipv4/igmp_max_memberships").read_text())
    with new_socket() as sock:
        for n in range(limit):
            join_group(sock, f"239.12.5.{n}")
        with pytest.raises(SocketOptionError) as refused:
            join_group(sock, "239.12.5.250")
    assert refused.value.errno == errno.ENOBUFS
    assert "239.12.5.250" in str(refused.value)
    assert f"net.ipv4.igmp_max_memberships (now {limit})" in str(refused.value)


@pytest.mark.parametrize(
    ("family", "group", "source", "sysctl"),
    [
        (socket.AF_INET, "232.12.5.1", "10.12.{}.{}", "net.ipv4.igmp_max_msf"),
        (socket.AF_INET6, "ff35::12:1", "2001:db8:12::{:x}:{:x}", "net.ipv6.mld_max_msf"),
    ],
    ids=["ipv4", "ipv6"],
)
def test_one_source_too_many_names_the_sysctl_that_limits_sources(
    family: socket.AddressFamily, group: str, source: str, sysctl: str
) -> None:
    with new_socket(family) as sock, pytest.raises(SocketOptionError) as refused:
        for n in range(1, 1000):
            join_group(sock, group, "lo", source.format(n // 200, n % 200 + 1))
    assert refused.value.errno == errno.ENOBUFS
    assert sysctl in str(refused.value)


@pytest.mark.parametrize(
    ("family", "group"), [(socket.AF_INET, GROUP), (socket.AF_INET6, "ff0e::12:1")]
)
def test_no_route_for_the_group_suggests_an_interface_or_the_doctor(
    testbed: Testbed, exit_stack: ExitStack, family: socket.AddressFamily, group: str
) -> None:
    host = testbed.add_host()  # no link, no route
    receiver = exit_stack.enter_context(host.call(Receiver, 0, family=family))
    with pytest.raises(SocketOptionError) as refused:
        receiver.join(group)
    sender = exit_stack.enter_context(host.call(Sender, family))
    with pytest.raises(SendError) as unsent:
        host.call(sender.send, b"x", group, 5000)
    assert unsent.value.errno == errno.ENETUNREACH
    for error in (refused.value, unsent.value):
        text = str(error)
        assert group in text and "--iface" in text and "multicast doctor" in text, text


@pytest.mark.parametrize("count", [1000, 2000])
def test_joining_many_ipv6_groups_takes_time_in_proportion(count: int) -> None:
    """The arrival filter is made once after the joins, not once per join (which made
    2,000 joins take 14 s)."""
    groups = [f"ff15::12:{n:x}" for n in range(count)]
    start = time.perf_counter()
    with open_receiver(groups, 0) as receiver:
        seconds = time.perf_counter() - start
        assert len(receiver.memberships) == count
    assert seconds < count * 0.0005, f"{count} joins took {seconds:.2f} s"
