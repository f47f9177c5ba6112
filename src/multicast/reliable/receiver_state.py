"""The receiver's protocol state: blocks, NACKs, reports, assembly. Pure: time is an argument.

Feed it the packets of the session (:meth:`ReceiverState.handle`) and call
:meth:`ReceiverState.poll` when :meth:`ReceiverState.deadline` comes; it returns the packets
to send (reports and NACKs, already sealed) and writes through a :class:`Store`.

NACKs, in the manner of NORM (RFC 5740): a block is asked for only once the sender has moved
past it (a later block of the pass began, or the sender is repairing only). Its NACK waits a
random back-off in ``[0, backoff]``; a NACK heard from another receiver for the same block,
asking for at least as many symbols at the same repair round, suppresses ours. A block asked
for (or suppressed) is asked again once a repair for it has come and gone without completing
it, or after ``retry`` seconds if none came.
"""

from __future__ import annotations

import array
import hashlib
import random
from collections import OrderedDict

from multicast.reliable.assembly import BlockAssembly
from multicast.reliable.blocks import FileEntry, Layout
from multicast.reliable.fec import ParityCode
from multicast.reliable.protection import Reason
from multicast.reliable.receiving import FileOutcome, ReceiverConfig, ReceiverStats, Store
from multicast.reliable.wire import (
    MAX_NACK_ENTRIES,
    Data,
    DataFields,
    FileInfo,
    Nack,
    Packet,
    Phase,
    ReceiverMark,
    Report,
    Session,
    Stamper,
    encode_nack,
    encode_report,
)

__all__ = ["ReceiverState"]


_EARLY_LIMIT = 8192  # symbols kept for files not yet described
_REPAIR_GAP = 0.005  # seconds without data after a repair: the sender is done with that block


