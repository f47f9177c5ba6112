"""What a received datagram carries: ancillary records, the reply address, the size limit.

The records are built as the kernel lays them out; nothing here opens a socket.
"""

from __future__ import annotations

import doctest
import socket
import struct

import pytest

from multicast.core import Datagram, check_payload_size, constants, datagram, parse_ancillary
from multicast.core.datagram import Ancillary, reply_address
from multicast.exceptions import MessageSizeError


def _pktinfo4(index: int, destination: str) -> tuple[int, int, bytes]:
    data = struct.pack("=i4s4s", index, bytes(4), socket.inet_pton(socket.AF_INET, destination))
    return (socket.IPPROTO_IP, constants.IP_PKTINFO, data)


def _pktinfo6(index: int, destination: str) -> tuple[int, int, bytes]:
    data = struct.pack("=16si", socket.inet_pton(socket.AF_INET6, destination), index)
    return (socket.IPPROTO_IPV6, constants.IPV6_PKTINFO, data)


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(datagram).failed == 0


def test_ipv4_destination_interface_ttl_and_drops() -> None:
    records = [
        _pktinfo4(3, "239.1.2.3"),
        (socket.IPPROTO_IP, constants.IP_TTL, struct.pack("=i", 9)),
        (socket.SOL_SOCKET, constants.SO_RXQ_OVFL, struct.pack("=I", 41)),
    ]
    assert parse_ancillary(records) == Ancillary("239.1.2.3", 3, 9, 41)


def test_ipv6_destination_interface_and_hop_limit() -> None:
    records = [
        (socket.IPPROTO_IPV6, constants.IPV6_HOPLIMIT, struct.pack("=i", 255)),
        _pktinfo6(7, "ff0e::5:1"),
    ]
    assert parse_ancillary(records) == Ancillary("ff0e::5:1", 7, 255, 0)


def test_short_and_unknown_records_are_skipped() -> None:
    records = [
        (socket.IPPROTO_IP, constants.IP_PKTINFO, b"\x01\x02"),  # shorter than in_pktinfo
        (socket.IPPROTO_IPV6, constants.IPV6_PKTINFO, bytes(19)),
        (socket.IPPROTO_IP, constants.IP_TTL, b"\x05"),
        (socket.SOL_SOCKET, constants.SO_RXQ_OVFL, b""),
        (99, constants.IP_PKTINFO, _pktinfo4(3, "239.1.2.3")[2]),  # an unknown level
    ]
    assert parse_ancillary(records) == Ancillary()


def test_a_reply_goes_to_the_source_by_its_arrival_interface() -> None:
    assert reply_address(Datagram(b"", ("192.0.2.1", 5000), interface=4)) == ("192.0.2.1", 5000)
    assert reply_address(Datagram(b"", ("fe80::1", 5000), interface=4)) == (
        "fe80::1",
        5000,
        0,
        4,
    )
    assert reply_address(Datagram(b"", ("2001:db8::1", 5000))) == ("2001:db8::1", 5000, 0, 0)


def test_the_size_limit_of_one_datagram_per_family() -> None:
    check_payload_size(socket.AF_INET, 65507)
    check_payload_size(socket.AF_INET6, 65527)
    with pytest.raises(MessageSizeError, match="65508 bytes is over the 65507-byte limit"):
        check_payload_size(socket.AF_INET, 65508)
    with pytest.raises(MessageSizeError, match="UDP/IPv6"):
        check_payload_size(socket.AF_INET6, 65528)
