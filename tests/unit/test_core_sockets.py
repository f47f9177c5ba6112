"""The core's reading of ancillary data (``recvmsg`` control records), on made-up records."""

from __future__ import annotations

import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from multicast.core import constants, parse_ancillary


@given(
    st.lists(
        st.tuples(
            st.sampled_from([socket.IPPROTO_IP, socket.IPPROTO_IPV6, socket.SOL_SOCKET, 99]),
            st.sampled_from(
                [
                    constants.IP_PKTINFO,
                    constants.IPV6_PKTINFO,
                    constants.IP_TTL,
                    constants.IPV6_HOPLIMIT,
                    constants.SO_RXQ_OVFL,
                    7,
                ]
            ),
            st.binary(max_size=40),
        ),
        max_size=6,
    )
)
def test_ancillary_parser_takes_any_bytes(records: list[tuple[int, int, bytes]]) -> None:
    meta = parse_ancillary(records)
    known = [(level, kind, data) for level, kind, data in records if level != 99 and kind != 7]
    assert parse_ancillary(known) == meta  # records of unknown levels and types are skipped
    counts = [
        data
        for level, kind, data in records
        if (level, kind) == (socket.SOL_SOCKET, constants.SO_RXQ_OVFL) and len(data) >= 4
    ]
    # The last whole drop count is read; a short one is skipped, never trusted.
    assert meta.drops == (struct.unpack_from("=I", counts[-1])[0] if counts else 0)
