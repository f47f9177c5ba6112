"""IGMP (RFC 2236, 3376) and MLD (RFC 2710, 3810) messages: encode and decode, no I/O.

An IGMP message is the payload of an IPv4 packet (protocol 2); an MLD message is an ICMPv6
message, whose checksum covers a pseudo-header with the packet's source and destination.
Every decoder treats its input as hostile: each length and count is checked against the
bytes present before it is used, and anything that is not a well-formed group-management
message raises :class:`MessageError` naming what is wrong.

Times are seconds (floats). On the wire they are codes: IGMPv2 tenths of a second, MLDv1
milliseconds, and IGMPv3/MLDv2 a floating-point code whose large values step coarsely; an
encoder sends the largest value the code can carry that does not exceed the one asked for.

>>> query = Query(Protocol.IGMP, 3, IPv4Address("0.0.0.0"), 10.0, robustness=2, interval=125.0)
>>> decode_igmp(encode_igmp(query)) == query
True
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from multicast.core import IPAddress
from multicast.exceptions import MulticastError

__all__ = [
    "GroupRecord",
    "Leave",
    "Message",
    "MessageError",
    "Protocol",
    "Query",
    "RecordReport",
    "RecordType",
    "Report",
    "decode_igmp",
    "decode_mld",
    "encode_igmp",
    "encode_mld",
    "internet_checksum",
    "max_response_limit",
]

# IGMP message types (RFC 3376 section 4, RFC 2236 section 2.1).
IGMP_QUERY = 0x11
IGMP_V1_REPORT = 0x12
IGMP_V2_REPORT = 0x16
IGMP_LEAVE = 0x17
IGMP_V3_REPORT = 0x22
# MLD message types (ICMPv6 types, RFC 3810 section 5, RFC 2710 section 3).
MLD_QUERY = 130
MLD_V1_REPORT = 131
MLD_DONE = 132
MLD_V2_REPORT = 143

_IGMP_V1_RESPONSE = 10.0  # an IGMPv1 query carries no response time: hosts use 10 s
_MAX_INTERVAL_CODE = 31744  # the largest value an 8-bit floating-point code carries
_ICMPV6 = 58


class MessageError(MulticastError, ValueError):
    """Bytes that are not a well-formed IGMP or MLD message; the text says what is wrong."""


class Protocol(enum.Enum):
    """IGMP for IPv4, MLD for IPv6: the same job, different versions and addresses."""

    IGMP = "IGMP"
    MLD = "MLD"

    @property
    def versions(self) -> tuple[int, ...]:
        """The versions this package speaks (IGMPv1 only as heard, never sent by a querier)."""
        return (1, 2, 3) if self is Protocol.IGMP else (1, 2)

    @property
    def newest(self) -> int:
        """The version with source lists: IGMPv3, MLDv2."""
        return self.versions[-1]

    @property
    def unspecified(self) -> IPAddress:
        """The group of a general query."""
        return IPv4Address(0) if self is Protocol.IGMP else IPv6Address(0)

    @property
    def all_hosts(self) -> IPAddress:
        """Where general queries go: 224.0.0.1, ff02::1."""
        return IPv4Address("224.0.0.1") if self is Protocol.IGMP else IPv6Address("ff02::1")

    @property
    def all_routers(self) -> IPAddress:
        """Where IGMPv2 leaves and MLDv1 dones go: 224.0.0.2, ff02::2."""
        return IPv4Address("224.0.0.2") if self is Protocol.IGMP else IPv6Address("ff02::2")

    @property
    def report_destination(self) -> IPAddress:
        """Where IGMPv3 and MLDv2 reports go: 224.0.0.22, ff02::16."""
        return IPv4Address("224.0.0.22") if self is Protocol.IGMP else IPv6Address("ff02::16")

    def name_of(self, version: int) -> str:
        """``IGMPv3``, ``MLDv1``..."""
        return f"{self.value}v{version}"


class RecordType(enum.IntEnum):
    """The kind of a group record of an IGMPv3 or MLDv2 report (RFC 3376 section 4.2.12)."""

    IS_INCLUDE = 1  # current state: receive only from the sources listed
    IS_EXCLUDE = 2  # current state: receive from all but the sources listed
    TO_INCLUDE = 3  # changed to include mode (with no source: the host left the group)
    TO_EXCLUDE = 4  # changed to exclude mode (with no source: an any-source join)
    ALLOW = 5  # sources added
    BLOCK = 6  # sources removed (the last of them: the host left the SSM channel)


@dataclass(frozen=True, slots=True)
class Query:
    """A membership query; general when ``group`` is unspecified (0.0.0.0, ::).

    ``sources``, ``suppress`` (the S flag), ``robustness`` (QRV) and ``interval`` (QQI, in
    seconds) exist only from IGMPv3 and MLDv2 on; older versions carry zeros there.
    """

    protocol: Protocol
    version: int
    group: IPAddress
    max_response: float
    sources: tuple[IPAddress, ...] = ()
    suppress: bool = False
    robustness: int = 0
    interval: float = 0.0

    @property
    def general(self) -> bool:
        return self.group == self.protocol.unspecified

    @property
    def kind(self) -> str:
        if self.general:
            return "general"
        return "group-and-source-specific" if self.sources else "group-specific"


@dataclass(frozen=True, slots=True)
class Report:
    """An IGMPv1/v2 or MLDv1 report: a host is a member of ``group``."""

    protocol: Protocol
    version: int
    group: IPAddress


@dataclass(frozen=True, slots=True)
class Leave:
    """An IGMPv2 leave or MLDv1 done: a host left ``group`` (version is 2 or 1)."""

    protocol: Protocol
    version: int
    group: IPAddress


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """One group of an IGMPv3 or MLDv2 report: its filter mode or change, and its sources."""

    kind: RecordType
    group: IPAddress
    sources: tuple[IPAddress, ...] = ()
    aux: bytes = b""

    @property
    def leaves(self) -> bool:
        """Whether the record says the host stopped receiving ``group`` from any source."""
        return self.kind is RecordType.TO_INCLUDE and not self.sources


@dataclass(frozen=True, slots=True)
class RecordReport:
    """An IGMPv3 or MLDv2 report: one record per group whose state it reports."""

    protocol: Protocol
    version: int
    records: tuple[GroupRecord, ...]


Message = Query | Report | Leave | RecordReport


# ---------------------------------------------------------------------------------------------
# Times on the wire.


def _decode_exponential(code: int, mantissa_bits: int) -> int:
    """The value of an RFC 3376/3810 floating-point code (small codes are the value itself)."""
    if code < 1 << (mantissa_bits + 3):
        return code
    exponent = (code >> mantissa_bits) & 0x7
    mantissa = code & ((1 << mantissa_bits) - 1)
    return (mantissa | 1 << mantissa_bits) << (exponent + 3)


def _encode_exponential(value: int, mantissa_bits: int) -> int:
    """The code of the largest value not above ``value`` (which must not exceed the top)."""
    if value < 1 << (mantissa_bits + 3):
        return value
    for exponent in range(8):
        mantissa = value >> (exponent + 3)
        if mantissa < 1 << (mantissa_bits + 1):
            low = mantissa - (1 << mantissa_bits)
            return 1 << (mantissa_bits + 3) | exponent << mantissa_bits | low
    raise ValueError(f"{value} is too large for a {mantissa_bits + 4}-bit time code")


def _top(mantissa_bits: int) -> int:
    return ((1 << (mantissa_bits + 1)) - 1) << 10


# (protocol, version) -> (units per second, bits of the field, mantissa bits or 0 if linear)
_RESPONSE_FIELD = {
    (Protocol.IGMP, 2): (10, 8, 0),
    (Protocol.IGMP, 3): (10, 8, 4),
    (Protocol.MLD, 1): (1000, 16, 0),
    (Protocol.MLD, 2): (1000, 16, 12),
}


def max_response_limit(protocol: Protocol, version: int) -> tuple[float, float]:
    """The smallest and largest maximum response time (seconds) a query of this version carries."""
    units, bits, mantissa = _RESPONSE_FIELD[protocol, version]
    top = _top(mantissa) if mantissa else (1 << bits) - 1
    return 1 / units, top / units


def _response_code(protocol: Protocol, version: int, seconds: float) -> int:
    units, _, mantissa = _RESPONSE_FIELD[protocol, version]
    low, high = max_response_limit(protocol, version)
    value = round(seconds * units)
    if not 1 <= value <= high * units:
        raise MessageError(
            f"maximum response time {seconds} s is outside {low}-{high} s for "
            f"{protocol.name_of(version)}"
        )
    return _encode_exponential(value, mantissa) if mantissa else value


def _response_seconds(protocol: Protocol, version: int, code: int) -> float:
    units, _, mantissa = _RESPONSE_FIELD[protocol, version]
    return (_decode_exponential(code, mantissa) if mantissa else code) / units


def _interval_code(seconds: float) -> int:
    value = round(seconds)
    if not 0 <= value <= _MAX_INTERVAL_CODE:
        raise MessageError(f"query interval {seconds} s is outside 0-{_MAX_INTERVAL_CODE} s")
    return _encode_exponential(value, 4)


# ---------------------------------------------------------------------------------------------
# Checksums.


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """The 16-bit one's complement of the one's complement sum of ``data`` (RFC 1071)."""
    raw = bytes(data)
    if len(raw) % 2:
        raw += b"\0"
    total: int = sum(struct.unpack(f"!{len(raw) // 2}H", raw))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _mld_pseudo_header(source: IPv6Address, destination: IPv6Address, length: int) -> bytes:
    return source.packed + destination.packed + struct.pack("!I3xB", length, _ICMPV6)


def _with_checksum(message: bytearray, prefix: bytes = b"") -> bytes:
    struct.pack_into("!H", message, 2, 0)
    struct.pack_into("!H", message, 2, internet_checksum(prefix + message))
    return bytes(message)


# ---------------------------------------------------------------------------------------------
# Encoding.


def _address_family_check(protocol: Protocol, *addresses: IPAddress) -> None:
    kind = IPv4Address if protocol is Protocol.IGMP else IPv6Address
    for address in addresses:
        if not isinstance(address, kind):
            raise MessageError(f"{address} is not an address {protocol.value} carries")


def _encode_query(query: Query) -> bytearray:
    protocol, version = query.protocol, query.version
    _address_family_check(protocol, query.group, *query.sources)
    if version not in protocol.versions[-2:]:
        raise MessageError(f"a querier does not send {protocol.name_of(version)} queries")
    if version < protocol.newest and (query.sources or query.suppress or query.robustness):
        raise MessageError(f"{protocol.name_of(version)} queries carry no sources, S flag or QRV")
    if not 0 <= query.robustness <= 7:
        raise MessageError(f"robustness {query.robustness} is outside 0-7 (QRV is 3 bits)")
    if len(query.sources) > 0xFFFF:
        raise MessageError(f"{len(query.sources)} sources do not fit in one query")
    code = _response_code(protocol, version, query.max_response)
    if protocol is Protocol.IGMP:
        message = bytearray(struct.pack("!BBH4s", IGMP_QUERY, code, 0, query.group.packed))
    else:
        message = bytearray(struct.pack("!BBHHH16s", MLD_QUERY, 0, 0, code, 0, query.group.packed))
    if version == protocol.newest:
        flags = (0x08 if query.suppress else 0) | query.robustness
        message += struct.pack(
            "!BBH", flags, _interval_code(query.interval), len(query.sources)
        ) + b"".join(source.packed for source in query.sources)
    return message


def _encode_records(protocol: Protocol, records: Sequence[GroupRecord]) -> bytes:
    if len(records) > 0xFFFF:
        raise MessageError(f"{len(records)} group records do not fit in one report")
    parts = []
    for record in records:
        _address_family_check(protocol, record.group, *record.sources)
        if len(record.aux) % 4 or len(record.aux) > 255 * 4 or len(record.sources) > 0xFFFF:
            raise MessageError(f"the record for {record.group} is too long or misaligned")
        parts.append(
            struct.pack("!BBH", record.kind, len(record.aux) // 4, len(record.sources))
            + record.group.packed
            + b"".join(source.packed for source in record.sources)
            + record.aux
        )
    return struct.pack("!HH", 0, len(records)) + b"".join(parts)


def _igmp_body(message: Message) -> bytearray:
    if isinstance(message, Query):
        return _encode_query(message)
    if isinstance(message, RecordReport):
        return bytearray(
            struct.pack("!BBH", IGMP_V3_REPORT, 0, 0)
            + _encode_records(Protocol.IGMP, message.records)
        )
    _address_family_check(Protocol.IGMP, message.group)
    kinds = {(Report, 1): IGMP_V1_REPORT, (Report, 2): IGMP_V2_REPORT, (Leave, 2): IGMP_LEAVE}
    kind = kinds.get((type(message), message.version))
    if kind is None:
        raise MessageError(f"IGMP has no version-{message.version} {type(message).__name__}")
    return bytearray(struct.pack("!BBH4s", kind, 0, 0, message.group.packed))


def encode_igmp(message: Message) -> bytes:
    """The IGMP message (the IPv4 payload), checksum included."""
    if message.protocol is not Protocol.IGMP:
        raise MessageError(f"{message.protocol.value} message given to the IGMP encoder")
    if isinstance(message, RecordReport) and message.version != 3:
        raise MessageError("IGMP reports with group records are version 3")
    return _with_checksum(_igmp_body(message))


def encode_mld(message: Message, source: IPv6Address, destination: IPv6Address) -> bytes:
    """The MLD message (the ICMPv6 message) sent from ``source`` to ``destination``."""
    if message.protocol is not Protocol.MLD:
        raise MessageError(f"{message.protocol.value} message given to the MLD encoder")
    if isinstance(message, Query):
        body = _encode_query(message)
    elif isinstance(message, RecordReport):
        if message.version != 2:
            raise MessageError("MLD reports with address records are version 2")
        body = bytearray(
            struct.pack("!BBH", MLD_V2_REPORT, 0, 0)
            + _encode_records(Protocol.MLD, message.records)
        )
    else:
        _address_family_check(Protocol.MLD, message.group)
        if message.version != 1:
            raise MessageError(f"MLD has no version-{message.version} {type(message).__name__}")
        kind = MLD_V1_REPORT if isinstance(message, Report) else MLD_DONE
        body = bytearray(struct.pack("!BBHHH16s", kind, 0, 0, 0, 0, message.group.packed))
    return _with_checksum(body, _mld_pseudo_header(source, destination, len(body)))


# ---------------------------------------------------------------------------------------------
# Decoding.


def _parser(protocol: Protocol) -> type[IPv4Address] | type[IPv6Address]:
    return IPv4Address if protocol is Protocol.IGMP else IPv6Address


def _multicast_group(protocol: Protocol, group: IPAddress, what: str) -> IPAddress:
    if not group.is_multicast:
        raise MessageError(f"{protocol.value} {what} for {group}, which is not a multicast group")
    return group


def _addresses(data: bytes, offset: int, count: int, size: int, what: str) -> list[bytes]:
    end = offset + count * size
    if end > len(data):
        raise MessageError(
            f"{what} claims {count} addresses but only {len(data) - offset} bytes follow"
        )
    return [data[at : at + size] for at in range(offset, end, size)]


def _decode_query(protocol: Protocol, data: bytes, code: int) -> Query:
    size = 4 if protocol is Protocol.IGMP else 16
    head = 8 if protocol is Protocol.IGMP else 24
    parse = _parser(protocol)
    group = parse(data[head - size : head])
    if not (group == protocol.unspecified or group.is_multicast):
        raise MessageError(f"{protocol.value} query for {group}, which is not a multicast group")
    if len(data) == head:
        if protocol is Protocol.IGMP and code == 0:
            return Query(protocol, 1, group, _IGMP_V1_RESPONSE)
        version = 2 if protocol is Protocol.IGMP else 1
        return Query(protocol, version, group, _response_seconds(protocol, version, code))
    if len(data) < head + 4:
        raise MessageError(f"{protocol.value} query of {len(data)} bytes: neither old nor new")
    flags, interval_code, count = struct.unpack_from("!BBH", data, head)
    sources = _addresses(data, head + 4, count, size, f"{protocol.value} query")
    version = protocol.newest
    return Query(
        protocol,
        version,
        group,
        _response_seconds(protocol, version, code),
        tuple(parse(raw) for raw in sources),
        suppress=bool(flags & 0x08),
        robustness=flags & 0x07,
        interval=float(_decode_exponential(interval_code, 4)),
    )


def _decode_records(protocol: Protocol, data: bytes, offset: int) -> tuple[GroupRecord, ...]:
    size = 4 if protocol is Protocol.IGMP else 16
    parse = _parser(protocol)
    if len(data) < offset + 4:
        raise MessageError(f"{protocol.value} report of {len(data)} bytes has no record count")
    (count,) = struct.unpack_from("!H", data, offset + 2)
    offset += 4
    records = []
    for number in range(1, count + 1):
        if len(data) < offset + 4 + size:
            raise MessageError(
                f"{protocol.value} report ends inside group record {number} of {count}"
            )
        kind, aux_words, sources = struct.unpack_from("!BBH", data, offset)
        try:
            record_type = RecordType(kind)
        except ValueError:
            raise MessageError(
                f"{protocol.value} group record {number} has unknown type {kind}"
            ) from None
        group = _multicast_group(protocol, parse(data[offset + 4 : offset + 4 + size]), "record")
        listed = _addresses(data, offset + 4 + size, sources, size, f"group record {number}")
        aux_start = offset + 4 + size * (1 + sources)
        offset = aux_start + 4 * aux_words
        if offset > len(data):
            raise MessageError(f"{protocol.value} group record {number} claims more data than sent")
        records.append(
            GroupRecord(
                record_type, group, tuple(parse(raw) for raw in listed), data[aux_start:offset]
            )
        )
    return tuple(records)


def decode_igmp(data: bytes | bytearray | memoryview) -> Message:
    """The IGMP message in ``data`` (an IPv4 packet's payload), its checksum verified."""
    raw = bytes(data)
    if len(raw) < 8:
        raise MessageError(f"IGMP message of {len(raw)} bytes is shorter than 8")
    if internet_checksum(raw) != 0:
        raise MessageError("IGMP checksum is wrong")
    kind, code = raw[0], raw[1]
    if kind == IGMP_QUERY:
        return _decode_query(Protocol.IGMP, raw, code)
    if kind == IGMP_V3_REPORT:
        return RecordReport(Protocol.IGMP, 3, _decode_records(Protocol.IGMP, raw, 4))
    if kind not in (IGMP_V1_REPORT, IGMP_V2_REPORT, IGMP_LEAVE):
        raise MessageError(f"IGMP type 0x{kind:02x} is not a group-management message")
    what = "leave" if kind == IGMP_LEAVE else "report"
    group = _multicast_group(Protocol.IGMP, IPv4Address(raw[4:8]), what)
    if kind == IGMP_LEAVE:
        return Leave(Protocol.IGMP, 2, group)
    return Report(Protocol.IGMP, 1 if kind == IGMP_V1_REPORT else 2, group)


def decode_mld(
    data: bytes | bytearray | memoryview, source: IPv6Address, destination: IPv6Address
) -> Message:
    """The MLD message in ``data`` (an ICMPv6 message from ``source`` to ``destination``)."""
    raw = bytes(data)
    if len(raw) < 24:
        raise MessageError(f"MLD message of {len(raw)} bytes is shorter than 24")
    if internet_checksum(_mld_pseudo_header(source, destination, len(raw)) + raw) != 0:
        raise MessageError("MLD checksum is wrong")
    kind = raw[0]
    if kind == MLD_QUERY:
        (code,) = struct.unpack_from("!H", raw, 4)
        return _decode_query(Protocol.MLD, raw, code)
    if kind == MLD_V2_REPORT:
        return RecordReport(Protocol.MLD, 2, _decode_records(Protocol.MLD, raw, 4))
    if kind in (MLD_V1_REPORT, MLD_DONE):
        cls = Report if kind == MLD_V1_REPORT else Leave
        what = "report" if cls is Report else "done"
        return cls(Protocol.MLD, 1, _multicast_group(Protocol.MLD, IPv6Address(raw[8:24]), what))
    raise MessageError(f"ICMPv6 type {kind} is not an MLD message")
