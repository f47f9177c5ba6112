"""Wire logs: the transcript record format, in memory and in files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicast.wiring import WireLog, openWL

BETA = ("127.0.0.1", 6102)


def test_separate_transcripts_byte_for_byte() -> None:
    with openWL() as wl:
        wl.writeTx(b"alpha sends to beta", who=BETA)
        wl.writeRx(b"beta answers", who=BETA)
        wl.writeTx(b"", who=("::1", 7))
        assert wl.readTx() == (
            b"\nTx ('127.0.0.1', 6102):\nalpha sends to beta\n\nTx ('::1', 7):\n\n"
        )
        assert wl.readRx() == b"\nRx ('127.0.0.1', 6102):\nbeta answers\n"


def test_samed_interleaves_rx_and_tx_in_one_transcript() -> None:
    with openWL(samed=True) as wl:
        wl.writeTx(b"ping", who=BETA)
        wl.readRx()  # reading in between must not make the next record overwrite
        wl.writeRx(bytearray(b"pong"), who=BETA)
        expected = b"\nTx ('127.0.0.1', 6102):\nping\n\nRx ('127.0.0.1', 6102):\npong\n"
        assert wl.readRx() == wl.readTx() == expected


def test_who_as_bytes_or_text_and_a_custom_format() -> None:
    with openWL(fmt=b"%(dx)b|%(who)b|%(data)b;") as wl:
        wl.writeRx(memoryview(b"a"), who=b"raw")
        wl.writeRx(b"b", who="text")
        wl.writeRx(b"c")
        assert wl.readRx() == b"Rx|raw|a;Rx|text|b;Rx||c;"


def test_only_what_is_asked_is_recorded() -> None:
    with openWL(rxed=False) as wl:
        wl.writeRx(b"ignored", who=BETA)
        wl.writeTx(b"kept", who=BETA)
        assert wl.readRx() == b""
        assert wl.readTx() == b"\nTx ('127.0.0.1', 6102):\nkept\n"


def test_reopen_starts_fresh_transcripts() -> None:
    wl = WireLog(reopen=True)
    wl.writeTx(b"old", who=BETA)
    wl.reopen()
    assert wl.opened and wl.readTx() == b""
    wl.close()
    assert not wl.opened


def test_temp_files_hold_the_transcripts_and_vanish_on_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # not the machine's shared /tmp
    with openWL(name="alpha", filed=True) as wl:
        wl.writeRx(b"in", who=BETA)
        wl.writeTx(b"out", who=BETA)
        wl.flush()
        assert wl.dirPath is not None and wl.rxPath is not None and wl.txPath is not None
        directory = wl.dirPath
        assert directory.parent == tmp_path
        assert directory.name.startswith("multicast_wirelogs_alpha_")
        assert wl.rxPath.name.startswith("alpha.") and wl.rxPath.name.endswith(".rx.log")
        assert wl.txPath.name.endswith(".tx.log")
        assert wl.rxPath.read_bytes() == b"\nRx ('127.0.0.1', 6102):\nin\n"
        assert wl.txPath.read_bytes() == b"\nTx ('127.0.0.1', 6102):\nout\n"
        assert wl.readTx() == wl.txPath.read_bytes()
    assert not directory.exists()


def test_temp_folders_are_private_to_their_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fixed shared path made by another user first (here: a file where the folder would
    be) stops nobody: each temporary log has a folder of its own, readable by its owner only."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "multicast").write_text("another user's")
    with openWL(name="gamma", filed=True) as one, openWL(name="gamma", filed=True) as two:
        assert one.dirPath is not None and two.dirPath is not None
        assert one.dirPath != two.dirPath
        assert one.dirPath.stat().st_mode & 0o777 == 0o700
        one.writeTx(b"mine", who=BETA)
        assert one.readTx() == b"\nTx ('127.0.0.1', 6102):\nmine\n"


def test_kept_files_stay_until_cleared(tmp_path: Path) -> None:
    wl = WireLog(name="beta", filed=True, samed=True, headDirPath=tmp_path, reopen=True)
    wl.writeTx(b"kept", who=BETA)
    first = wl.rxPath
    assert first is not None and first == wl.txPath and first.suffix == ".log"
    assert first.parent == tmp_path / "multicast" / "wirelogs"
    wl.reopen()  # a new file; the first one stays
    second = wl.rxPath
    assert second is not None and second != first
    assert first.read_bytes() == b"\nTx ('127.0.0.1', 6102):\nkept\n"
    wl.reopen(clear=True)  # clear: the log's current file goes
    third = wl.rxPath
    assert third is not None and not second.exists()
    wl.close(clear=True)
    assert not third.exists() and first.exists()


@given(
    records=st.lists(
        st.tuples(st.sampled_from([b"Rx", b"Tx"]), st.binary(max_size=64), st.text(max_size=8))
    )
)
def test_transcript_is_the_records_in_order(records: list[tuple[bytes, bytes, str]]) -> None:
    with openWL(samed=True) as wl:
        for dx, data, who in records:
            (wl.writeRx if dx == b"Rx" else wl.writeTx)(data, who=who)
        expected = b"".join(
            b"\n%b %b:\n%b\n" % (dx, who.encode(), data) for dx, data, who in records
        )
        assert wl.readRx() == expected
