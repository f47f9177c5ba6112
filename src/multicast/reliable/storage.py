"""Where received files go: safe names, partial files that resume, a digest check, the rename.

Nothing is ever written outside the output directory, whatever name a sender sends: a name
is one path component of printable characters (no ``/``, ``\\``, ``..``, NUL, control
characters, device names such as ``NUL`` or ``COM1``), and every file is opened relative to
the directory's own descriptor without following links (``O_NOFOLLOW``). A file is received
into ``.NAME.mcpart`` beside a resume record ``.NAME.mcstate`` (the blocks already complete,
written after the data reached the disk), and renamed to ``NAME`` only once its SHA-256
matches the sender's. A later run for the same file (same size, digest and layout) starts
from the record; a ``NAME`` already there with the right digest is taken as received.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from multicast.exceptions import MulticastError
from multicast.reliable.blocks import FileEntry, Layout

__all__ = [
    "PART_SUFFIX",
    "STATE_SUFFIX",
    "FileStore",
    "OutputDirectory",
    "PartFile",
    "Prepared",
    "StorageError",
    "unsafe_name",
]

PART_SUFFIX = ".mcpart"
STATE_SUFFIX = ".mcstate"
_STATE = struct.Struct("!8s32sQIHI")  # magic, digest, size, symbol size, block symbols, blocks
_STATE_MAGIC = b"MCRSTAT1"
_CHUNK = 1 << 20  # bytes read per call when hashing
_DEVICE_NAMES = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"{port}{n}" for port in ("com", "lpt") for n in "123456789¹²³"}
)
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


class StorageError(MulticastError, OSError):
    """The output directory or a file in it cannot be used; the message says which and why."""


def unsafe_name(name: str) -> str | None:
    """Why ``name`` may not be written in the output directory, or None if it may."""
    if not name or len(name.encode()) > 255:
        return "empty or longer than 255 bytes"
    if name in (".", ".."):
        return "a directory reference"
    if any(c in "/\\\0" for c in name):
        return "a path, not one file name"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        return "control or invisible characters"
    if name != name.strip() or name.endswith("."):
        return "leading or trailing space, or a trailing dot"
    if name.split(".", maxsplit=1)[0].lower() in _DEVICE_NAMES:
        return "a device name"
    if name.endswith((PART_SUFFIX, STATE_SUFFIX)):
        return "the name of a partial file"
    return None


class PartFile:
    """One file being received: its partial file, resume record and completed blocks."""

    def __init__(self, directory: OutputDirectory, entry: FileEntry, layout: Layout) -> None:
        self.directory = directory
        self.entry = entry
        self.layout = layout
        self.part_name = f".{entry.name}{PART_SUFFIX}"
        self.state_name = f".{entry.name}{STATE_SUFFIX}"
        self.done = bytearray(entry.blocks)  # 1 per block complete on disk
        self.dirty = False
        self.fd = directory.open_regular(self.part_name)
        try:
            self._resume()
        except BaseException:
            os.close(self.fd)
            raise

    def _record_head(self) -> bytes:
        entry = self.entry
        return _STATE.pack(
            _STATE_MAGIC,
            entry.digest,
            entry.size,
            self.layout.symbol_size,
            self.layout.block_symbols,
            entry.blocks,
        )

    def _resume(self) -> None:
        record = self.directory.read_small(self.state_name, _STATE.size + self.entry.blocks)
        size = os.fstat(self.fd).st_size
        if (
            record is not None
            and record[: _STATE.size] == self._record_head()
            and len(record) == _STATE.size + self.entry.blocks
            and size == self.entry.size
        ):
            self.done[:] = record[_STATE.size :]
            if any(b > 1 for b in self.done):
                self.done[:] = bytes(self.entry.blocks)
        else:
            os.ftruncate(self.fd, 0)
        os.ftruncate(self.fd, self.entry.size)

    @property
    def resumed(self) -> int:
        """Blocks already complete when the file was opened, or since."""
        return sum(self.done)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written

    def read(self, offset: int, size: int) -> bytes:
        parts: list[bytes] = []
        while size > 0:
            chunk = os.pread(self.fd, size, offset)
            if not chunk:
                break
            parts.append(chunk)
            size, offset = size - len(chunk), offset + len(chunk)
        return b"".join(parts)

    def block_done(self, local: int) -> None:
        self.done[local] = 1
        self.dirty = True

    def save(self) -> None:
        """Write the resume record, after the data it vouches for reached the disk."""
        if not self.dirty:
            return
        os.fdatasync(self.fd)
        self.directory.write_atomically(self.state_name, self._record_head() + bytes(self.done))
        self.dirty = False

    def finish(self, digest: bytes) -> bool:
        """If ``digest`` (the SHA-256 of what was written) is the sender's, rename the file into
        place and drop the record."""
        if digest != self.entry.digest:
            return False
        os.fsync(self.fd)
        self.directory.rename(self.part_name, self.entry.name)
        self.directory.remove(self.state_name)
        self.dirty = False
        return True

    def discard(self) -> None:
        """Forget every block (after a digest mismatch): receive the file again."""
        self.done[:] = bytes(self.entry.blocks)
        self.dirty = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.save()
        os.close(self.fd)


class OutputDirectory:
    """The directory files are received into, held open by descriptor (made if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise StorageError(
                error.errno or 0, f"cannot use output directory {str(path)!r}: {error.strerror}"
            ) from None

    def _fail(self, what: str, name: str, error: OSError) -> StorageError:
        return StorageError(
            error.errno or 0, f"cannot {what} {str(self.path / name)!r}: {error.strerror}"
        )

    def open_regular(self, name: str) -> int:
        """Open (or create) the regular file ``name`` here for reading and writing."""
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, 0o600, dir_fd=self.fd)
        except OSError as error:
            raise self._fail("open", name, error) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StorageError(0, f"{str(self.path / name)!r} is not a regular file")
        return fd

    def read_small(self, name: str, limit: int) -> bytes | None:
        """The content of regular file ``name`` (up to ``limit`` bytes), None if absent."""
        try:
            fd = os.open(name, os.O_RDONLY | _OPEN_FLAGS, dir_fd=self.fd)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, limit + 1)
        finally:
            os.close(fd)

    def write_atomically(self, name: str, data: bytes) -> None:
        temporary = name + ".tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=self.fd)
        try:
            fd = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o600, dir_fd=self.fd
            )
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as error:
            raise self._fail("write", name, error) from None

    def rename(self, source: str, target: str) -> None:
        """Rename within the directory; a link at ``target`` is replaced, never followed."""
        try:
            os.replace(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as error:
            raise self._fail("rename into", target, error) from None

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def complete_copy(self, entry: FileEntry) -> bool:
        """Whether ``entry.name`` is already here, a regular file with the right digest."""
        try:
            fd = os.open(entry.name, os.O_RDONLY | _OPEN_FLAGS, dir_fd=self.fd)
        except OSError:
            return False
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size != entry.size:
                return False
            sha = hashlib.sha256()
            for chunk in iter(lambda: os.read(fd, _CHUNK), b""):
                sha.update(chunk)
            return sha.digest() == entry.digest
        finally:
            os.close(fd)

    def open_part(self, entry: FileEntry, layout: Layout) -> PartFile:
        return PartFile(self, entry, layout)

    def close(self) -> None:
        os.close(self.fd)


@dataclass(slots=True)
class Prepared:
    """A file about to be received: its blocks already on disk, or why it is refused."""

    done: bytearray  # one flag per block of the file
    refused: str | None = None  # the reason the name may not be written
    complete: bool = False  # the file is already in place with the right digest


class FileStore:
    """The receiver's storage in an output directory (see :class:`OutputDirectory`)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = OutputDirectory(directory)
        self.parts: dict[int, PartFile] = {}

    def prepare(self, entry: FileEntry, layout: Layout) -> Prepared:
        reason = unsafe_name(entry.name)
        if reason is not None:
            return Prepared(bytearray(entry.blocks), refused=reason)
        if self.directory.complete_copy(entry):
            return Prepared(bytearray(b"\1" * entry.blocks), complete=True)
        part = self.parts[entry.index] = self.directory.open_part(entry, layout)
        return Prepared(bytearray(part.done))

    def write(self, file: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.parts[file].write(offset, data)

    def read(self, file: int, offset: int, size: int) -> bytes:
        return self.parts[file].read(offset, size)

    def block_done(self, file: int, local: int) -> None:
        self.parts[file].block_done(local)

    def finish(self, file: int, digest: bytes) -> bool:
        """Rename file ``file`` into place if ``digest`` (of what was written) is the sender's;
        False if not (its blocks are then forgotten, to be received again)."""
        part = self.parts[file]
        if not part.finish(digest):
            part.discard()
            return False
        os.close(part.fd)
        del self.parts[file]
        return True

    def save(self) -> None:
        """Write every partial file's resume record (its data flushed to disk first)."""
        for part in self.parts.values():
            part.save()

    def close(self) -> None:
        for part in self.parts.values():
            part.close()
        self.parts.clear()
        self.directory.close()
