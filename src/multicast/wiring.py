"""Wire logs: transcripts of the datagrams a peer received (Rx) and sent (Tx).

Compatible with ``hio.core.wiring``: a :class:`WireLog` given to a peer as ``wl`` records
every datagram as ``b'\\n<Rx|Tx> <who>:\\n<data>\\n'``, where *who* is the far end's
address (the source for Rx, the destination for Tx) written as ``str(address)``.

>>> with openWL(samed=True) as wl:
...     wl.writeTx(b"ping", who=("127.0.0.1", 6102))
...     wl.writeRx(b"pong", who=("127.0.0.1", 6102))
...     wl.readRx()
b"\\nTx ('127.0.0.1', 6102):\\nping\\n\\nRx ('127.0.0.1', 6102):\\npong\\n"

Transcripts live in memory, or with ``filed`` in files: ``<name>.<UTC time>.log`` when
``samed`` (Rx and Tx in one file), else ``….rx.log`` and ``….tx.log``. The files go in
``<headDirPath>/<prefix>/wirelogs/`` (default ``~/.<prefix>/wirelogs/``), or with ``temp``
in a fresh private folder (``<prefix>_wirelogs_<name>_*``, mode 0700) of the system's
temporary folder, which :meth:`WireLog.close` removes.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from multicast.core import Payload

__all__ = ["WireLog", "openWL"]


class WireLog:
    """Rx and Tx transcripts, in memory (default) or in files (``filed``).

    ``rxed``/``txed`` choose what is recorded; ``samed`` puts both in one transcript, so
    ``readRx() == readTx()``; ``fmt`` replaces :attr:`Format` (a bytes format with the keys
    ``dx``, ``who`` and ``data``). ``reopen`` opens at once; ``clear`` removes this log's
    old files when it reopens.
    """

    Format = b"\n%(dx)b %(who)b:\n%(data)b\n"
    Prefix = "multicast"

    def __init__(
        self,
        *,
        rxed: bool = True,
        txed: bool = True,
        samed: bool = False,
        filed: bool = False,
        fmt: bytes | None = None,
        name: str = "main",
        temp: bool = False,
        prefix: str | None = None,
        headDirPath: str | os.PathLike[str] | None = None,  # noqa: N803  (hio's name)
        reopen: bool = False,
        clear: bool = False,
    ) -> None:
        self.rxed = rxed
        self.txed = txed
        self.samed = samed
        self.filed = filed
        self.fmt = self.Format if fmt is None else fmt
        self.name = name
        self.temp = temp
        self.prefix = self.Prefix if prefix is None else prefix
        self.headDirPath = headDirPath
        self.dirPath: Path | None = None
        self.rxPath: Path | None = None
        self.txPath: Path | None = None
        self.rxl: IO[bytes] | None = None
        self.txl: IO[bytes] | None = None
        self.opened = False
        if reopen:
            self.reopen(clear=clear)

    def reopen(
        self,
        *,
        temp: bool | None = None,
        headDirPath: str | os.PathLike[str] | None = None,  # noqa: N803  (hio's name)
        clear: bool = False,
    ) -> bool:
        """Close, then open again (new files when ``filed``); returns :attr:`opened`."""
        self.close(clear=clear)
        if temp is not None:
            self.temp = temp
        if headDirPath is not None:
            self.headDirPath = headDirPath
        if self.filed:
            self._open_files()
        else:
            self._open_memory()
        self.opened = True
        return self.opened

    def _open_memory(self) -> None:
        if self.samed:
            self.rxl = self.txl = io.BytesIO() if self.rxed or self.txed else None
        else:
            self.rxl = io.BytesIO() if self.rxed else None
            self.txl = io.BytesIO() if self.txed else None

    def _open_files(self) -> None:
        directory = self.dirPath = self._make_directory()
        stamp = f"{self.name}.{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}"
        stem, again = stamp, 0
        while any((directory / f"{stem}{end}").exists() for end in (".log", ".rx.log", ".tx.log")):
            again += 1  # reopened within the same microsecond: never overwrite a transcript
            stem = f"{stamp}-{again}"
        if self.samed:
            if self.rxed or self.txed:
                self.rxPath = self.txPath = directory / f"{stem}.log"
                self.rxl = self.txl = self.rxPath.open("x+b")
            return
        if self.rxed:
            self.rxPath = directory / f"{stem}.rx.log"
            self.rxl = self.rxPath.open("x+b")
        if self.txed:
            self.txPath = directory / f"{stem}.tx.log"
            self.txl = self.txPath.open("x+b")

    def _make_directory(self) -> Path:
        if self.temp:
            # A private folder (mode 0700) made afresh in the system's temporary folder:
            # nothing shared with other users, who could own a fixed path there first.
            return Path(tempfile.mkdtemp(prefix=f"{self.prefix}_wirelogs_{self.name}_"))
        if self.headDirPath is not None:
            path = Path(self.headDirPath) / self.prefix / "wirelogs"
        else:
            path = Path.home() / f".{self.prefix}" / "wirelogs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def _who(who: object) -> bytes:
        if isinstance(who, Payload):
            return bytes(who)
        return (who if isinstance(who, str) else str(who)).encode()

    def _write(self, log: IO[bytes] | None, dx: bytes, data: Payload, who: object) -> None:
        if log is None:
            return
        log.seek(0, io.SEEK_END)
        log.write(self.fmt % {b"dx": dx, b"who": self._who(who), b"data": bytes(data)})

    def writeRx(self, data: Payload, who: object = b"") -> None:
        """Record ``data`` received from ``who``."""
        self._write(self.rxl, b"Rx", data, who)

    def writeTx(self, data: Payload, who: object = b"") -> None:
        """Record ``data`` sent to ``who``."""
        self._write(self.txl, b"Tx", data, who)

    @staticmethod
    def _read(log: IO[bytes] | None) -> bytes:
        if log is None:
            return b""
        log.seek(0)
        return log.read()

    def readRx(self) -> bytes:
        """The whole Rx transcript (with ``samed``, Rx and Tx together)."""
        return self._read(self.rxl)

    def readTx(self) -> bytes:
        """The whole Tx transcript (with ``samed``, Rx and Tx together)."""
        return self._read(self.txl)

    def _logs(self) -> list[IO[bytes]]:
        """The open transcripts, each once (with ``samed`` Rx and Tx are one)."""
        logs = [log for log in (self.rxl, self.txl) if log is not None]
        return logs[:1] if self.rxl is self.txl else logs

    def flush(self) -> None:
        """Push file transcripts to disk (``fsync``); nothing to do in memory."""
        if self.filed:
            for log in self._logs():
                log.flush()
                os.fsync(log.fileno())

    def close(self, clear: bool = False) -> None:
        """Close the transcripts; with ``temp`` remove their folder, with ``clear`` their files."""
        for log in self._logs():
            log.close()
        self.rxl = self.txl = None
        if self.dirPath is not None:
            if self.temp:
                shutil.rmtree(self.dirPath, ignore_errors=True)
            elif clear:
                for path in (self.rxPath, self.txPath):
                    if path is not None:
                        path.unlink(missing_ok=True)
        self.dirPath = self.rxPath = self.txPath = None
        self.opened = False


@contextlib.contextmanager
def openWL(
    cls: type[WireLog] | None = None, name: str = "test", temp: bool = True, **kwa: Any
) -> Iterator[WireLog]:
    """A :class:`WireLog` (or ``cls``) opened for a ``with`` block and closed after it."""
    wl = (cls or WireLog)(name=name, temp=temp, reopen=True, **kwa)
    try:
        yield wl
    finally:
        wl.close()
