"""The non-blocking UDP peer's settings and argument checks, without a socket."""

from __future__ import annotations

import pytest

from multicast.udp import Peer, PeerDoer


def test_buffer_sizes_follow_bc_and_bs() -> None:
    assert (Peer().bc, Peer().bs, Peer.BufSize, Peer.MaxGramSize) == (None, 65535, 65535, 1240)
    assert Peer(bc=1024).bs == 1024 * Peer.MaxGramSize == 1_269_760
    assert Peer(bc=2, bs=5).bs == 2480  # bc wins
    assert (Peer(bc=0).bc, Peer(bc=0).bs) == (None, 65535)
    assert Peer(bs=32767).bs == 32767


def test_unknown_keywords_are_rejected() -> None:
    with pytest.raises(TypeError, match="temp"):
        Peer(temp=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="colour"):
        PeerDoer(Peer(), colour="red")
