"""What a receiver is given and gives back: its settings, its storage, its counts. Pure code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from multicast.exceptions import OptionError
from multicast.reliable.blocks import FileEntry, Layout
from multicast.reliable.storage import Prepared

__all__ = ["FileOutcome", "ReceiverConfig", "ReceiverStats", "Store"]


class Store(Protocol):
    """Where a receiver's files go (:class:`multicast.reliable.storage.FileStore`)."""

    def prepare(self, entry: FileEntry, layout: Layout) -> Prepared: ...

    def write(self, file: int, offset: int, data: bytes | bytearray | memoryview) -> None: ...

    def read(self, file: int, offset: int, size: int) -> bytes: ...

    def block_done(self, file: int, local: int) -> None: ...

    def finish(self, file: int, digest: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """Timers and bounds of a receiver (seconds, bytes)."""

    name: str = ""
    backoff: float = 0.02  # NACK back-off window
    retry: float = 0.08  # ask again for a block no repair came for
    report_interval: float = 0.1  # progress reports, also the heartbeat the sender watches
    linger: float = 2.0  # after completing, keep reporting until the sender acknowledges
    idle: float = 5.0  # the sender silent this long ends the session (incomplete)
    wait: float | None = None  # no session heard this long: give up (None: wait on)
    session: int | None = None  # accept only this session id
    open_blocks: int = 128  # blocks assembled in memory at once
    parity_memory: int = 64 << 20  # bytes of parity symbols held for incomplete blocks

    def __post_init__(self) -> None:
        # Fewer than one open block would push a block out before its first symbol is kept.
        if isinstance(self.open_blocks, bool) or not isinstance(self.open_blocks, int):
            raise OptionError(f"open_blocks {self.open_blocks!r} must be a whole number")
        if self.open_blocks < 1:
            raise OptionError(f"open_blocks {self.open_blocks} must be at least 1")


@dataclass(slots=True)
class FileOutcome:
    """What became of one file of the session."""

    name: str
    size: int
    received: bool = False  # verified and in place
    already: bool = False  # was already in place with the right digest
    resumed_blocks: int = 0  # blocks a partial file from an earlier run held
    refused: str | None = None  # why its name was refused
    digest_failures: int = 0


@dataclass(slots=True)
class ReceiverStats:
    """What a receiver counted."""

    data: int = 0
    duplicates: int = 0
    early: int = 0  # data for a file not yet described
    decoded_blocks: int = 0
    nacks_sent: int = 0
    nack_entries: int = 0
    suppressed: int = 0
    parity_dropped: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
