"""The reliable transfer's pure pieces: parity code, packet codec, protection. No sockets."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multicast.exceptions import AuthKeyError
from multicast.reliable.blocks import MAX_BLOCKS, Catalogue, Layout
from multicast.reliable.fec import FecUnavailableError, ParityCode
from multicast.reliable.protection import Protection, Reason, make_protector
from multicast.reliable.sender_state import Burst
from multicast.reliable.transfer import _BlockSource
from multicast.reliable.wire import (
    DATA_OVERHEAD,
    Data,
    DataReader,
    FileInfo,
    Nack,
    Phase,
    ReceiverMark,
    Report,
    Session,
    Stamper,
    encode_file,
    encode_nack,
    encode_report,
    encode_session,
    parse,
)

KEY = b"a shared key of 32 bytes exactly"


# --- the parity code ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 64), st.randoms(use_true_random=False))
def test_any_k_symbols_rebuild_the_block(k: int, size: int, rng: random.Random) -> None:
    data = [rng.randbytes(size) for _ in range(k)]
    lost = rng.sample(range(k), rng.randint(0, k))
    parity_ids = rng.sample(range(k, 256), len(lost))
    for code in (ParityCode(), ParityCode(accelerated=False)):
        parity = code.parity(data, parity_ids)
        symbols = {i: data[i] for i in range(k) if i not in lost} | dict(
            zip(parity_ids, parity, strict=True)
        )
        assert code.recover(k, symbols) == data


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 128), st.randoms(use_true_random=False))
def test_the_c_helper_computes_zfecs_code(k: int, rng: random.Random) -> None:
    """Parity and rebuilt symbols are zfec's, byte for byte, in place (as the loops use them)."""
    fast, zfec = ParityCode(), ParityCode(accelerated=False)
    data = [rng.randbytes(100) for _ in range(k)]
    parity_ids = rng.sample(range(k, 256), min(256 - k, rng.randint(1, 40)))
    spaces = [memoryview(bytearray(100)) for _ in parity_ids]
    fast.parity_into(data, parity_ids, spaces)
    assert [bytes(space) for space in spaces] == zfec.parity(data, parity_ids)
    lost = rng.sample(range(k), min(k, len(parity_ids)))
    symbols = {i: data[i] for i in range(k) if i not in lost}
    symbols |= dict(zip(parity_ids, map(bytes, spaces), strict=True))
    rebuilt = {i: bytearray(100) for i in lost}
    fast.recover_into(k, symbols, rebuilt)
    assert {i: bytes(b) for i, b in rebuilt.items()} == {i: data[i] for i in lost}


def test_memoryviews_serve_as_symbols() -> None:
    data = [os.urandom(32) for _ in range(5)]
    for code in (ParityCode(), ParityCode(accelerated=False)):
        parity = code.parity([memoryview(d) for d in data], [7, 9])
        symbols = {0: memoryview(data[0]), 2: data[2], 4: data[4], 7: parity[0], 9: parity[1]}
        assert code.recover(5, symbols) == data


def test_without_zfec_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zfec", None)
    with pytest.raises(FecUnavailableError, match=r"pip install 'multicast\[files\]'"):
        ParityCode()


def test_too_few_symbols_or_a_data_id_as_parity_are_refused() -> None:
    code = ParityCode()
    with pytest.raises(ValueError, match="symbols of a 3-symbol block"):
        code.recover(3, {0: b"x", 1: b"y"})
    with pytest.raises(ValueError, match="parity id 2"):
        code.parity([b"a", b"b", b"c"], [2])


# --- the codec -----------------------------------------------------------------------------------


def _stamper(key: bytes | None = None, encrypt: bool = False) -> Stamper:
    return Stamper(0x1122334455667788, make_protector(key, encrypt=encrypt))


@pytest.mark.parametrize(("key", "encrypt"), [(None, False), (KEY, False), (KEY, True)])
def test_every_kind_round_trips(key: bytes | None, encrypt: bool) -> None:
    stamper = _stamper(key, encrypt)
    protector = stamper.protector
    session = parse(
        encode_session(
            stamper,
            symbol_size=1400,
            block_symbols=64,
            files=2,
            phase=Phase.SENDING,
            closed=True,
            pass_number=3,
            passes=5,
            blocks=9,
            rate=10**9,
            receivers=((7, ReceiverMark.JOINED), (8, ReceiverMark.DONE)),
        ),
        protector,
    )
    assert isinstance(session, Session)
    assert (session.origin, session.counter, session.blocks, session.phase) == (
        stamper.origin,
        0,
        9,
        Phase.SENDING,
    )
    assert session.receivers == ((7, ReceiverMark.JOINED), (8, ReceiverMark.DONE))
    info = parse(
        encode_file(stamper, index=1, first_block=4, size=5000, digest=b"d" * 32, name="é.bin"),
        protector,
    )
    assert isinstance(info, FileInfo)
    assert (info.index, info.first_block, info.size, info.name, info.counter) == (
        1,
        4,
        5000,
        "é.bin",
        1,
    )
    data = parse(stamper.data(3, 70, 2, 1, b"s" * 100, True), protector)
    assert isinstance(data, Data)
    assert (data.block, data.symbol, data.round, data.pass_number, data.repair) == (
        3,
        70,
        2,
        1,
        True,
    )
    assert bytes(data.payload) == b"s" * 100
    report = parse(
        encode_report(
            stamper,
            session=5,
            done=True,
            blocks_done=3,
            bytes_done=99,
            loss_ppm=12,
            packets=40,
            drops=2,
            name="r1",
        ),
        protector,
    )
    assert isinstance(report, Report)
    assert (report.session, report.done, report.bytes_done, report.packets, report.name) == (
        5,
        True,
        99,
        40,
        "r1",
    )
    nack = parse(encode_nack(stamper, session=5, entries=[(1, 2, 0), (4, 64, 3)]), protector)
    assert isinstance(nack, Nack)
    assert nack.entries == ((1, 2, 0), (4, 64, 3))


