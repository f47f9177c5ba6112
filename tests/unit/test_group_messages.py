"""IGMP and MLD messages and the IP packets carrying them: encode, decode, refuse the hostile."""

from __future__ import annotations

import doctest
import socket
import struct
from ipaddress import IPv4Address, IPv6Address
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multicast.group_management import messages, querier
from multicast.group_management.messages import (
    GroupRecord,
    Leave,
    MessageError,
    Protocol,
    Query,
    RecordReport,
    RecordType,
    Report,
    decode_igmp,
    decode_mld,
    encode_igmp,
    encode_mld,
    internet_checksum,
    max_response_limit,
)
from multicast.group_management.packets import (
    IPV4_ROUTER_ALERT,
    IPV6_ROUTER_ALERT_HOP_BY_HOP,
    decode_packet,
)

A4 = IPv4Address
A6 = IPv6Address
ANY4, ANY6 = A4("0.0.0.0"), A6("::")
LINK_LOCAL = A6("fe80::1")
ALL_HOSTS6 = A6("ff02::1")


@pytest.mark.parametrize("module", [messages, querier], ids=lambda m: m.__name__)
def test_the_docstring_examples_hold(module: ModuleType) -> None:
    assert doctest.testmod(module).failed == 0


def test_an_igmpv2_general_query_is_the_bytes_of_rfc_2236() -> None:
    # type 0x11, max response 100 tenths, checksum ~0x1164, group 0.0.0.0
    query = Query(Protocol.IGMP, 2, ANY4, 10.0)
    assert encode_igmp(query) == bytes.fromhex("1164ee9b00000000")
    assert decode_igmp(bytes.fromhex("1164ee9b00000000")) == query


def test_an_igmpv3_general_query_carries_qrv_and_qqic() -> None:
    # ... then flags 0x02 (S 0, QRV 2), QQIC 125, no source; checksum ~(0x1164 + 0x027d)
    query = Query(Protocol.IGMP, 3, ANY4, 10.0, robustness=2, interval=125.0)
    assert encode_igmp(query) == bytes.fromhex("1164ec1e00000000027d0000")


def test_an_igmpv1_query_has_no_response_time_and_hosts_use_10_s() -> None:
    data = bytearray(bytes.fromhex("1100000000000000"))
    struct.pack_into("!H", data, 2, internet_checksum(data))
    assert decode_igmp(data) == Query(Protocol.IGMP, 1, ANY4, 10.0)


@pytest.mark.parametrize(
    ("code", "tenths"),
    [(0x7F, 127), (0x80, 128), (0x8F, 248), (0x90, 256), (0xFF, 31744)],
)
def test_igmpv3_response_codes_follow_the_floating_point_rule(code: int, tenths: int) -> None:
    query = Query(Protocol.IGMP, 3, ANY4, tenths / 10)
    assert encode_igmp(query)[1] == code
    assert decode_igmp(encode_igmp(query)).max_response == tenths / 10


def test_a_time_the_code_cannot_carry_is_sent_as_the_next_lower_one() -> None:
    # 130 tenths: the code steps by 8 tenths from 128, so 128 goes out.
    sent = decode_igmp(encode_igmp(Query(Protocol.IGMP, 3, ANY4, 13.0)))
    assert sent.max_response == 12.8
    assert isinstance(sent, Query)


def test_mldv2_response_codes_reach_8387_seconds() -> None:
    low, high = max_response_limit(Protocol.MLD, 2)
    assert (low, high) == (0.001, 8387.584)
    top = Query(Protocol.MLD, 2, ANY6, high)
    data = encode_mld(top, LINK_LOCAL, ALL_HOSTS6)
    assert data[4:6] == b"\xff\xff"
    assert decode_mld(data, LINK_LOCAL, ALL_HOSTS6) == top


