"""The group shorthand and groups files (pure; no network)."""

from __future__ import annotations

import pytest

from multicast.core import (
    MAX_CHANNELS,
    Channel,
    parse_address,
    parse_channel_lines,
    parse_channels,
    parse_group,
)
from multicast.core.membership import Membership
from multicast.core.spread import Slots, SocketLimits
from multicast.exceptions import AddressError, GroupError


def texts(channels: list[Channel]) -> list[str]:
    return [str(channel) for channel in channels]


def test_a_count_names_consecutive_groups() -> None:
    assert len(parse_channels("239.1.0.0+100")) == 100
    assert texts(parse_channels("239.1.0.0+100"))[-1] == "239.1.0.99"
    assert texts(parse_channels("ff15::ffff+2")) == ["ff15::ffff", "ff15::1:0"]
    assert texts(parse_channels("ff02::1%lo+2")) == ["ff02::1%lo", "ff02::2%lo"]
    assert texts(parse_channels(" 239.1.2.3 ")) == ["239.1.2.3"]


def test_a_source_makes_source_specific_pairs() -> None:
    (pair,) = parse_channels("192.0.2.1,232.1.1.1")
    assert pair == Channel(parse_group("232.1.1.1"), parse_address("192.0.2.1"))
    assert texts(parse_channels("2001:db8::1,ff35::1+2")) == [
        "2001:db8::1,ff35::1",
        "2001:db8::1,ff35::2",
    ]


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("239.255.255.255+2", GroupError, "runs past the last multicast group"),
        ("239.1.1.1+0", GroupError, "from 1 to 65536"),
        ("239.1.1.1+", GroupError, "from 1 to 65536"),
        (f"239.1.1.1+{MAX_CHANNELS + 1}", GroupError, "from 1 to 65536"),
        ("239.1.1.1+1e3", GroupError, "from 1 to 65536"),
        ("10.0.0.1+3", GroupError, "not a multicast address"),
        ("239.1.1.1,239.1.1.2", AddressError, "is a multicast address"),
        ("2001:db8::1,239.1.1.1", GroupError, "different families"),
        ("example.com,239.1.1.1", AddressError, "never looked up"),
        ("239.1.1.1%eth0+2", GroupError, "only meaningful for IPv6"),
    ],
)
def test_bad_shorthand_is_named(text: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words) as raised:
        parse_channels(text)
    assert "\n" not in str(raised.value)


def test_a_groups_file_has_words_comments_and_no_duplicates() -> None:
    text = "# the news\n239.1.1.1  239.1.1.2+2 # more\n\n192.0.2.1,232.1.1.1\n239.1.1.2\n"
    assert texts(parse_channel_lines(text)) == [
        "239.1.1.1",
        "239.1.1.2",
        "239.1.1.3",
        "192.0.2.1,232.1.1.1",
    ]
    assert parse_channel_lines("# nothing\n") == []


def test_a_groups_file_error_names_its_line() -> None:
    with pytest.raises(GroupError, match=r"^groups\.txt, line 3: '10\.1\.1\.1' is not"):
        parse_channel_lines("239.1.1.1\n\n10.1.1.1\n", origin="groups.txt")
    with pytest.raises(GroupError, match="mix IPv4 and IPv6"):
        parse_channel_lines("239.1.1.1\nff15::1\n")
    with pytest.raises(GroupError, match="more than 65536"):
        parse_channel_lines("239.0.0.0+65536 239.1.0.0+1")


def membership(group: str, source: str | None = None, interface: int = 0) -> Membership:
    return Membership(parse_group(group), interface, parse_address(source) if source else None)


def test_slots_fill_each_socket_to_its_limit() -> None:
    slots = Slots(SocketLimits(groups=2, sources=3))
    assert [slots.place(membership(f"239.1.1.{n}")) for n in range(5)] == [0, 0, 1, 1, 2]
    # The same group on another interface is another kernel record.
    assert slots.place(membership("239.1.1.0", interface=2)) == 2
    slots.release(0, membership("239.1.1.1"))
    assert slots.place(membership("239.1.1.9")) == 0
    assert slots.count == 3


def test_slots_spread_sources_and_keep_a_split_group_off_the_reading_socket() -> None:
    slots = Slots(SocketLimits(groups=None, sources=2))
    placed = [slots.place(membership("232.1.1.1", f"192.0.2.{n}")) for n in range(1, 6)]
    assert placed == [0, 0, 1, 1, 2]
    assert slots.split(membership("232.1.1.1", "192.0.2.1"))
    # Moved off the reading socket, the first two go where there is room, never to slot 0.
    for n in (1, 2):
        slots.release(0, membership("232.1.1.1", f"192.0.2.{n}"))
    assert [slots.place(membership("232.1.1.1", f"192.0.2.{n}")) for n in (1, 2)] == [2, 3]
    # An any-source join of a group a socket holds by source goes elsewhere, and back.
    assert slots.place(membership("232.1.1.1")) == 4
    assert slots.place(membership("232.1.1.2", "192.0.2.1")) == 0


def test_a_full_socket_takes_nothing_more() -> None:
    slots = Slots(SocketLimits(groups=None, sources=None))
    first = membership("239.1.1.1")
    assert slots.place(first) == 0
    slots.full(0, membership("239.1.1.2"))
    assert slots.place(membership("239.1.1.3")) == 1