def _agree(reader: DataReader, datagram: bytes) -> None:
    """The data reader reads ``datagram`` as :func:`parse` does."""
    parsed = parse(datagram, reader.protector)
    data, others = reader.read_many([datagram])
    if isinstance(parsed, Data):
        assert others == []
        ((origin, counter, flags, block, symbol, round_, pass_number, payload),) = data
        assert (origin, counter, bool(flags), block, symbol, round_, pass_number) == (
            parsed.origin,
            parsed.counter,
            parsed.repair,
            parsed.block,
            parsed.symbol,
            parsed.round,
            parsed.pass_number,
        )
        assert bytes(payload) == bytes(parsed.payload)
    else:
        assert (data, others) == ([], [parsed])


def test_the_data_reader_agrees_with_parse() -> None:
    for key, encrypt in ((None, False), (KEY, False), (KEY, True)):
        stamper = _stamper(key, encrypt)
        reader = DataReader(stamper.protector)
        packets = [stamper.data(9, n, 4, 2, b"payload%d" % n, n == 2) for n in range(3)]
        nack = encode_nack(stamper, session=5, entries=[(1, 2, 0)])
        data, others = reader.read_many([packets[0], nack, packets[1], b"noise", packets[2]])
        assert [fields[:7] for fields in data] == [
            (stamper.origin, 0, 0, 9, 0, 4, 2),
            (stamper.origin, 1, 0, 9, 1, 4, 2),
            (stamper.origin, 2, 1, 9, 2, 4, 2),
        ]
        assert [bytes(fields[7]) for fields in data] == [b"payload0", b"payload1", b"payload2"]
        assert isinstance(others[0], Nack)
        assert others[1] is Reason.FOREIGN
        for packet in (*packets, nack):
            _agree(reader, packet)
            _agree(DataReader(make_protector(None)), packet)
            _agree(DataReader(make_protector(b"another key, also long enough")), packet)
            _agree(DataReader(make_protector(KEY)), packet)


def test_data_packets_are_built_in_place_and_sealed() -> None:
    for key, encrypt in ((None, False), (KEY, False), (KEY, True)):
        stamper = _stamper(key, encrypt)
        overhead = stamper.protector.overhead
        frame = bytearray(3 * (DATA_OVERHEAD + 8 + overhead))
        view = memoryview(frame)
        size = len(frame) // 3
        slots = [view[n * size : (n + 1) * size] for n in range(3)]
        for n, slot in enumerate(slots):
            slot[DATA_OVERHEAD : DATA_OVERHEAD + 8] = b"symbol-%d" % n
        sent = stamper.data_packets(slots, [5, 0, 70], 11, 1, 2, True)
        assert stamper.counter == 3
        for n, (datagram, symbol) in enumerate(zip(sent, [5, 0, 70], strict=True)):
            data = parse(bytes(datagram), make_protector(key))
            assert isinstance(data, Data)
            assert (data.counter, data.block, data.symbol, data.round, data.repair) == (
                n,
                11,
                symbol,
                1,
                True,
            )
            assert bytes(data.payload) == b"symbol-%d" % n
            # the slot keeps its plain symbol (repairs send it again), even when encrypted
            assert bytes(slots[n][DATA_OVERHEAD : DATA_OVERHEAD + 8]) == b"symbol-%d" % n
        assert stamper.data_packets([], [], 0, 0, 0, False) == []


def test_keys_decide_what_is_accepted() -> None:
    plain = _stamper().data(1, 0, 0, 0, b"x" * 20, False)
    tagged = _stamper(KEY).data(1, 0, 0, 0, b"x" * 20, False)
    sealed = _stamper(KEY, encrypt=True).data(1, 0, 0, 0, b"x" * 20, False)
    keyed, unkeyed = make_protector(KEY), make_protector(None)
    assert parse(plain, keyed) is Reason.UNAUTHENTICATED
    assert parse(tagged, unkeyed) is Reason.NEEDS_KEY
    assert parse(sealed, unkeyed) is Reason.NEEDS_KEY
    assert isinstance(parse(sealed, keyed), Data)
    other = make_protector(b"another key, also long enough")
    assert parse(tagged, other) is Reason.FORGED
    assert parse(sealed, other) is Reason.FORGED
    flipped = bytearray(tagged)
    flipped[30] ^= 1
    assert parse(bytes(flipped), keyed) is Reason.FORGED
    assert b"x" * 20 not in sealed  # encrypted, not only tagged