class ReceiverState(BlockAssembly):
    """One receiver of one session (the first heard, or ``config.session``)."""

    def __init__(
        self,
        ident: int,
        stamper: Stamper,
        store: Store,
        code: ParityCode,
        config: ReceiverConfig,
        *,
        now: float,
        rng: random.Random | None = None,
    ) -> None:
        self.ident = ident
        self.stamper = stamper
        self.store = store
        self.code = code
        self.config = config
        self.rng = rng or random.Random()
        self.started = now
        self.stats = ReceiverStats()
        self.session: Session | None = None
        self.layout: Layout | None = None
        self.files: dict[int, FileEntry] = {}
        self.outcomes: dict[int, FileOutcome] = {}
        self.phase = Phase.WAITING
        self.mark: ReceiverMark | None = None  # how the sender lists us
        self.heard_at = now  # the sender last heard
        self.data_at = now  # the last data packet heard
        self.done_at: float | None = None
        self.finished = False
        self.ending = ""  # why the session ended for us: complete, ended, silent, no-session
        self.kernel_drops = 0
        self._next_report = now
        self._nack_due: float | None = None
        # Counter-based loss over the current report interval.
        self._interval_first: int | None = None
        self._interval_top = 0
        self._interval_seen = 0
        self.loss_ppm = 0
        self.expected_total = 0  # the sender's packets over all reported intervals
        self.seen_total = 0  # of which heard

    # --- set-up once the session is known ------------------------------------------------

    def _adopt(self, session: Session) -> None:
        self.session = session
        self.layout = Layout(session.symbol_size, session.block_symbols)
        count = session.blocks  # at most MAX_BLOCKS (the codec refuses more)
        self.k = bytearray(count)  # data symbols of each block (0: its file not described yet)
        self.owner = array.array("H", bytes(2 * count))  # file index of each block
        self.have = [0] * count  # bit i: symbol i received
        self.count = bytearray(count)
        self.round = array.array("H", bytes(2 * count))  # the latest repair round seen
        self.complete = bytearray(count)
        self.passed = bytearray(count)
        self.flushed = bytearray(count)  # its data symbols went to the store, not a buffer
        self.buffers: OrderedDict[int, bytearray] = OrderedDict()
        self.parity: dict[int, dict[int, bytes]] = {}
        self.parity_bytes = 0
        self.candidates: dict[int, None] = {}  # blocks to NACK, in order
        self.waiting: dict[int, tuple[float, int]] = {}  # NACKed: (ask again at, round)
        self.heard: dict[int, int] = {}  # other receivers' needs per block, at our round
        self.remaining: dict[int, int] = {}  # file -> blocks not complete
        # file -> SHA-256 of its first blocks, and how many: checked once it is complete
        self.digests: dict[int, tuple[hashlib._Hash, int]] = {}
        self.blocks_done = 0
        self.bytes_done = 0
        self.pass_number, self.pass_block = 0, -1  # of the latest pass data (-1: none yet)
        self.early: list[DataFields] = []  # symbols of blocks of files not described
        self.last_block = -1

    # --- input ------------------------------------------------------------------------------

    def reject(self, reason: Reason, times: int = 1) -> None:
        """Count datagrams refused (by the codec, or by the state)."""
        self.stats.rejected[reason.value] = self.stats.rejected.get(reason.value, 0) + times

    def handle(self, packet: Packet, now: float) -> None:
        """Take one parsed packet heard on the session's group."""
        if isinstance(packet, Data):
            fields = (packet.origin, packet.counter, int(packet.repair), packet.block)
            self.take_data(
                [(*fields, packet.symbol, packet.round, packet.pass_number, packet.payload)], now
            )
        elif isinstance(packet, Session):
            self._session(packet, now)
        elif isinstance(packet, FileInfo):
            if self.session is not None and packet.origin == self.session.origin:
                self.heard_at = now
                self._file(packet)
            else:
                self.reject(Reason.OTHER_SESSION)
        elif isinstance(packet, Nack):
            if self.session is not None and packet.session == self.session.origin:
                if packet.origin != self.ident:
                    self._peer_nack(packet)
            else:
                self.reject(Reason.OTHER_SESSION)
        elif not isinstance(packet, Report):  # other receivers' reports: nothing to do
            self.reject(Reason.UNSUPPORTED)

    def _session(self, session: Session, now: float) -> None:
        if self.session is None:
            if self.config.session not in (None, session.origin) or session.phase is Phase.ENDED:
                self.reject(Reason.OTHER_SESSION)
                return
            self._adopt(session)
            self._next_report = now  # join at once
        elif session.origin != self.session.origin:
            self.reject(Reason.OTHER_SESSION)
            return
        elif (session.symbol_size, session.block_symbols, session.blocks) != (
            self.session.symbol_size,
            self.session.block_symbols,
            self.session.blocks,
        ):
            self.reject(Reason.MALFORMED)
            return
        self._count(session.counter)
        self.session = session
        self.heard_at = now
        self.phase = session.phase
        self.mark = next((mark for ident, mark in session.receivers if ident == self.ident), None)
        if session.phase >= Phase.FLUSHING:
            self._pass_blocks(0, len(self.k))

    def _file(self, info: FileInfo) -> None:
        assert self.session is not None and self.layout is not None
        self._count(info.counter)
        if info.index in self.files:
            return
        blocks = self.layout.blocks_of(info.size)
        if info.index >= self.session.files or info.first_block + blocks > self.session.blocks:
            self.reject(Reason.OUT_OF_RANGE)
            return
        entry = FileEntry(info.index, info.name, info.size, info.digest, info.first_block, blocks)
        if any(
            entry.first_block < other.first_block + other.blocks
            and other.first_block < entry.first_block + blocks
            for other in self.files.values()
        ):
            self.reject(Reason.OUT_OF_RANGE)  # overlaps a file already described
            return
        prepared = self.store.prepare(entry, self.layout)
        self.files[info.index] = entry
        outcome = self.outcomes[info.index] = FileOutcome(entry.name, entry.size)
        outcome.refused, outcome.already = prepared.refused, prepared.complete
        outcome.received = prepared.complete
        block_size = self.layout.block_size
        for local in range(blocks):
            block = entry.first_block + local
            length = min(block_size, entry.size - local * block_size)
            self.owner[block] = info.index
            self.k[block] = self.layout.data_symbols(length)
            if prepared.done[local] or prepared.refused is not None:
                self.complete[block] = 1
                self.blocks_done += 1
                self.bytes_done += length
                outcome.resumed_blocks += prepared.done[local]
            elif self.passed[block]:
                self.candidates[block] = None
        if outcome.received or outcome.refused:
            outcome.resumed_blocks = 0
            self.remaining[info.index] = 0
        else:
            self.digests[info.index] = (hashlib.sha256(), 0)
            self._digest_forward(info.index)
            self.remaining[info.index] = blocks - outcome.resumed_blocks
            if not self.remaining[info.index]:
                self._finish_file(info.index)
        last = entry.first_block + blocks
        ready = [fields for fields in self.early if entry.first_block <= fields[3] < last]
        if ready:
            self.early = [
                fields for fields in self.early if not entry.first_block <= fields[3] < last
            ]
            self.take_data(ready, self.heard_at, replay=True)

    def _count(self, counter: int) -> None:
        if self._interval_first is None:
            self._interval_first = self._interval_top = counter
        elif counter > self._interval_top:
            self._interval_top = counter
        self._interval_seen += 1

    def take_data(  # noqa: PLR0915 (one pass over a batch: the hot path, inline)
        self, packets: list[DataFields], now: float, *, replay: bool = False
    ) -> None:
        """Data packets' fields, in arrival order (see :class:`multicast.reliable.wire.DataReader`):
        the receiver's hot path, one pass over a batch with the state in local variables.
        ``replay``: symbols kept while their file was not described, already counted."""
        session = self.session
        if session is None:
            self.reject(Reason.OTHER_SESSION, len(packets))
            return
        assert self.layout is not None
        origin, size, blocks = session.origin, self.layout.symbol_size, len(self.k)
        k, have, count, complete, buffers = (
            self.k,
            self.have,
            self.count,
            self.complete,
            self.buffers,
        )
        first, top, seen = self._interval_first, self._interval_top, 0
        duplicates = foreign = beyond = malformed = 0
        filling, buffer = -1, None  # the block whose buffer was used last, and that buffer
        for fields in packets:
            sender, counter, repair, block, symbol, round_, pass_number, payload = fields
            if sender != origin or block >= blocks:
                foreign += sender != origin
                beyond += sender == origin
                continue
            if not replay:
                if first is None:
                    first = top = counter
                elif counter > top:
                    top = counter
                seen += 1
                if (
                    repair
                    or block != self.last_block
                    or block != self.pass_block
                    or pass_number != self.pass_number
                ):
                    self._position(block, repair, round_, pass_number)
            symbols = k[block]
            bit = 1 << symbol
            held = have[block]
            if complete[block] or held & bit or not symbols:
                if symbols:
                    duplicates += 1
                else:
                    self._keep_early(fields)
                continue
            if len(payload) != size:
                malformed += 1
                continue
            if symbol >= symbols:
                if not self._keep_parity(block, symbol, payload):
                    continue
            elif block == filling and buffer is not None:
                buffer[symbol * size : (symbol + 1) * size] = payload
            else:
                buffer = buffers.get(block)
                filling = block
                if buffer is not None:
                    buffer[symbol * size : (symbol + 1) * size] = payload
                else:
                    buffer = self._store_data(block, symbol, payload)
            have[block] = held | bit
            got = count[block] + 1
            count[block] = got
            if got >= symbols:
                self._assemble(block)
                filling = -1
        self._interval_first, self._interval_top = first, top
        self._interval_seen += seen
        self.stats.data += seen
        self.stats.duplicates += duplicates
        if seen:
            self.heard_at = self.data_at = now
        for reason, times in (
            (Reason.OTHER_SESSION, foreign),
            (Reason.OUT_OF_RANGE, beyond),
            (Reason.MALFORMED, malformed),
        ):
            if times:
                self.reject(reason, times)

    def _position(self, block: int, repair: int, round_: int, pass_number: int) -> None:
        """Data of another block, a repair, or a new pass: where the sender is."""
        if block != self.last_block:
            self._moved_on(self.last_block)
            self.last_block = block
        if repair:
            self.round[block] = max(self.round[block], round_)
        elif block != self.pass_block or pass_number != self.pass_number:
            self._advance(pass_number, block)

    def _keep_early(self, fields: DataFields) -> None:
        """A symbol of a block whose file is not described yet: kept (a few) until it is."""
        self.stats.early += 1
        if len(self.early) < _EARLY_LIMIT:
            self.early.append((*fields[:7], bytes(fields[7])))

    # --- where the sender is -------------------------------------------------------------------

    def _advance(self, pass_number: int, block: int) -> None:
        """Pass data of ``block`` arrived: every block the sender went past since is passed."""
        last_pass, last_block = self.pass_number, self.pass_block
        self.pass_number, self.pass_block = pass_number, block
        if last_block < 0:
            return
        if pass_number == last_pass:
            if block > last_block:
                self._pass_blocks(last_block, block)
        else:
            self._pass_blocks(last_block, len(self.k))
            self._pass_blocks(0, block)

    def _pass_blocks(self, start: int, stop: int) -> None:
        passed, complete, k, candidates = self.passed, self.complete, self.k, self.candidates
        for block in range(start, stop):
            if not passed[block]:
                passed[block] = 1
                if not complete[block] and k[block] and block not in self.waiting:
                    candidates[block] = None

    def _moved_on(self, block: int) -> None:
        """The sender left ``block``: if a repair for it came and it is still incomplete, it
        may be asked for again."""
        wait = self.waiting.get(block)
        if wait is not None and self.round[block] > wait[1] and not self.complete[block]:
            del self.waiting[block]
            self.candidates[block] = None

    def _peer_nack(self, nack: Nack) -> None:
        heard, rounds, complete, k = self.heard, self.round, self.complete, self.k
        for block, need, round_ in nack.entries:
            if (
                block < len(k)
                and not complete[block]
                and round_ >= rounds[block]
                and need > heard.get(block, 0)
            ):
                heard[block] = need

    # --- output ----------------------------------------------------------------------------------

    @property
    def complete_session(self) -> bool:
        """Every file of the session described, and each received (or refused)."""
        return (
            self.session is not None
            and len(self.files) == self.session.files
            and all(o.received or o.refused for o in self.outcomes.values())
        )

    def deadline(self, now: float) -> float:
        """When :meth:`poll` has work next (a report, a NACK, a timer)."""
        if self.session is None:  # nothing to do but wait (the caller wakes on packets)
            return now + 0.1
        times = [self._next_report]
        if self._nack_due is not None:
            times.append(self._nack_due)
        elif self.session is not None and (self.candidates or self.waiting):
            times.append(now + 0.01)
        return min(times)

    def poll(self, now: float) -> list[bytes]:
        """Packets to send now; also decides whether the session is over for us."""
        out: list[bytes] = []
        if self.finished:
            return out
        self._check_end(now)
        session = self.session
        if session is None or self.finished:
            return out
        if self.done_at is None and self.complete_session:
            self.done_at = now
            self._next_report = now
        if now - self.data_at >= _REPAIR_GAP:
            self._moved_on(self.last_block)  # a repair burst ended with nothing after it
        self._nack(now, out)
        if now >= self._next_report:
            self._next_report = now + self.config.report_interval
            out.append(self._report())
        return out

    def _check_end(self, now: float) -> None:
        config = self.config
        if self.session is None:
            if config.wait is not None and now - self.started >= config.wait:
                self.finished, self.ending = True, "no-session"
            return
        if self.done_at is not None and (
            self.mark is ReceiverMark.DONE
            or self.phase is Phase.ENDED
            or now - self.done_at >= config.linger
        ):
            self.finished, self.ending = True, "complete"
        elif self.phase is Phase.ENDED and self.done_at is None:
            self.finished, self.ending = True, "ended"
        elif now - self.heard_at >= config.idle:
            self.finished, self.ending = True, "silent"

    def _nack(self, now: float, out: list[bytes]) -> None:
        assert self.session is not None
        for block, (again, _) in list(self.waiting.items()):
            if now >= again:
                del self.waiting[block]
                if not self.complete[block]:
                    self.candidates[block] = None
        if not self.candidates:
            self._nack_due = None
            return
        if self._nack_due is None:
            self._nack_due = now + self.rng.uniform(0.0, self.config.backoff)
        if now < self._nack_due:
            return
        self._nack_due = None
        entries: list[tuple[int, int, int]] = []
        again = now + self.config.retry
        for block in list(self.candidates)[: MAX_NACK_ENTRIES * 4]:
            need = self.k[block] - self.count[block]
            del self.candidates[block]
            self.waiting[block] = (again, self.round[block])
            if self.heard.pop(block, 0) >= need:
                self.stats.suppressed += 1
                continue
            entries.append((block, need, self.round[block]))
            if len(entries) == MAX_NACK_ENTRIES:
                break
        if entries:
            self.stats.nacks_sent += 1
            self.stats.nack_entries += len(entries)
            out.append(encode_nack(self.stamper, session=self.session.origin, entries=entries))

    def _report(self) -> bytes:
        assert self.session is not None
        first, top = self._interval_first, self._interval_top
        expected = 0
        if first is not None and top >= first:
            expected = top - first + 1
            self.loss_ppm = max(0, round(1e6 * (1 - self._interval_seen / expected)))
            self._interval_first = top + 1  # the next interval starts after the last heard
            self.expected_total += expected
            self.seen_total += self._interval_seen
        self._interval_seen = 0
        return encode_report(
            self.stamper,
            session=self.session.origin,
            done=self.done_at is not None,
            blocks_done=self.blocks_done,
            bytes_done=self.bytes_done,
            loss_ppm=self.loss_ppm,
            packets=expected,
            drops=self.kernel_drops,
            name=self.config.name,
        )
