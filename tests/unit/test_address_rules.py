"""The address truths of the core: zones, wildcards, the common family and the TTL rule.

Each rule raises one error type, whoever calls it.
"""

from __future__ import annotations

import doctest
import socket
from ipaddress import IPv4Address, IPv6Address

import pytest

from multicast.core import (
    addresses,
    common_family,
    parse_address,
    parse_group,
    parse_ttl,
    split_zone,
    wildcard_host,
)
from multicast.env import validate_ttl
from multicast.exceptions import AddressError, GroupError, OptionError


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(addresses).failed == 0


@pytest.mark.parametrize(
    ("text", "split"),
    [
        ("fe80::1%eth0", ("fe80::1", "eth0")),
        ("ff02::1%2", ("ff02::1", "2")),
        ("239.1.2.3", ("239.1.2.3", None)),
        ("a%b%c", ("a", "b%c")),
    ],
)
def test_a_zone_is_split_at_the_first_percent_sign(
    text: str, split: tuple[str, str | None]
) -> None:
    assert split_zone(text) == split


def test_an_empty_zone_is_an_address_error_naming_what_it_was() -> None:
    with pytest.raises(AddressError, match=r"source 'fe80::1%' has an empty %zone"):
        split_zone("fe80::1%", what="source")
    with pytest.raises(AddressError, match="empty %zone"):
        parse_address("fe80::1%")
    with pytest.raises(GroupError, match=r"group 'ff02::1%' has an empty %zone"):
        parse_group("ff02::1%")
    assert parse_group("ff02::1%eth0").interface == "eth0"


def test_the_wildcard_host_of_each_family() -> None:
    assert wildcard_host(socket.AF_INET) == "0.0.0.0"
    assert wildcard_host(socket.AF_INET6) == "::"
    with pytest.raises(AddressError, match="neither IPv4 nor IPv6"):
        wildcard_host(socket.AF_UNIX)


def test_the_common_family_of_groups_and_addresses() -> None:
    v4, v6 = parse_group("239.1.2.3"), parse_group("ff0e::1")
    assert common_family([v4, IPv4Address("192.0.2.1")]) == socket.AF_INET
    assert common_family([v6, IPv6Address("2001:db8::1")]) == socket.AF_INET6
    with pytest.raises(GroupError, match=r"groups 239\.1\.2\.3, ff0e::1 mix IPv4 and IPv6"):
        common_family([v4, v6])
    with pytest.raises(GroupError, match="no sources given"):
        common_family([], what="sources")


@pytest.mark.parametrize(
    ("value", "unicast", "ttl"),
    [(0, False, 0), ("255", False, 255), (" 64 ", False, 64), (1, True, 1), (255, True, 255)],
)
def test_a_ttl_is_a_whole_number_up_to_255(value: int | str, unicast: bool, ttl: int) -> None:
    assert parse_ttl(value, unicast=unicast) == ttl


@pytest.mark.parametrize(
    ("value", "unicast", "message"),
    [
        (256, False, r"TTL 256 is out of range \(0-255\)"),
        (-1, False, r"TTL -1 is out of range \(0-255\)"),
        (0, True, r"unicast TTL 0 is out of range \(1-255\)"),
        ("many", False, "TTL 'many' is not a whole number"),
        (1.5, False, "TTL 1.5 is not a whole number"),
        (True, False, "TTL True is not a whole number"),
        ("6_4", False, "TTL '6_4' is not a whole number"),
    ],
)
def test_a_bad_ttl_is_an_option_error(value: int | str, unicast: bool, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        parse_ttl(value, unicast=unicast)


def test_the_reference_ttl_check_keeps_its_narrower_answer() -> None:
    assert [validate_ttl(t) for t in (0, 1, 126, 127, 255, 256, "7")] == [
        False,
        True,
        True,
        False,
        False,
        False,
        True,
    ]
    with pytest.raises(ValueError, match="not a whole number"):
        validate_ttl("many")