def test_hmac_tags_when_gcm_is_not_wanted() -> None:
    hmac_protector = make_protector(KEY)
    hmac_protector.mode = Protection.HMAC
    packet = Stamper(3, hmac_protector).data(1, 0, 0, 0, b"y" * 10, False)
    assert packet[6] == Protection.HMAC
    assert isinstance(parse(packet, make_protector(KEY)), Data)


def test_short_keys_and_encryption_without_a_key_are_refused() -> None:
    with pytest.raises(AuthKeyError, match="at least 16"):
        make_protector(b"short")
    with pytest.raises(AuthKeyError, match="needs a key"):
        make_protector(None, encrypt=True)


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"", Reason.FOREIGN),
        (b"hello world, not ours at all", Reason.FOREIGN),
        (b"MCRL\x02" + bytes(20), Reason.UNSUPPORTED),
        (b"MCRL\x01\x09\x00\x00" + bytes(12), Reason.UNSUPPORTED),
        (b"MCRL\x01\x03\x00\x00" + bytes(12) + bytes(5), Reason.MALFORMED),
        (b"MCRL\x01\x03\x00\x04" + bytes(12) + bytes(20), Reason.MALFORMED),
        (b"MCRL\x01\x11\x00\x00" + bytes(12) + bytes(8) + b"\x00\x05", Reason.MALFORMED),
    ],
)
def test_hostile_packets_are_named(packet: bytes, reason: Reason) -> None:
    assert parse(packet, make_protector(None)) is reason


def test_a_file_name_that_is_not_utf8_is_malformed() -> None:
    packet = bytearray(
        encode_file(_stamper(), index=0, first_block=0, size=1, digest=bytes(32), name="ab")
    )
    packet[-1] = 0xFF
    assert parse(bytes(packet), make_protector(None)) is Reason.MALFORMED


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_parse_never_raises(noise: bytes, keyed: bool) -> None:
    protector = make_protector(KEY if keyed else None)
    for candidate in (noise, b"MCRL\x01" + noise, b"MCRL\x01\x03" + noise):
        result = parse(candidate, protector)
        assert isinstance(result, Reason | Session | FileInfo | Data | Report | Nack)
        _agree(DataReader(protector), candidate)


@pytest.mark.parametrize(("symbols", "blocks"), [(129, 1), (64, MAX_BLOCKS + 1)])
def test_sessions_that_would_cost_unbounded_memory_are_malformed(symbols: int, blocks: int) -> None:
    packet = encode_session(
        _stamper(),
        symbol_size=1400,
        block_symbols=symbols,
        files=1,
        phase=Phase.SENDING,
        closed=False,
        pass_number=0,
        passes=1,
        blocks=blocks,
        rate=0,
    )
    assert parse(packet, make_protector(None)) is Reason.MALFORMED


@pytest.mark.parametrize(("key", "encrypt"), [(None, False), (KEY, False), (KEY, True)])
def test_a_block_sent_twice_in_one_poll_is_stamped_after_its_first_batch_went(
    tmp_path: Path, key: bytes | None, encrypt: bool
) -> None:
    """Bursts of one block share its slots: each batch is sent (here: copied) before the next
    burst of that block stamps them again, so every datagram keeps its own header."""
    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(5000))
    protector = make_protector(key, encrypt=encrypt)
    layout = Layout(1000, 8)
    stamper = Stamper(7, protector)
    source = _BlockSource([path], Catalogue.build(layout, [("file.bin", 5000, bytes(32))]), stamper)
    control = stamper.data(9, 0, 0, 0, b"x", False)
    items = [control, Burst(0, (0, 1, 2), 0, 0, False), Burst(0, (0, 1), 1, 0, True)]
    sent = [[bytes(datagram) for datagram in batch] for batch in source.batches(items)]
    source.close()
    assert [len(batch) for batch in sent] == [4, 2]
    packets = [parse(datagram, make_protector(key)) for batch in sent for datagram in batch]
    assert all(isinstance(packet, Data) for packet in packets)
    fields = [(p.counter, p.symbol, p.repair) for p in packets if isinstance(p, Data)]
    assert fields == [(0, 0, False), (1, 0, False), (2, 1, False), (3, 2, False),
                      (4, 0, True), (5, 1, True)]  # fmt: skip
    data = path.read_bytes()
    assert [bytes(p.payload) for p in packets[1:4] if isinstance(p, Data)] == [
        data[0:1000],
        data[1000:2000],
        data[2000:3000],
    ]