@pytest.mark.parametrize(
    ("protocol", "version", "seconds"),
    [
        (Protocol.IGMP, 2, 25.6),
        (Protocol.IGMP, 2, 0.04),
        (Protocol.IGMP, 3, 3174.5),
        (Protocol.MLD, 1, 65.536),
        (Protocol.MLD, 2, 8400.0),
    ],
)
def test_a_response_time_out_of_range_is_refused(
    protocol: Protocol, version: int, seconds: float
) -> None:
    query = Query(protocol, version, protocol.unspecified, seconds)
    with pytest.raises(MessageError, match="maximum response time"):
        if protocol is Protocol.IGMP:
            encode_igmp(query)
        else:
            encode_mld(query, LINK_LOCAL, ALL_HOSTS6)


def test_an_mldv1_query_is_24_bytes_and_its_checksum_covers_the_pseudo_header() -> None:
    query = Query(Protocol.MLD, 1, A6("ff0e::1"), 1.0)
    data = encode_mld(query, LINK_LOCAL, A6("ff0e::1"))
    assert len(data) == 24 and data[4:6] == (1000).to_bytes(2, "big")
    assert decode_mld(data, LINK_LOCAL, A6("ff0e::1")) == query
    with pytest.raises(MessageError, match="checksum"):
        decode_mld(data, A6("fe80::2"), A6("ff0e::1"))  # another sender: another pseudo-header


RECORDS4 = (
    GroupRecord(RecordType.TO_EXCLUDE, A4("239.1.2.3")),
    GroupRecord(RecordType.ALLOW, A4("232.1.1.1"), (A4("198.18.1.1"), A4("198.18.1.2"))),
    GroupRecord(RecordType.IS_INCLUDE, A4("232.1.1.2"), (A4("198.18.1.1"),), aux=b"abcd"),
)


@pytest.mark.parametrize(
    "message",
    [
        Report(Protocol.IGMP, 1, A4("239.1.2.3")),
        Report(Protocol.IGMP, 2, A4("239.1.2.3")),
        Leave(Protocol.IGMP, 2, A4("239.1.2.3")),
        RecordReport(Protocol.IGMP, 3, RECORDS4),
        Query(Protocol.IGMP, 2, A4("239.1.2.3"), 1.0),
        Query(Protocol.IGMP, 3, A4("232.1.1.1"), 1.0, (A4("198.18.1.1"),), True, 7, 31744.0),
    ],
    ids=repr,
)
def test_igmp_messages_survive_a_round_trip(message: Query | Report | Leave | RecordReport) -> None:
    data = encode_igmp(message)
    assert internet_checksum(data) == 0
    assert decode_igmp(data) == message


@pytest.mark.parametrize(
    "message",
    [
        Report(Protocol.MLD, 1, A6("ff0e::1")),
        Leave(Protocol.MLD, 1, A6("ff0e::1")),
        RecordReport(
            Protocol.MLD,
            2,
            (
                GroupRecord(RecordType.TO_INCLUDE, A6("ff0e::1")),
                GroupRecord(RecordType.BLOCK, A6("ff3e::8000:1"), (A6("2001:db8::1"),)),
            ),
        ),
        Query(Protocol.MLD, 2, A6("ff3e::8000:1"), 0.5, (A6("2001:db8::1"),), False, 2, 125.0),
    ],
    ids=repr,
)
def test_mld_messages_survive_a_round_trip(message: Query | Report | Leave | RecordReport) -> None:
    data = encode_mld(message, LINK_LOCAL, A6("ff02::16"))
    assert decode_mld(data, LINK_LOCAL, A6("ff02::16")) == message


