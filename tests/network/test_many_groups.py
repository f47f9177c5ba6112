"""A receiver of the core joins more groups than one socket may hold (issue 14).

Linux lets one socket join ``net.ipv4.igmp_max_memberships`` groups (20 by default) and
``igmp_max_msf`` sources per group: the receiver spreads the rest over sockets that only
hold memberships, and still tells each datagram's group, and only the ones it joined.
"""

from __future__ import annotations

import socket
from collections import Counter
from pathlib import Path

import pytest

from multicast.core import Channel, Receiver, Sender, open_receiver, parse_channels
from multicast.core.spread import SocketLimits

TIMEOUT = 5.0


def drain(receiver: Receiver, expected: int) -> list[tuple[str | None, str]]:
    """(group, source) of each datagram until ``expected`` arrived or TIMEOUT passed."""
    seen: list[tuple[str | None, str]] = []
    while len(seen) < expected:
        batch = receiver.receive_batch(1024, TIMEOUT)
        if not batch:
            break
        seen += [(d.group, d.source[0]) for d in batch]
    return seen


def test_the_limits_are_read_from_this_namespace() -> None:
    limits = SocketLimits.of(socket.AF_INET)
    text = Path("/proc/sys/net/ipv4/igmp_max_memberships").read_text()
    assert limits.groups == int(text)
    assert SocketLimits.of(socket.AF_INET6).groups is None


@pytest.mark.parametrize(
    ("shorthand", "family"),
    [("239.14.0.0+300", socket.AF_INET), ("ff11::14:0+300", socket.AF_INET6)],
    ids=["ipv4", "ipv6"],
)
def test_a_receiver_joins_past_the_socket_limit(shorthand: str, family: int) -> None:
    channels = parse_channels(shorthand)
    groups = [str(channel.group) for channel in channels]
    with open_receiver(channels, 0, receive_buffer=4 << 20) as receiver, Sender(family) as out:
        if family == socket.AF_INET:
            limit = SocketLimits.of(socket.AF_INET).groups
            assert limit is not None and len(receiver.holders) >= len(groups) // limit - 1
        assert len(receiver.memberships) == len(groups)
        for group in groups:
            out.send(group.encode(), group, receiver.port)
        seen = drain(receiver, len(groups))
    assert Counter(group for group, _ in seen) == Counter(groups)


def test_a_spread_receiver_keeps_only_what_it_joined() -> None:
    """Once spread, the reading socket takes every group of its port joined on the host:
    another socket's group is dropped and counted, as is a source not joined."""
    channels = parse_channels("239.14.1.0+40")
    port = 6140
    with (
        open_receiver(channels, port) as receiver,
        open_receiver(["239.14.2.1"], port) as other,
        open_receiver([Channel(parse_channels("239.14.3.1")[0].group, None)], port) as any3,
        Sender() as out,
    ):
        assert receiver.holders and receiver.table.only_joined
        receiver.join_all(parse_channels("127.0.0.9,239.14.3.1"))  # no such sender
        for group in ("239.14.1.0", "239.14.2.1", "239.14.3.1", "239.14.1.39"):
            out.send(b"x", group, port)
        seen = drain(receiver, 2)
        assert [group for group, _ in seen] == ["239.14.1.0", "239.14.1.39"]
        assert receiver.not_joined == 2
        assert len(drain(other, 1)) == len(drain(any3, 1)) == 1


def test_sources_past_the_per_group_limit_go_to_another_socket() -> None:
    """More source-specific joins of one group than igmp_max_msf allows on one socket."""
    limit = SocketLimits.of(socket.AF_INET).sources
    assert limit is not None
    sources = [f"127.0.1.{n}" for n in range(1, limit + 3)]
    channels = [channel for s in sources for channel in parse_channels(f"{s},232.14.0.1")]
    with open_receiver(channels, 0) as receiver:
        assert len(receiver.memberships) == len(sources)
        assert len(receiver.holders) == 2
        slots = Counter(receiver.table.slot_of(m) for m in receiver.memberships)
        assert slots == {1: limit, 2: 2}  # none on the reading socket
        for source in sources[-2:]:
            with Sender(source=source) as out:
                out.send(b"s", "232.14.0.1", receiver.port)
        with Sender(source="127.0.0.1") as stranger:
            stranger.send(b"?", "232.14.0.1", receiver.port)
        seen = drain(receiver, 2)
    assert sorted(source for _, source in seen) == sources[-2:]


def test_leave_and_a_second_join_use_the_socket_that_holds_the_group() -> None:
    channels = parse_channels("239.14.4.0+30")
    with open_receiver(channels, 0) as receiver, Sender() as out:
        last = receiver.memberships[-1]
        assert receiver.table.slot_of(last) == 1
        receiver.leave(last.group)
        assert receiver.table.holds(last) is False
        again = receiver.join(last.group)
        assert receiver.table.slot_of(again) == 1  # the room it left
        out.send(b"x", str(last.group), receiver.port)
        assert [group for group, _ in drain(receiver, 1)] == [str(last.group)]
