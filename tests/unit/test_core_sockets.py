"""The core's reading of ancillary data (``recvmsg`` control records), on made-up records."""

from __future__ import annotations

import socket

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
    assert meta.drops >= 0