def test_a_record_that_leaves_is_a_change_to_include_with_no_source() -> None:
    assert GroupRecord(RecordType.TO_INCLUDE, A4("239.1.2.3")).leaves
    assert not GroupRecord(RecordType.TO_INCLUDE, A4("239.1.2.3"), (A4("198.18.1.1"),)).leaves
    assert not GroupRecord(RecordType.BLOCK, A4("239.1.2.3")).leaves


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (Query(Protocol.IGMP, 1, ANY4, 10.0), "does not send IGMPv1"),
        (Query(Protocol.IGMP, 2, ANY4, 1.0, robustness=2), "carry no sources"),
        (Query(Protocol.IGMP, 3, ANY4, 1.0, robustness=8), "QRV is 3 bits"),
        (Query(Protocol.IGMP, 3, ANY6, 1.0), "not an address IGMP carries"),
        (Leave(Protocol.IGMP, 3, A4("239.1.2.3")), "no version-3 Leave"),
        (RecordReport(Protocol.IGMP, 2, ()), "version 3"),
        (Report(Protocol.MLD, 1, A6("ff0e::1")), "MLD message given to the IGMP encoder"),
    ],
)
def test_the_encoder_refuses_what_igmp_cannot_say(
    message: Query | Report | Leave | RecordReport, error: str
) -> None:
    with pytest.raises(MessageError, match=error):
        encode_igmp(message)


def _igmp(*words: bytes) -> bytes:
    data = bytearray(b"".join(words))
    struct.pack_into("!H", data, 2, internet_checksum(data))
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x11\x64", "shorter than 8"),
        (bytes.fromhex("1164ee9a00000000"), "checksum"),
        (_igmp(bytes.fromhex("11640000000000000000")), "neither old nor new"),
        (_igmp(bytes.fromhex("1164000000000000027d0002"), bytes(4)), "claims 2 addresses"),
        (_igmp(bytes.fromhex("1600000001020304")), "not a multicast group"),
        (_igmp(bytes.fromhex("1164000001020304")), "not a multicast group"),
        (_igmp(bytes.fromhex("13000000e0000001")), "not a group-management"),
        (
            _igmp(bytes.fromhex("2200000000000002"), bytes.fromhex("04000000ef010203")),
            "ends inside",
        ),
        (
            _igmp(bytes.fromhex("2200000000000001"), bytes.fromhex("09000000ef010203")),
            "unknown type 9",
        ),
        (_igmp(bytes.fromhex("2200000000000001"), bytes.fromhex("04010000ef010203")), "more data"),
        (_igmp(bytes.fromhex("2200000000000001"), bytes.fromhex("0100ffffef010203")), "65535"),
    ],
)
def test_hostile_igmp_is_refused_with_a_reason(data: bytes, error: str) -> None:
    with pytest.raises(MessageError, match=error):
        decode_igmp(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_decode_or_raise_message_error(data: bytes) -> None:
    for decode in (
        decode_igmp,
        lambda raw: decode_mld(raw, LINK_LOCAL, ALL_HOSTS6),
        lambda raw: decode_packet(raw, socket.AF_INET),
        lambda raw: decode_packet(raw, socket.AF_INET6),
    ):
        try:
            decode(data)
        except MessageError as error:
            assert str(error)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=8, max_size=80))
def test_any_igmp_body_with_a_right_checksum_decodes_or_raises_message_error(body: bytes) -> None:
    data = bytearray(body)
    struct.pack_into("!H", data, 2, 0)
    struct.pack_into("!H", data, 2, internet_checksum(data))
    try:
        message = decode_igmp(data)
    except MessageError:
        return
    assert message.protocol is Protocol.IGMP


# --- whole packets ----------------------------------------------------------------------------


def _ipv4(payload: bytes, *, options: bytes = b"", ttl: int = 1, protocol: int = 2) -> bytes:
    length = 20 + len(options)
    header = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | length // 4,
            0xC0,
            length + len(payload),
            0,
            0,
            ttl,
            protocol,
            0,
            A4("198.18.1.2").packed,
            A4("224.0.0.22").packed,
        )
    )
    struct.pack_into("!H", header, 10, internet_checksum(header + options))
    return bytes(header) + options + payload


