"""How files become blocks of symbols, and the parity code that repairs them. Pure code.

The files of a session are cut into blocks of ``block_symbols`` symbols of ``symbol_size``
bytes each (a file's last block may have fewer symbols, its last symbol is padded with zeros
on the wire). Blocks are numbered across the session, each file starting a new block.

Symbol ids below a block's data-symbol count are the data itself; ids from there up to 255
are parity (:mod:`multicast.reliable.fec`), and *any* ``k`` distinct symbols of a block of
``k`` data symbols rebuild it. So a repair is "n more symbols of block b", whichever n each
receiver lost.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from multicast.exceptions import OptionError

__all__ = ["MAX_BLOCKS", "MAX_BLOCK_SYMBOLS", "Catalogue", "FileEntry", "Layout"]

MAX_BLOCK_SYMBOLS = 128  # data symbols per block: at least as many parity ids remain
# Blocks of one session: a receiver keeps a few bytes per block (4M blocks: 380 GB at 64 x
# 1422 bytes). A session announcing more is refused, so memory stays bounded.
MAX_BLOCKS = 1 << 22


@dataclass(frozen=True, slots=True)
class Layout:
    """Symbol size (bytes) and data symbols per block, the same for every block of a session."""

    symbol_size: int
    block_symbols: int

    def __post_init__(self) -> None:
        if not 16 <= self.symbol_size <= 65000:
            raise OptionError(f"symbol size {self.symbol_size} must be 16-65000 bytes")
        if not 1 <= self.block_symbols <= MAX_BLOCK_SYMBOLS:
            raise OptionError(f"block of {self.block_symbols} symbols: give 1-{MAX_BLOCK_SYMBOLS}")

    @property
    def block_size(self) -> int:
        return self.symbol_size * self.block_symbols

    def blocks_of(self, size: int) -> int:
        """Blocks of a file of ``size`` bytes (none for an empty file)."""
        return math.ceil(size / self.block_size)

    def data_symbols(self, length: int) -> int:
        """Data symbols of a block holding ``length`` bytes."""
        return math.ceil(length / self.symbol_size)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a session."""

    index: int
    name: str
    size: int
    digest: bytes  # SHA-256 of the whole file
    first_block: int
    blocks: int


class Catalogue:
    """The files of a session and where each block of the sequence belongs."""

    def __init__(self, layout: Layout, files: Sequence[FileEntry]) -> None:
        self.layout = layout
        self.files = tuple(files)
        self._starts = [entry.first_block for entry in self.files]
        self.blocks = sum(entry.blocks for entry in self.files)
        self.total_bytes = sum(entry.size for entry in self.files)
        if self.blocks > MAX_BLOCKS:
            raise OptionError(
                f"{self.total_bytes} bytes make {self.blocks} blocks; at most {MAX_BLOCKS} "
                "(give a larger --block or --datagram-size)"
            )

    @classmethod
    def build(cls, layout: Layout, files: Sequence[tuple[str, int, bytes]]) -> Catalogue:
        """The catalogue of ``files`` given as (name, size, SHA-256), blocks in that order."""
        entries: list[FileEntry] = []
        first = 0
        for index, (name, size, digest) in enumerate(files):
            count = layout.blocks_of(size)
            entries.append(FileEntry(index, name, size, digest, first, count))
            first += count
        return cls(layout, entries)

    def owner(self, block: int) -> tuple[FileEntry, int]:
        """The file holding ``block``, and the block's number within it."""
        at = bisect.bisect_right(self._starts, block) - 1
        while (
            self.files[at].blocks == 0
            or block >= self.files[at].first_block + self.files[at].blocks
        ):
            at -= 1  # empty files share a start with the next file; none holds the block
        entry = self.files[at]
        return entry, block - entry.first_block

    def extent(self, block: int) -> tuple[FileEntry, int, int]:
        """(file, byte offset in it, length) of ``block``'s data."""
        entry, local = self.owner(block)
        offset = local * self.layout.block_size
        return entry, offset, min(self.layout.block_size, entry.size - offset)

    def data_symbols(self, block: int) -> int:
        """Data symbols of ``block`` (``k`` for the code)."""
        _, _, length = self.extent(block)
        return self.layout.data_symbols(length)
