"""Group, address and port parsing (pure; no network)."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicast.core import Group, Scope, parse_address, parse_group, parse_port
from multicast.exceptions import AddressError, GroupError, MulticastError, PortError


@pytest.mark.parametrize(
    ("text", "scope", "ssm"),
    [
        ("224.0.0.1", Scope.LINK_LOCAL, False),
        ("224.0.1.1", Scope.GLOBAL, False),
        ("232.1.2.3", Scope.GLOBAL, True),
        ("239.255.0.1", Scope.ADMIN, False),
        ("ff01::1", Scope.INTERFACE_LOCAL, False),
        ("ff02::fb", Scope.LINK_LOCAL, False),
        ("ff05::2", Scope.ADMIN, False),
        ("ff08::2", Scope.ADMIN, False),
        ("ff0e::1", Scope.GLOBAL, False),
        ("ff3e::8000:1", Scope.GLOBAL, True),
        ("ff35::1", Scope.ADMIN, True),
        ("ff3e:30:2001:db8::1", Scope.GLOBAL, False),  # prefix-based, not SSM (ff3x:0::/32)
    ],
)
def test_scope_and_ssm(text: str, scope: Scope, ssm: bool) -> None:
    group = parse_group(text)
    assert group.scope is scope
    assert group.source_specific is ssm
    assert str(group) == text


def test_family_and_zone() -> None:
    assert parse_group("239.1.1.1").family == socket.AF_INET
    group = parse_group("ff02::1%eth0")
    assert group == Group(IPv6Address("ff02::1"), "eth0")
    assert group.family == socket.AF_INET6
    assert str(group) == "ff02::1%eth0"
    assert parse_group(group) is group
    assert parse_group(IPv4Address("224.0.0.251")).address == IPv4Address("224.0.0.251")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10.0.0.1", "'10.0.0.1' is not a multicast address"),
        ("::1", "'::1' is not a multicast address"),
        ("localhost", "never looked up in DNS"),
        ("bogus", "'bogus' is not an IP address"),
        ("'224.0.0.1'", "is not an IP address"),
        ("", "is not an IP address"),
        ("224.0.0.1%lo", "only meaningful for IPv6"),
        ("ff02::1%", "empty %zone"),
        ("224.0.0.256", "is not an IP address"),
    ],
)
def test_bad_groups_name_the_culprit(text: str, fragment: str) -> None:
    with pytest.raises(GroupError, match=fragment) as caught:
        parse_group(text)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, MulticastError)


@given(st.integers(0, 2**32 - 1))
def test_every_ipv4_address_is_accepted_exactly_when_multicast(value: int) -> None:
    address = IPv4Address(value)
    if 0xE0000000 <= value <= 0xEFFFFFFF:
        assert parse_group(str(address)).address == address
    else:
        with pytest.raises(GroupError):
            parse_group(str(address))


@given(st.integers(0, 2**128 - 1))
def test_every_ipv6_address_is_accepted_exactly_when_multicast(value: int) -> None:
    address = IPv6Address(value)
    if value >> 120 == 0xFF:
        assert parse_group(str(address)).address == address
    else:
        with pytest.raises(GroupError):
            parse_group(str(address))


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_group_error(text: str) -> None:
    try:
        group = parse_group(text)
    except GroupError:
        return
    assert group.address.is_multicast


def test_parse_address() -> None:
    assert parse_address("127.0.0.1") == IPv4Address("127.0.0.1")
    assert parse_address("fe80::1%lo") == IPv6Address("fe80::1")
    with pytest.raises(AddressError, match=r"source 'example\.com'"):
        parse_address("example.com", what="source")


@pytest.mark.parametrize(("value", "port"), [("1", 1), (65535, 65535), ("59259", 59259)])
def test_ports(value: int | str, port: int) -> None:
    assert parse_port(value) == port


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(0, r"out of range \(1-65535\)"), (65536, "65536 is out of range"), ("abc", "whole number")],
)
def test_bad_ports(value: int | str, fragment: str) -> None:
    with pytest.raises(PortError, match=fragment):
        parse_port(value)


@pytest.mark.parametrize(
    "value",
    [5000.9, 5000.0, "\u0665\u0660\u0660\u0660", "5_000", True, False, "0x10", "", None, b"5000"],
)
def test_a_port_is_an_int_or_ascii_digits_only(value: object) -> None:
    """Not Python's int() rule, which takes floats, '5_000' and digits of other scripts."""
    with pytest.raises(PortError, match="is not a whole number"):
        parse_port(value)  # type: ignore[arg-type]


def test_port_zero_when_allowed() -> None:
    assert parse_port(0, allow_zero=True) == 0
    with pytest.raises(PortError, match=r"\(0-65535\)"):
        parse_port(-1, allow_zero=True)