def test_an_ipv4_packet_gives_its_sender_ttl_router_alert_and_message() -> None:
    report = RecordReport(Protocol.IGMP, 3, RECORDS4)
    packet = decode_packet(_ipv4(encode_igmp(report), options=IPV4_ROUTER_ALERT), socket.AF_INET)
    assert (packet.source, packet.destination, packet.ttl) == (
        A4("198.18.1.2"),
        A4("224.0.0.22"),
        1,
    )
    assert packet.router_alert and packet.message == report
    bare = decode_packet(_ipv4(encode_igmp(report), ttl=3), socket.AF_INET)
    assert (bare.router_alert, bare.ttl) == (False, 3)


def test_ipv4_trailing_bytes_beyond_the_total_length_are_not_the_message() -> None:
    data = _ipv4(encode_igmp(Report(Protocol.IGMP, 2, A4("239.1.2.3")))) + b"padding"
    assert decode_packet(data, socket.AF_INET).message == Report(Protocol.IGMP, 2, A4("239.1.2.3"))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x45" + bytes(10), "shorter than its header"),
        (_ipv4(b"", protocol=17), "not IGMP"),
        (b"\x65" + _ipv4(b"")[1:], "malformed"),
        (_ipv4(bytes(8), options=bytes([0x94, 9, 0, 0])), "option list is malformed"),
        (_ipv4(bytes(8), options=bytes([0x07, 1, 0, 0])), "option list is malformed"),
    ],
)
def test_hostile_ipv4_is_refused(data: bytes, error: str) -> None:
    with pytest.raises(MessageError, match=error):
        decode_packet(data, socket.AF_INET)


def _ipv6(payload: bytes, hop_by_hop: bytes | None, *, hop_limit: int = 1) -> bytes:
    extension = b""
    following = 58
    if hop_by_hop is not None:
        extension = bytes([58]) + hop_by_hop[1:]
        following = 0
    return (
        struct.pack("!IHBB", 6 << 28, len(extension) + len(payload), following, hop_limit)
        + LINK_LOCAL.packed
        + ALL_HOSTS6.packed
        + extension
        + payload
    )


def test_an_mld_packet_with_its_hop_by_hop_router_alert() -> None:
    query = Query(Protocol.MLD, 2, ANY6, 10.0, robustness=2, interval=125.0)
    data = _ipv6(encode_mld(query, LINK_LOCAL, ALL_HOSTS6), IPV6_ROUTER_ALERT_HOP_BY_HOP)
    packet = decode_packet(data, socket.AF_INET6)
    assert (packet.source, packet.ttl, packet.router_alert, packet.message) == (
        LINK_LOCAL,
        1,
        True,
        query,
    )
    plain = decode_packet(_ipv6(encode_mld(query, LINK_LOCAL, ALL_HOSTS6), None), socket.AF_INET6)
    assert not plain.router_alert


@pytest.mark.parametrize(
    ("hop_by_hop", "error"),
    [
        (bytes([58, 0, 5, 9, 0, 0, 1, 0]), "hop-by-hop options are malformed"),
        (bytes([58, 4, 5, 2, 0, 0, 1, 0]), "runs past the packet"),
        (bytes([44, 0, 1, 4, 0, 0, 0, 0]), "fragment"),
        (bytes([6, 0, 1, 4, 0, 0, 0, 0]), "next header 6 is not ICMPv6"),
    ],
)
def test_hostile_ipv6_extension_headers_are_refused(hop_by_hop: bytes, error: str) -> None:
    query = encode_mld(Query(Protocol.MLD, 1, ANY6, 1.0), LINK_LOCAL, ALL_HOSTS6)
    data = bytearray(_ipv6(query, hop_by_hop))
    data[40] = hop_by_hop[0]  # keep the header's own next-header byte
    with pytest.raises(MessageError, match=error):
        decode_packet(bytes(data), socket.AF_INET6)


def test_an_ipv6_packet_shorter_than_its_payload_length_is_refused() -> None:
    data = _ipv6(encode_mld(Query(Protocol.MLD, 1, ANY6, 1.0), LINK_LOCAL, ALL_HOSTS6), None)
    with pytest.raises(MessageError, match="IPv6 header is malformed"):
        decode_packet(data[:-1], socket.AF_INET6)
