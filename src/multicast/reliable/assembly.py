"""How a receiver keeps the symbols of its blocks until each is complete, then rebuilds what
is missing (parity), writes the block and hashes it. Pure but for the :class:`Store`.

:class:`BlockAssembly` is the part of :class:`~multicast.reliable.receiver_state.ReceiverState`
that holds block buffers (up to ``open_blocks`` at once; a block pushed out of memory has its
data symbols written to the store, and read back when it is assembled), parity symbols (up
to ``parity_memory`` bytes), and each file's running SHA-256 (blocks hashed in order as they
complete, for the check when the file is complete).
"""

from __future__ import annotations

import array
import hashlib
from collections import OrderedDict

from multicast.reliable.blocks import FileEntry, Layout
from multicast.reliable.fec import ParityCode
from multicast.reliable.receiving import FileOutcome, ReceiverConfig, ReceiverStats, Store

__all__ = ["BlockAssembly"]

_DIGEST_TRIES = 2  # a file whose digest fails this often is given up


class BlockAssembly:
    """Block buffers, parity kept, assembly, digests: the state :class:`ReceiverState` sets."""

    store: Store
    code: ParityCode
    config: ReceiverConfig
    stats: ReceiverStats
    layout: Layout | None
    files: dict[int, FileEntry]
    outcomes: dict[int, FileOutcome]
    k: bytearray
    owner: array.array[int]
    have: list[int]
    count: bytearray
    complete: bytearray
    passed: bytearray
    flushed: bytearray
    buffers: OrderedDict[int, bytearray]
    parity: dict[int, dict[int, bytes]]
    parity_bytes: int
    candidates: dict[int, None]
    waiting: dict[int, tuple[float, int]]
    heard: dict[int, int]
    remaining: dict[int, int]
    digests: dict[int, tuple[hashlib._Hash, int]]
    blocks_done: int
    bytes_done: int

    def _keep_parity(self, block: int, symbol: int, payload: memoryview | bytes) -> bool:
        """Keep a parity symbol until its block is assembled, if memory allows."""
        assert self.layout is not None
        size = self.layout.symbol_size
        if self.parity_bytes + size > self.config.parity_memory:
            self.stats.parity_dropped += 1
            return False
        self.parity.setdefault(block, {})[symbol] = bytes(payload)
        self.parity_bytes += size
        return True

    def _store_data(self, block: int, symbol: int, payload: memoryview | bytes) -> bytearray | None:
        """Keep a data symbol of a block that has no buffer yet: in a new buffer (returned),
        or straight in the store once the block was flushed (None)."""
        assert self.layout is not None
        size = self.layout.symbol_size
        if self.flushed[block]:
            entry, offset = self._where(block)
            length = min(size, entry.size - offset - symbol * size)
            self.store.write(self.owner[block], offset + symbol * size, payload[:length])
            return None
        buffer = self.buffers.get(block)
        if buffer is None:
            buffer = self.buffers[block] = bytearray(self.k[block] * size)
            if len(self.buffers) > self.config.open_blocks:
                self._flush(next(iter(self.buffers)))
        buffer[symbol * size : (symbol + 1) * size] = payload
        return buffer

    def _where(self, block: int) -> tuple[FileEntry, int]:
        assert self.layout is not None
        entry = self.files[self.owner[block]]
        return entry, (block - entry.first_block) * self.layout.block_size

    def _flush(self, block: int) -> None:
        """Write the data symbols of an open block to the store, in runs, and free its buffer."""
        assert self.layout is not None
        buffer = self.buffers.pop(block)
        entry, offset = self._where(block)
        size, have, end = self.layout.symbol_size, self.have[block], entry.size - offset
        symbol, k = 0, self.k[block]
        while symbol < k:
            if have >> symbol & 1:
                start = symbol
                while symbol < k and have >> symbol & 1:
                    symbol += 1
                stop = min(symbol * size, end)
                self.store.write(
                    self.owner[block], offset + start * size, buffer[start * size : stop]
                )
            symbol += 1
        self.flushed[block] = 1

    def _assemble(self, block: int) -> None:
        """A block has enough symbols: rebuild what is missing, write it, mark it complete."""
        assert self.layout is not None
        size, k, have = self.layout.symbol_size, self.k[block], self.have[block]
        entry, offset = self._where(block)
        length = min(self.layout.block_size, entry.size - offset)
        file = self.owner[block]
        buffer = self.buffers.pop(block, None)
        parity = self.parity.pop(block, {})
        self.parity_bytes -= size * len(parity)
        missing = [i for i in range(k) if not have >> i & 1]
        if missing:
            view = memoryview(buffer if buffer is not None else bytearray(k * size))
            if buffer is None:  # flushed: what it has is in the store
                for i in range(k):
                    if have >> i & 1:
                        view[i * size : (i + 1) * size] = self.store.read(
                            file, offset + i * size, size
                        ).ljust(size, b"\0")
            symbols: dict[int, bytes | bytearray | memoryview] = {
                i: view[i * size : (i + 1) * size] for i in range(k) if have >> i & 1
            }
            for i in sorted(parity)[: len(missing)]:
                symbols[i] = parity[i]
            self.code.recover_into(
                k, symbols, {i: view[i * size : (i + 1) * size] for i in missing}
            )
            self.stats.decoded_blocks += 1
            if buffer is None:
                for i in missing:
                    stop = min((i + 1) * size, length)
                    self.store.write(file, offset + i * size, view[i * size : stop])
        data = None if buffer is None else memoryview(buffer)[:length]
        if data is not None:
            self.store.write(file, offset, data)
        self.complete[block] = 1
        self.candidates.pop(block, None)
        self.waiting.pop(block, None)
        self.heard.pop(block, None)
        self.blocks_done += 1
        self.bytes_done += length
        self.store.block_done(file, block - entry.first_block)
        self._digest_forward(file, block, data)
        self.remaining[file] -= 1
        if not self.remaining[file]:
            self._finish_file(file)

    def _digest_forward(self, file: int, block: int = -1, data: memoryview | None = None) -> None:
        """Hash the file's complete blocks in order, as far as they go (``data``: ``block``'s
        bytes, in memory; other blocks are read back), for the check when it is complete."""
        assert self.layout is not None
        entry = self.files[file]
        hasher, local = self.digests[file]
        size = self.layout.block_size
        while local < entry.blocks and self.complete[entry.first_block + local]:
            if data is not None and entry.first_block + local == block:
                hasher.update(data)
            else:
                offset = local * size
                hasher.update(self.store.read(file, offset, min(size, entry.size - offset)))
            local += 1
        self.digests[file] = (hasher, local)

    def _finish_file(self, file: int) -> None:
        outcome = self.outcomes[file]
        self._digest_forward(file)
        if self.store.finish(file, self.digests[file][0].digest()):
            outcome.received = True
            return
        self.digests[file] = (hashlib.sha256(), 0)
        outcome.digest_failures += 1
        entry = self.files[file]
        if outcome.digest_failures >= _DIGEST_TRIES:
            outcome.refused = f"SHA-256 did not match {outcome.digest_failures} times"
            return
        for block in range(entry.first_block, entry.first_block + entry.blocks):
            self.complete[block] = self.have[block] = self.count[block] = 0
            self.flushed[block] = 1
            if self.passed[block]:
                self.candidates[block] = None
        self.remaining[file] = entry.blocks
        self.blocks_done -= entry.blocks
        self.bytes_done -= entry.size
