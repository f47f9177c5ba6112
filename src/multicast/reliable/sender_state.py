"""The sender's protocol state: passes, repair rounds, the receiver table. Pure: time is an argument.

Feed it receivers' packets (:meth:`SenderState.handle`); ask it what to send
(:meth:`SenderState.poll`), which returns sealed control packets and :class:`Burst`
instructions (symbols of one block) that the I/O layer turns into data packets.

A session is *closed* (``receivers=N``: it waits for N receivers, sends one pass, then
repairs until every receiver that joined is done or dropped) or *open* (a carousel: it
sends ``repeat`` passes, or passes for ``duration`` seconds, so that late joiners catch up,
then repairs until every known receiver is done or no NACK came for ``linger`` seconds).

Repairs: a NACK names a block, how many symbols the receiver needs, and the block's latest
repair round it saw. A NACK at the block's current round opens a new round: the sender
sends that many *new* parity symbols once, whoever asked (several NACKs of one round are
merged, the largest need wins). A NACK at an older round that arrives within ``repair_hold``
of the repair was sent before that repair could arrive: it only tops the round up if it
needs more than was sent. A receiver silent for ``drop_after`` seconds is dropped: the
session no longer waits for it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

from multicast.reliable.blocks import Catalogue
from multicast.reliable.fec import MAX_SYMBOLS
from multicast.reliable.protection import Reason
from multicast.reliable.rate import RateControl
from multicast.reliable.wire import (
    DATA_OVERHEAD,
    MAX_RECEIVERS_LISTED,
    Nack,
    Packet,
    Phase,
    ReceiverMark,
    Report,
    Stamper,
    encode_file,
    encode_session,
)

__all__ = ["Burst", "ReceiverEntry", "SenderConfig", "SenderState"]

_ENDING_ANNOUNCEMENTS = 3  # ENDED is said this many times, a little apart
_FILES_PER_DESCRIPTION = 8  # file descriptions sent per describe interval


@dataclass(frozen=True, slots=True)
class SenderConfig:
    """How a session runs (seconds where a time)."""

    receivers: int | None = None  # closed session of this many; None: open
    repeat: int = 1  # passes of an open session (with duration: at most)
    duration: float | None = None  # open session: passes for this long
    parity: int = 0  # parity symbols sent with every block, before anyone asks
    wait: float = 30.0  # closed: how long to wait for the receivers
    drop_after: float = 1.5  # a receiver silent this long is dropped
    announce_interval: float = 0.1
    describe_interval: float = 0.05
    repair_hold: float = 0.04
    linger: float = 1.0  # open: the end, once no NACK came for this long


@dataclass(frozen=True, slots=True)
class Burst:
    """Send symbols ``ids`` of ``block`` (data below its data-symbol count, else parity)."""

    block: int
    ids: tuple[int, ...]
    round: int
    pass_number: int
    repair: bool


@dataclass(slots=True)
class ReceiverEntry:
    """What the sender knows of one receiver."""

    ident: int
    address: str
    name: str
    joined_at: float
    heard_at: float
    blocks_done: int = 0
    bytes_done: int = 0
    loss_ppm: int = 0
    drops: int = 0
    done_at: float | None = None
    dropped: bool = False
    times_dropped: int = 0
    nacks: int = 0
    nack_entries: int = 0

    @property
    def mark(self) -> ReceiverMark:
        if self.done_at is not None:
            return ReceiverMark.DONE
        return ReceiverMark.DROPPED if self.dropped else ReceiverMark.JOINED


@dataclass(slots=True)
class SenderStats:
    pass_datagrams: int = 0  # data and parity of the passes
    repair_datagrams: int = 0
    control_datagrams: int = 0
    repair_rounds: int = 0  # a block repaired once in a round, whoever asked
    topups: int = 0
    nacks: int = 0
    nack_entries: int = 0
    stale_entries: int = 0  # arrived before the repair they asked for could be seen
    rejected: dict[str, int] = field(default_factory=dict)


class SenderState:
    """One session of ``catalogue`` sent under ``stamper``'s origin (the session id)."""

    def __init__(
        self,
        catalogue: Catalogue,
        stamper: Stamper,
        config: SenderConfig,
        rate: RateControl,
        *,
        now: float,
    ) -> None:
        self.catalogue = catalogue
        self.stamper = stamper
        self.config = config
        self.rate = rate
        self.session = stamper.origin
        self.started = now
        self.stats = SenderStats()
        self.receivers: dict[int, ReceiverEntry] = {}
        self.phase = Phase.WAITING if config.receivers else Phase.SENDING
        self.sending_since: float | None = None if config.receivers else now
        self.flushing_since: float | None = None  # when the last pass ended
        self.pass_number = 0
        self.passes_done = 0
        self.outcome = ""  # complete, incomplete, no-receivers: set when the session ends
        count = catalogue.blocks
        self.k = [catalogue.data_symbols(block) for block in range(count)]
        self.round = [0] * count
        self.sent_in_round = [0] * count
        self.repaired_at = [float("-inf")] * count
        self.next_parity = [min(k + config.parity, MAX_SYMBOLS) for k in self.k]
        self.pending: OrderedDict[int, list[int]] = OrderedDict()  # block -> [new, top-up]
        self.cursor = (0, 0)  # (block, symbol) next in the pass
        self.last_nack = now
        self._announce_at = now
        self._describe_at = now
        self._describe_next = 0
        self._endings = 0
        layout = catalogue.layout
        self.datagram_bits = 8 * (layout.symbol_size + DATA_OVERHEAD + stamper.protector.overhead)

    # --- input ------------------------------------------------------------------------------

    def reject(self, reason: Reason) -> None:
        self.stats.rejected[reason.value] = self.stats.rejected.get(reason.value, 0) + 1

    def handle(self, packet: Packet, address: str, now: float) -> None:
        """Take a packet heard on the control port from ``address``."""
        if isinstance(packet, Report):
            if packet.session == self.session:
                self._report(packet, address, now)
            else:
                self.reject(Reason.OTHER_SESSION)
        elif isinstance(packet, Nack):
            if packet.session == self.session:
                self._nack(packet, now)
            else:
                self.reject(Reason.OTHER_SESSION)
        else:
            self.reject(Reason.UNSUPPORTED)  # sender packets on the control port

    def _report(self, report: Report, address: str, now: float) -> None:
        entry = self.receivers.get(report.origin)
        if entry is None:
            if self.phase is Phase.ENDED or len(self.receivers) >= MAX_RECEIVERS_LISTED:
                return
            entry = self.receivers[report.origin] = ReceiverEntry(
                report.origin, address, report.name, now, now
            )
            self._announce_at = min(self._announce_at, now + 0.01)
        entry.heard_at = now
        entry.dropped = False
        entry.blocks_done = report.blocks_done
        entry.bytes_done = report.bytes_done
        entry.loss_ppm = report.loss_ppm
        entry.drops = report.drops
        if report.done:
            if entry.done_at is None:
                entry.done_at = now
                self.rate.forget(entry.ident)
                self._announce_at = now  # at once: the receiver waits for it to end
        else:
            self.rate.report(entry.ident, report.loss_ppm, report.packets, report.drops, now)

    def _nack(self, nack: Nack, now: float) -> None:
        entry = self.receivers.get(nack.origin)
        if entry is not None:
            entry.heard_at = now
            entry.nacks += 1
            entry.nack_entries += len(nack.entries)
        self.stats.nacks += 1
        self.stats.nack_entries += len(nack.entries)
        if self.phase is Phase.WAITING or self.phase is Phase.ENDED:
            return
        self.last_nack = now
        k, rounds = self.k, self.round
        for block, need, seen in nack.entries:
            if block >= len(k) or need > k[block]:
                self.reject(Reason.OUT_OF_RANGE)
                continue
            current = rounds[block]
            if seen > current:
                self.reject(Reason.OUT_OF_RANGE)  # a round never sent
                continue
            slot = self.pending.get(block)
            if seen == current or now - self.repaired_at[block] >= self.config.repair_hold:
                if slot is None:
                    self.pending[block] = [need, 0]
                elif need > slot[0]:
                    slot[0] = need
            else:
                extra = need - self.sent_in_round[block]
                if extra <= 0:
                    self.stats.stale_entries += 1
                elif slot is None:
                    self.pending[block] = [0, extra]
                elif extra > slot[1]:
                    slot[1] = extra

    # --- output ------------------------------------------------------------------------------

    def _symbols(self, block: int, count: int) -> tuple[int, ...]:
        """``count`` parity ids never sent for ``block`` (past 255, ids start over)."""
        start = self.next_parity[block]
        ids = tuple((start + n) % MAX_SYMBOLS for n in range(count))
        self.next_parity[block] = (start + count) % MAX_SYMBOLS
        return ids

    def _worst_loss(self) -> float:
        """The highest loss share the receivers still at work last reported."""
        losses = [
            e.loss_ppm for e in self.receivers.values() if not e.dropped and e.done_at is None
        ]
        return min(0.5, max(losses, default=0) / 1e6)

    @property
    def sent_bits(self) -> int:
        """Bits handed out to send so far (every datagram counted at a data datagram's size)."""
        stats = self.stats
        total = stats.pass_datagrams + stats.repair_datagrams + stats.control_datagrams
        return total * self.datagram_bits

    def _repair(self, now: float) -> Burst:
        block, (new, topup) = self.pending.popitem(last=False)
        if new:
            # A margin for the repair's own loss, at the worst live receiver's loss rate:
            # without it, a lost repair costs a receiver another round trip and back-off.
            count = new + math.ceil(new * 2 * self._worst_loss())
            self.round[block] += 1
            self.sent_in_round[block] = count
            self.stats.repair_rounds += 1
        else:
            self.sent_in_round[block] += topup
            self.stats.topups += 1
            count = topup
        self.repaired_at[block] = now
        k = self.k[block]
        # A receiver with nothing of the block: its data serve everyone and need no decoding.
        ids = tuple(range(k)) if count >= k else self._symbols(block, count)
        self.stats.repair_datagrams += len(ids)
        return Burst(block, ids, self.round[block], self.pass_number, True)

    def _pass_symbols(self, budget: int) -> Burst | None:
        block, symbol = self.cursor
        if block >= len(self.k):
            return None
        total = min(self.k[block] + self.config.parity, MAX_SYMBOLS)
        stop = min(total, symbol + budget)
        self.cursor = (block + 1, 0) if stop == total else (block, stop)
        self.stats.pass_datagrams += stop - symbol
        return Burst(block, tuple(range(symbol, stop)), self.round[block], self.pass_number, False)

    def _announcement(self) -> bytes:
        self.stats.control_datagrams += 1
        return encode_session(
            self.stamper,
            symbol_size=self.catalogue.layout.symbol_size,
            block_symbols=self.catalogue.layout.block_symbols,
            files=len(self.catalogue.files),
            phase=self.phase,
            closed=self.config.receivers is not None,
            pass_number=self.pass_number,
            passes=0 if self.config.duration else self.config.repeat,
            blocks=self.catalogue.blocks,
            rate=int(self.rate.bits_per_second or 0),
            receivers=tuple((e.ident, e.mark) for e in self.receivers.values()),
        )

    def _descriptions(self) -> list[bytes]:
        files = self.catalogue.files
        if not files:
            return []
        chosen: list[int] = []
        if self.phase is Phase.SENDING and self.cursor[0] < self.catalogue.blocks:
            chosen.append(self.catalogue.owner(self.cursor[0])[0].index)
        while len(chosen) < min(_FILES_PER_DESCRIPTION, len(files)):
            index = self._describe_next
            self._describe_next = (index + 1) % len(files)
            if index not in chosen:
                chosen.append(index)
        self.stats.control_datagrams += len(chosen)
        return [
            encode_file(
                self.stamper,
                index=entry.index,
                first_block=entry.first_block,
                size=entry.size,
                digest=entry.digest,
                name=entry.name,
            )
            for entry in (files[i] for i in chosen)
        ]

    def _set_phase(self, phase: Phase, now: float) -> None:
        self.phase = phase
        self._announce_at = now
        if phase is Phase.SENDING:
            self.sending_since = now
        elif phase is Phase.FLUSHING:
            self.flushing_since = now
        elif phase is Phase.ENDED:
            self.pending.clear()

    def _live(self) -> list[ReceiverEntry]:
        return [e for e in self.receivers.values() if not e.dropped]

    def _advance(self, now: float) -> None:
        """Phase changes and dropping silent receivers."""
        config = self.config
        for entry in self.receivers.values():
            if (
                not entry.dropped
                and entry.done_at is None
                and now - entry.heard_at >= config.drop_after
            ):
                entry.dropped = True
                entry.times_dropped += 1
                self.rate.forget(entry.ident)
                self._announce_at = now
        live = self._live()
        live_done = bool(live) and all(e.done_at is not None for e in live)
        if self.phase is Phase.WAITING:
            assert config.receivers is not None
            if len(live) >= config.receivers:
                if live_done:
                    self._end(now)
                else:
                    self._set_phase(Phase.SENDING, now)
            elif now - self.started >= config.wait:
                self._end(now, "no-receivers")
            return
        if self.phase is Phase.SENDING:
            if config.receivers is not None and (live_done or (self.receivers and not live)):
                self._end(now)
            elif self.cursor[0] >= self.catalogue.blocks:
                self._pass_ended(now)
            elif (
                config.duration is not None
                and self.sending_since is not None
                and now - self.sending_since >= config.duration
            ):
                self.passes_done = self.pass_number + 1
                self._set_phase(Phase.FLUSHING, now)
            return
        if (
            self.phase is Phase.FLUSHING
            and not self.pending
            and (
                (self.receivers and (live_done or not live))
                or (config.receivers is None and now - self.last_nack >= config.linger)
            )
        ):
            self._end(now)

    def _pass_ended(self, now: float) -> None:
        self.passes_done = self.pass_number + 1
        config = self.config
        more = config.receivers is None and (
            (
                config.duration is not None
                and self.sending_since is not None
                and now - self.sending_since < config.duration
            )
            or (config.duration is None and self.passes_done < config.repeat)
        )
        if more and self.catalogue.blocks:
            self.pass_number += 1
            self.cursor = (0, 0)
            self._describe_at = now
            self._announce_at = now
        else:
            self.last_nack = now
            self._set_phase(Phase.FLUSHING, now)

    def _end(self, now: float, outcome: str = "") -> None:
        """End the session: complete when every receiver heard of is done."""
        every_done = all(e.done_at is not None for e in self.receivers.values())
        self.outcome = outcome or ("complete" if every_done else "incomplete")
        self._set_phase(Phase.ENDED, now)

    @property
    def finished(self) -> bool:
        return self.phase is Phase.ENDED and self._endings >= _ENDING_ANNOUNCEMENTS

    def deadline(self, now: float) -> float:
        """The latest time :meth:`poll` must run again when there is nothing to send."""
        if self.pending or (self.phase is Phase.SENDING):
            return now
        return min(self._announce_at, self._describe_at, now + 0.05)

    def poll(self, now: float, budget: int) -> list[bytes | Burst]:
        """What to send now: control packets and bursts, ``budget`` datagrams at most."""
        self.rate.update(now, self.sent_bits, busy=self.phase is Phase.SENDING)
        self._advance(now)
        out: list[bytes | Burst] = []
        if self.finished:
            return out
        if now >= self._announce_at:
            out.append(self._announcement())
            if self.phase is Phase.ENDED:
                self._endings += 1
                self._announce_at = now + 0.02
                return out
            self._announce_at = now + self.config.announce_interval
        if now >= self._describe_at and self.phase is not Phase.ENDED:
            out.extend(self._descriptions())
            self._describe_at = now + self.config.describe_interval
        budget -= len(out)
        while budget > 0 and self.pending:
            burst = self._repair(now)
            out.append(burst)
            budget -= len(burst.ids)
        if self.phase is Phase.SENDING:
            while budget > 0:
                more = self._pass_symbols(budget)
                if more is None:
                    break
                out.append(more)
                budget -= len(more.ids)
        return out
