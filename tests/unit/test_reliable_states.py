"""The sender and receiver states driven by synthetic packets and a synthetic clock: no sockets.

A small simulated network carries every packet of a sender state to receiver states (each
dropping a share at random) and their reports and NACKs to the sender and to each other.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass, field

import pytest

from multicast.core import IO_BACKEND
from multicast.exceptions import OptionError
from multicast.reliable.blocks import Catalogue, FileEntry, Layout
from multicast.reliable.fec import KERNEL, ParityCode
from multicast.reliable.protection import Reason, make_protector
from multicast.reliable.rate import AdaptiveRate, FixedRate
from multicast.reliable.receiver_state import ReceiverState
from multicast.reliable.receiving import ReceiverConfig
from multicast.reliable.report import Progress, send_report
from multicast.reliable.sender_state import Burst, SenderConfig, SenderState
from multicast.reliable.storage import Prepared, unsafe_name
from multicast.reliable.wire import (
    Nack,
    Phase,
    ReceiverMark,
    Report,
    Session,
    Stamper,
    encode_nack,
    encode_report,
    encode_session,
    parse,
)

LAYOUT = Layout(symbol_size=32, block_symbols=8)
PROTECTOR = make_protector(None)


class MemoryStore:
    """The receiver's storage, in memory."""

    def __init__(self) -> None:
        self.entries: dict[int, FileEntry] = {}
        self.data: dict[int, bytearray] = {}
        self.finished: dict[int, bytes] = {}

    def prepare(self, entry: FileEntry, layout: Layout) -> Prepared:
        reason = unsafe_name(entry.name)
        if reason is not None:
            return Prepared(bytearray(entry.blocks), refused=reason)
        self.entries[entry.index] = entry
        self.data[entry.index] = bytearray(entry.size)
        return Prepared(bytearray(entry.blocks))

    def write(self, file: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.data[file][offset : offset + len(data)] = data

    def read(self, file: int, offset: int, size: int) -> bytes:
        return bytes(self.data[file][offset : offset + size])

    def block_done(self, file: int, local: int) -> None:
        assert local < self.entries[file].blocks

    def finish(self, file: int, digest: bytes) -> bool:
        content = bytes(self.data[file])
        assert digest == hashlib.sha256(content).digest()  # hashed as written, in order
        if digest != self.entries[file].digest:
            return False
        self.finished[file] = content
        return True


@dataclass
class Peer:
    state: ReceiverState
    store: MemoryStore
    loss: float
    start: float = 0.0
    dies: float = float("inf")
    deaf_to_sessions_until: float = 0.0
    heard: list[bytes] = field(default_factory=list)


class Network:
    """One sender state, receiver states, a clock in 1 ms steps, random loss per receiver."""

    def __init__(self, files: dict[str, bytes], config: SenderConfig, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.files = files
        self.catalogue = Catalogue.build(
            LAYOUT, [(n, len(c), hashlib.sha256(c).digest()) for n, c in files.items()]
        )
        self.contents = list(files.values())
        self.code = ParityCode()
        self.stamper = Stamper(0xABC, PROTECTOR)
        rate = FixedRate(None)
        self.sender = SenderState(self.catalogue, self.stamper, config, rate, now=0.0)
        self.peers: list[Peer] = []
        self.now = 0.0
        self.sent = 0

    def add(self, loss: float, *, start: float = 0.0, dies: float = float("inf")) -> Peer:
        ident = len(self.peers) + 1
        store = MemoryStore()
        config = ReceiverConfig(name=f"r{ident}", idle=2.0)
        state = ReceiverState(
            ident,
            Stamper(ident, PROTECTOR),
            store,
            self.code,
            config,
            now=start,
            rng=random.Random(ident),
        )
        peer = Peer(state, store, loss, start, dies)
        self.peers.append(peer)
        return peer

    def _datagrams(self, burst: Burst) -> list[bytes]:
        entry, offset, length = self.catalogue.extent(burst.block)
        raw = self.contents[entry.index][offset : offset + length]
        size = LAYOUT.symbol_size
        k = LAYOUT.data_symbols(length)
        symbols = [raw[i * size : (i + 1) * size].ljust(size, b"\0") for i in range(k)]
        parity_ids = [i for i in burst.ids if i >= k]
        parity = dict(zip(parity_ids, self.code.parity(symbols, parity_ids), strict=True))
        return [
            self.stamper.data(
                burst.block,
                i,
                burst.round,
                burst.pass_number,
                symbols[i] if i < k else parity[i],
                burst.repair,
            )
            for i in burst.ids
        ]

    def _live(self, peer: Peer) -> bool:
        return peer.start <= self.now < peer.dies and not peer.state.finished

    def step(self) -> None:
        self.now = round(self.now + 0.001, 6)
        for item in self.sender.poll(self.now, 32):
            for datagram in self._datagrams(item) if isinstance(item, Burst) else [item]:
                self.sent += 1
                for peer in self.peers:
                    if self._live(peer) and self.rng.random() >= peer.loss:
                        packet = parse(datagram, PROTECTOR)
                        assert not isinstance(packet, Reason)
                        if self.now < peer.deaf_to_sessions_until and datagram[5] == 1:
                            continue  # its session packets (the join reply) are lost
                        peer.state.handle(packet, self.now)
        for peer in self.peers:
            if not self._live(peer):
                continue
            for datagram in peer.state.poll(self.now):
                packet = parse(datagram, PROTECTOR)
                assert not isinstance(packet, Reason)
                self.sender.handle(packet, f"peer{peer.state.ident}", self.now)
                for other in self.peers:
                    if other is not peer and self._live(other):
                        other.heard.append(datagram)
                        other.state.handle(packet, self.now)

    def run(self, limit: float = 30.0) -> None:
        while not self.sender.finished and self.now < limit:
            self.step()
        for _ in range(100):  # let receivers hear the end
            self.step()


FILES = {
    "a.bin": random.Random(7).randbytes(5000),
    "empty": b"",
    "b.bin": random.Random(8).randbytes(777),
}


def _received(peer: Peer) -> dict[str, bytes]:
    return {peer.store.entries[i].name: c for i, c in peer.store.finished.items()}


def test_lossy_receivers_get_every_file_whole_repaired_once_per_round() -> None:
    net = Network(FILES, SenderConfig(receivers=3))
    peers = [net.add(0.1) for _ in range(3)]
    net.run()
    assert net.sender.outcome == "complete"
    for peer in peers:
        assert peer.state.ending == "complete"
        assert _received(peer) == FILES
    stats = net.sender.stats
    assert stats.repair_rounds > 0
    # Receivers missed symbols of the same blocks; mostly one NACK per round was enough (the
    # others kept quiet) and each round served them all.
    assert stats.repair_rounds <= stats.nack_entries < 1.5 * stats.repair_rounds
    assert sum(p.state.stats.suppressed for p in peers) > 0
    # Parity repairs each receiver's own losses at once: far below a resend per loss.
    assert stats.repair_datagrams < 0.45 * stats.pass_datagrams
    report = send_report(
        net.sender, group="239.1.2.3", port=5000, protection="none", seconds=1.0, interrupted=False
    ).data
    repair = report["repair"]
    assert isinstance(repair, dict)
    assert repair["nacks_per_repaired_block"] == round(
        stats.nack_entries / stats.repair_rounds, 3
    )  # entries, as docs/cli.md says: what suppression keeps low
    assert (report["io_backend"], report["parity_kernel"]) == (IO_BACKEND, KERNEL)


def test_a_silent_receiver_is_dropped_and_the_others_finish() -> None:
    config = SenderConfig(receivers=2, drop_after=0.5)
    net = Network({"big": random.Random(3).randbytes(40_000)}, config)
    survivor = net.add(0.05)
    net.add(0.05, dies=0.05)
    net.run()
    assert net.sender.outcome == "incomplete"
    assert survivor.state.ending == "complete"
    entries = list(net.sender.receivers.values())
    assert [e.dropped for e in entries] == [False, True]
    assert entries[1].times_dropped == 1


def test_a_late_joiner_catches_up_on_the_carousel() -> None:
    files = {"big": random.Random(4).randbytes(30_000)}
    net = Network(files, SenderConfig(repeat=3))
    early = net.add(0.0)
    late = net.add(0.0, start=0.02)
    net.run()
    assert _received(early) == files and _received(late) == files
    assert net.sender.passes_done >= 2


def test_a_lost_join_reply_does_not_stall_anyone() -> None:
    net = Network(FILES, SenderConfig(receivers=2))
    first = net.add(0.0)
    second = net.add(0.0)
    second.deaf_to_sessions_until = 0.5  # it never hears the sender list it for 0.5 s
    net.run()
    assert net.sender.outcome == "complete"
    assert first.state.ending == second.state.ending == "complete"
    assert net.now < 1.5


def test_a_closed_session_gives_up_when_its_receivers_do_not_come() -> None:
    net = Network(FILES, SenderConfig(receivers=2, wait=0.3))
    net.add(0.0)
    net.run()
    assert net.sender.outcome == "no-receivers"
    assert net.sender.stats.pass_datagrams == 0


def test_nacks_sent_before_a_repair_arrived_do_not_repeat_it() -> None:
    net = Network(FILES, SenderConfig())
    sender = net.sender
    sender.poll(0.0, 1000)  # the whole pass
    origin = net.stamper.origin

    def nack(entries: list[tuple[int, int, int]], now: float) -> None:
        packet = parse(
            encode_nack(Stamper(9, PROTECTOR), session=origin, entries=entries), PROTECTOR
        )
        assert isinstance(packet, Nack)
        sender.handle(packet, "peer", now)

    nack([(0, 2, 0)], 0.01)
    nack([(0, 1, 0)], 0.011)  # same round, less: merged
    (repair,) = [item for item in sender.poll(0.012, 64) if isinstance(item, Burst)]
    assert (repair.block, repair.ids, repair.round, repair.repair) == (0, (8, 9), 1, True)
    nack([(0, 2, 0)], 0.02)  # sent before the repair could be seen: ignored
    assert not [i for i in sender.poll(0.021, 64) if isinstance(i, Burst)]
    nack([(0, 3, 0)], 0.03)  # needs more than was sent: the round is topped up
    (topup,) = [item for item in sender.poll(0.031, 64) if isinstance(item, Burst)]
    assert (topup.ids, topup.round) == ((10,), 1)
    nack([(0, 1, 1)], 0.04)  # saw round 1 and still misses one: a new round
    (again,) = [item for item in sender.poll(0.041, 64) if isinstance(item, Burst)]
    assert (again.ids, again.round) == ((11,), 2)
    assert sender.stats.repair_rounds == 2 and sender.stats.stale_entries == 1


def test_a_nack_heard_from_another_receiver_suppresses_ours() -> None:
    net = Network({"f": bytes(range(256)) * 2}, SenderConfig())
    quiet = net.add(0.0)
    items = net.sender.poll(0.0, 1000)
    for item in items:
        for datagram in net._datagrams(item) if isinstance(item, Burst) else [item]:
            packet = parse(datagram, PROTECTOR)
            assert not isinstance(packet, Reason)
            if datagram[5] == 3 and datagram[20:24] == bytes(4) and datagram[24] < 3:
                continue  # block 0 loses its first three symbols
            quiet.state.handle(packet, 0.001)
    state = quiet.state
    assert list(state.candidates) == [0]  # block 1 began: block 0 is passed and incomplete
    peer = parse(
        encode_nack(Stamper(77, PROTECTOR), session=net.stamper.origin, entries=[(0, 4, 0)]),
        PROTECTOR,
    )
    assert isinstance(peer, Nack)
    state.handle(peer, 0.002)
    state.poll(0.003)  # the back-off starts
    sent = [parse(p, PROTECTOR) for p in state.poll(0.5)]
    assert not [p for p in sent if isinstance(p, Nack)]
    assert state.stats.suppressed == 1


def test_pass_data_after_a_repair_of_its_block_still_passes_the_blocks_before() -> None:
    """A carousel: a repair of block 3 (asked in the last pass) comes just before this pass
    reaches block 3; the blocks the pass went past meanwhile are passed all the same."""
    net = Network({"f": bytes(4 * 256)}, SenderConfig())
    state = net.add(0.0).state
    for item in net.sender.poll(0.0, 0):  # the session and file descriptions only
        assert isinstance(item, bytes)
        packet = parse(item, PROTECTOR)
        assert not isinstance(packet, Reason)
        state.handle(packet, 0.001)
    symbol = bytes(32)
    for block, round_, repair in ((0, 0, False), (3, 1, True), (3, 0, False)):
        packet = parse(net.stamper.data(block, 0, round_, 0, symbol, repair), PROTECTOR)
        assert not isinstance(packet, Reason)
        state.handle(packet, 0.002)
    assert list(state.candidates) == [0, 1, 2]


def test_a_receiver_that_is_done_is_told_so_at_once() -> None:
    """Its report of being done is answered by the very next poll: the receiver's run ends on
    that answer, so every millisecond of delay is a millisecond of the transfer."""
    net = Network({"f": bytes(8 * 256)}, SenderConfig(receivers=2))

    def report(ident: int, done: bool) -> Report:
        packet = parse(
            encode_report(Stamper(ident, PROTECTOR), session=net.stamper.origin, done=done,
                          blocks_done=int(done), bytes_done=256 * done, loss_ppm=0, packets=0,
                          drops=0, name=f"r{ident}"),
            PROTECTOR,
        )  # fmt: skip
        assert isinstance(packet, Report)
        return packet

    for ident in (5, 6):
        net.sender.handle(report(ident, False), f"peer{ident}", 0.0)
    net.sender.poll(0.05, 10)  # both joined: the pass begins, the next announcement at 0.15
    net.sender.handle(report(5, True), "peer5", 0.06)
    sessions = [
        packet
        for item in net.sender.poll(0.06, 10)
        if isinstance(item, bytes) and isinstance(packet := parse(item, PROTECTOR), Session)
    ]
    assert sessions and sessions[0].receivers == ((5, ReceiverMark.DONE), (6, ReceiverMark.JOINED))


def _session_packet(phase: Phase) -> Session:
    packet = parse(
        encode_session(
            Stamper(0xABC, PROTECTOR),
            symbol_size=32,
            block_symbols=8,
            files=1,
            phase=phase,
            closed=False,
            pass_number=0,
            passes=1,
            blocks=1,
            rate=0,
        ),
        PROTECTOR,
    )
    assert isinstance(packet, Session)
    return packet


def test_a_receiver_ends_incomplete_when_the_sender_ends_or_falls_silent() -> None:
    net = Network(FILES, SenderConfig())
    ended = net.add(0.0).state
    ended.handle(_session_packet(Phase.SENDING), 0.1)
    ended.handle(_session_packet(Phase.ENDED), 0.2)
    ended.poll(0.2)
    assert (ended.finished, ended.ending) == (True, "ended")
    silent = net.add(0.0).state
    silent.handle(_session_packet(Phase.SENDING), 0.1)
    silent.poll(2.0)
    assert not silent.finished
    silent.poll(2.2)  # idle after 2 s without the sender
    assert (silent.finished, silent.ending) == (True, "silent")


def test_a_receiver_gives_up_when_no_session_comes() -> None:
    store = MemoryStore()
    state = ReceiverState(
        5, Stamper(5, PROTECTOR), store, ParityCode(), ReceiverConfig(wait=1.0), now=0.0
    )
    assert state.poll(0.5) == [] and not state.finished
    state.poll(1.0)
    assert (state.finished, state.ending) == (True, "no-session")


def test_adaptive_rate_cuts_on_kernel_drops_and_ignores_steady_path_loss() -> None:
    rate = AdaptiveRate(ceiling=1e9, bits_per_second=1e8)
    now, sent = 0.0, 0

    def interval(loss_ppm: int, packets: int, drops: int, *, step: float = 0.1) -> None:
        nonlocal now, sent
        now += step
        sent += int(rate.bits_per_second * step)  # the host keeps up with the rate
        rate.report(1, loss_ppm, packets, drops, now)
        rate.update(now, sent)

    interval(50_000, 10_000, 0)
    interval(50_000, 10_000, 0)
    assert rate.bits_per_second == 4e8  # a slow start: doubled each interval
    for _ in range(30):  # a steady 5 % loss over 10,000 packets an interval: the path's
        interval(50_000, 10_000, 0)
    assert rate.decreases == 0 and rate.bits_per_second == 1e9
    interval(50_000, 10_000, 5)  # its receive buffer overflowed
    assert rate.bits_per_second == pytest.approx(0.75e9) and rate.decreases == 1
    interval(200_000, 10_000, 5)  # 20 % now: 15 points over the floor
    assert rate.decreases == 1  # at most one cut per hold time
    interval(200_000, 10_000, 5, step=0.15)
    assert rate.decreases == 2
    interval(120_000, 50, 5, step=0.3)  # few packets: within the noise, no cut
    assert rate.decreases == 2
    before = rate.bits_per_second
    interval(50_000, 10_000, 5)
    assert rate.bits_per_second == pytest.approx(1.1 * before)  # after congestion: +10 %


def test_adaptive_rate_cuts_from_what_the_host_actually_sent() -> None:
    rate = AdaptiveRate(ceiling=10e9, bits_per_second=10e9)
    rate.update(0.1, 50_000_000)  # 500 Mbit/s sent: the host, not the rate, is the limit
    assert rate.bits_per_second == 10e9  # not raised: no use
    rate.report(1, 0, 1000, 0, 0.15)
    rate.report(1, 0, 1000, 7, 0.2)
    rate.update(0.2, 100_000_000)
    assert rate.bits_per_second == pytest.approx(0.75 * 500e6)


def test_a_receiver_waiting_for_a_session_does_not_spin() -> None:
    state = ReceiverState(
        5, Stamper(5, PROTECTOR), MemoryStore(), ParityCode(), ReceiverConfig(), now=0.0
    )
    state.poll(1.0)
    assert state.deadline(1.0) >= 1.05  # a later time, not the past: the loop may sleep


def test_progress_shows_who_has_what() -> None:
    net = Network(FILES, SenderConfig(receivers=2))
    net.add(0.0)
    net.add(0.0, dies=0.002)  # joins, then is never heard again
    net.run()
    screen = io.StringIO()
    progress = Progress(screen, interval=0.5)
    assert progress.due(1.0) and not progress.due(1.2)
    progress.sender(net.sender, 123_000, 1.0)
    progress.sender(net.sender, 246_000, 2.0)  # drawn again in place
    lines = screen.getvalue().split("\x1b[3F\x1b[J")[-1].splitlines()
    assert lines[0].startswith("send-file: ended pass 1")
    assert "r1 (peer1)" in lines[1] and "100.0%" in lines[1] and lines[1].endswith("done")
    assert "r2 (peer2)" in lines[2] and lines[2].endswith("dropped")


@pytest.mark.parametrize("open_blocks", [0, -1, 1.5, True])
def test_a_receiver_keeps_at_least_one_block_open(open_blocks: object) -> None:
    # With none, a block left memory before its first symbol was kept: a corrupt file.
    with pytest.raises(OptionError, match="open_blocks"):
        ReceiverConfig(open_blocks=open_blocks)  # type: ignore[arg-type]
