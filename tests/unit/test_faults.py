"""The interface watcher's netlink parsing, on made-up and random bytes (linux/netlink.h,
linux/rtnetlink.h layouts)."""

from __future__ import annotations

import doctest
import struct

from hypothesis import given
from hypothesis import strategies as st

from multicast.core import watch
from multicast.core.watch import LinkChange, parse_messages

NEWLINK, DELLINK, NEWROUTE, OVERRUN = 16, 17, 24, 4


UP, RUNNING = 0x1, 0x40


def message(kind: int, body: bytes = b"") -> bytes:
    """One netlink message: header and ``body``, padded to 4 bytes."""
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body + bytes(-len(body) % 4)


def attribute(kind: int, value: bytes) -> bytes:
    """One attribute (``rtattr``): length, type and ``value``, padded to 4 bytes."""
    return struct.pack("=HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)


def link(kind: int, index: int, flags: int = 0, name: str = "eth0", family: int = 0) -> bytes:
    """A link message: the hardware address (skipped), then the name."""
    info = struct.pack("=BxHiII", family, 1, index, flags, 0xFFFFFFFF)
    return message(kind, info + attribute(1, bytes(6)) + attribute(3, name.encode() + b"\0"))


def test_watcher_doctests() -> None:
    assert doctest.testmod(watch).failed == 0


def test_link_and_route_messages_are_read() -> None:
    data = b"".join(
        [
            link(NEWLINK, 7, UP | RUNNING),
            link(NEWLINK, 7, UP, family=7),  # AF_BRIDGE: a bridge port's view, not the device
            message(NEWROUTE, bytes(12)),
            link(DELLINK, 7, 0, "eth1"),
            message(OVERRUN),
            message(99, b"unknown"),
            link(NEWLINK, 0),  # no such index
        ]
    )
    found = parse_messages(data)
    assert found.links == (
        LinkChange(7, "eth0", up=True, running=True, removed=False),
        LinkChange(7, "eth1", up=False, running=False, removed=True),
    )
    assert (found.routes, found.lost, found.removed) == (1, True, frozenset({7}))
    assert [str(change) for change in found.links] == [
        "eth0 (index 7) up, running",
        "eth1 (index 7) removed",
    ]
    assert found and not parse_messages(message(99))


@given(st.binary(max_size=512))
def test_any_bytes_are_read_without_error(data: bytes) -> None:
    found = parse_messages(data)
    assert all(change.index > 0 for change in found.links)


@given(
    st.lists(st.tuples(st.sampled_from([NEWLINK, DELLINK]), st.integers(1, 2**31 - 1))),
    st.binary(max_size=64),
)
def test_messages_before_damage_are_all_read(changes: list[tuple[int, int]], junk: bytes) -> None:
    found = parse_messages(b"".join(link(kind, index) for kind, index in changes) + junk)
    assert [(c.index, c.removed) for c in found.links[: len(changes)]] == [
        (index, kind == DELLINK) for kind, index in changes
    ]
