"""Send and receive files: the thin socket loops around the pure states, sync and asyncio.

The sender multicasts session, file and data packets to ``GROUP:PORT``; receivers multicast
their reports and NACKs to ``GROUP:PORT+1``, where the sender and the other receivers (for
NACK suppression) hear them. Datagrams go out in batches (``send_many_to``: ``sendmmsg``) and
come in in batches (``receive_ready``: ``recvmmsg``).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import secrets
import select
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from multicast.core import (
    TRANSIENT_SEND_ERRORS,
    Group,
    InterfaceSpec,
    IPAddress,
    Payload,
    Receiver,
    Sender,
    open_receiver,
    parse_group,
    request_send_buffer,
)
from multicast.core.datagram import SocketAddress
from multicast.core.io import destination, send_many_to
from multicast.exceptions import OptionError, SendError
from multicast.reliable.blocks import Catalogue, Layout
from multicast.reliable.fec import ParityCode
from multicast.reliable.protection import Protection, Reason, make_protector
from multicast.reliable.rate import AdaptiveRate, FixedRate, RateControl
from multicast.reliable.receiver_state import ReceiverState
from multicast.reliable.receiving import ReceiverConfig
from multicast.reliable.report import (
    Progress,
    ReceiveReport,
    SendReport,
    receive_report,
    send_report,
)
from multicast.reliable.sender_state import Burst, SenderConfig, SenderState
from multicast.reliable.storage import FileStore, StorageError, unsafe_name
from multicast.reliable.wire import DATA_OVERHEAD, DataReader, Stamper, parse
from multicast.tools.pacing import Pacer

__all__ = [
    "DEFAULT_DATAGRAM",
    "receive_files",
    "receive_files_async",
    "send_files",
    "send_files_async",
]

DEFAULT_DATAGRAM = 1452  # fits a 1500-byte MTU on IPv4 and IPv6
DEFAULT_BLOCK = 64
_BATCH = 64  # datagrams per sendmmsg
_RECEIVE_BATCH = 512
_FEW = 32  # a wake-up that found fewer datagrams than this waits _GATHER before the next
_GATHER = 0.0005  # seconds: about 40 datagrams at 80,000 a second
_BUFFER = 4 << 20  # socket buffers asked for
_BLOCKS_CACHED = 64  # blocks of file data the sender keeps for repairs
_SAVE_INTERVAL = 1.0  # seconds between resume records
_T = TypeVar("_T")


def _hash_file(path: Path) -> tuple[int, bytes]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.digest()


def _catalogue(paths: Sequence[str | os.PathLike[str]], layout: Layout) -> Catalogue:
    """Check the files (regular, readable, names receivers accept, no two alike) and hash them."""
    if not paths:
        raise OptionError("no file to send")
    entries: list[tuple[str, int, bytes]] = []
    names: set[str] = set()
    for given in paths:
        path = Path(given)
        name = path.name
        reason = unsafe_name(name)
        if reason is not None:
            raise OptionError(f"file name {name!r} would be refused by receivers: {reason}")
        if name in names:
            raise OptionError(f"two files are named {name!r}; receivers keep one name once")
        names.add(name)
        if not path.is_file():
            raise OptionError(f"{str(path)!r} is not a regular file")
        try:
            size, digest = _hash_file(path)
        except OSError as error:
            raise StorageError(
                error.errno or 0, f"cannot read {str(path)!r}: {error.strerror}"
            ) from None
        entries.append((name, size, digest))
    return Catalogue.build(layout, entries)


class _BlockSource:
    """Data packets of bursts, built in place: a block's symbols are read from its file
    straight into datagram slots (a few blocks kept for repairs), headers and tags are
    written around them, parity is computed into slots of its own."""

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], catalogue: Catalogue, stamper: Stamper
    ) -> None:
        self.catalogue = catalogue
        self.stamper = stamper
        self.code = ParityCode()
        self.symbol_size = catalogue.layout.symbol_size
        self.slot_size = DATA_OVERHEAD + self.symbol_size + stamper.protector.overhead
        self.fds: list[int] = []
        # block -> (slots: one writable view per data symbol's datagram, the symbols' bytes)
        self.cache: OrderedDict[int, tuple[list[memoryview], list[memoryview]]] = OrderedDict()
        try:
            for path in paths:
                self.fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except OSError as error:
            self.close()
            raise StorageError(error.errno or 0, f"cannot open {error.filename!r}") from None

    def _slots(self, count: int) -> tuple[list[memoryview], list[memoryview]]:
        """``count`` empty datagram slots, and the views of their symbols."""
        slot, size = self.slot_size, self.symbol_size
        frame = memoryview(bytearray(count * slot))
        slots = [frame[n * slot : (n + 1) * slot] for n in range(count)]
        return slots, [view[DATA_OVERHEAD : DATA_OVERHEAD + size] for view in slots]

    def _block(self, block: int) -> tuple[list[memoryview], list[memoryview]]:
        cached = self.cache.get(block)
        if cached is not None:
            self.cache.move_to_end(block)
            return cached
        entry, offset, length = self.catalogue.extent(block)
        slots, symbols = self._slots(self.catalogue.layout.data_symbols(length))
        tail = length - (len(symbols) - 1) * self.symbol_size  # the last symbol's bytes
        views = [*symbols[:-1], symbols[-1][:tail]]  # past the file's end: zeros
        fd = self.fds[entry.index]
        while views:  # one system call per block, unless the kernel reads less
            read = os.preadv(fd, views, offset)
            if read <= 0:
                raise StorageError(errno.EIO, f"{entry.name!r} shrank while being sent")
            offset += read
            while views and read >= len(views[0]):
                read -= len(views.pop(0))
            if views:
                views[0] = views[0][read:]
        self.cache[block] = slots, symbols
        if len(self.cache) > _BLOCKS_CACHED:
            self.cache.popitem(last=False)
        return slots, symbols

    def datagrams(self, burst: Burst) -> list[Payload]:
        slots, symbols = self._block(burst.block)
        k = len(slots)
        ids = burst.ids
        parity_ids = [i for i in ids if i >= k]
        if parity_ids:
            extra, spaces = self._slots(len(parity_ids))
            self.code.parity_into(symbols, parity_ids, spaces)
            parity = dict(zip(parity_ids, extra, strict=True))
            chosen = [slots[i] if i < k else parity[i] for i in ids]
        else:
            chosen = [slots[i] for i in ids]
        return self.stamper.data_packets(
            chosen, ids, burst.block, burst.round, burst.pass_number, burst.repair
        )

    def batches(self, items: Iterable[bytes | Burst]) -> Iterator[list[Payload]]:
        """The datagrams of ``items`` (control packets and bursts), in batches to send one
        after the other: each is to be sent before the next is asked for, since a burst of a
        block already in the batch stamps that block's slots again."""
        batch: list[Payload] = []
        blocks: set[int] = set()
        for item in items:
            if not isinstance(item, Burst):
                batch.append(item)
                continue
            if item.block in blocks:
                yield batch
                batch, blocks = [], set()
            blocks.add(item.block)
            batch += self.datagrams(item)
        if batch:
            yield batch

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def _send(sender: Sender, datagrams: Sequence[Payload], where: SocketAddress) -> int:
    try:
        return send_many_to(sender.sock, datagrams, where)
    except SendError as error:
        if error.errno in TRANSIENT_SEND_ERRORS:
            return 0
        raise


def _rate_control(rate: float | None, adaptive: bool) -> RateControl:
    if not adaptive:
        return FixedRate(rate)
    ceiling = rate if rate is not None else 10e9
    return AdaptiveRate(ceiling=ceiling, bits_per_second=min(ceiling, 1e9))


class _SenderLoop:
    """The sender's socket loop: control packets in, paced batches of datagrams out."""

    def __init__(
        self,
        state: SenderState,
        source: _BlockSource,
        *,
        out: Sender,
        control: Receiver,
        group: Group,
        port: int,
    ) -> None:
        self.state = state
        self.source = source
        self.out = out
        self.control = control
        self.where = destination(out.sock, group, port)
        self.protector = source.stamper.protector
        layout = state.catalogue.layout
        self.datagram_bits = 8 * (layout.symbol_size + DATA_OVERHEAD + self.protector.overhead)
        self.wire_bytes = 0

    def take(self, timeout: float) -> None:
        """Control packets arriving within ``timeout`` seconds, handed to the state."""
        arrived = self.control.receive_batch(_RECEIVE_BATCH, timeout)
        now = time.monotonic()
        for datagram in arrived:
            packet = parse(datagram.payload, self.protector)
            if isinstance(packet, Reason):
                self.state.reject(packet)
            else:
                self.state.handle(packet, datagram.source[0], now)

    def send(self, now: float) -> int:
        """Send what the state has now (a batch at most); how many datagrams went."""
        sent = 0
        for datagrams in self.source.batches(self.state.poll(now, _BATCH)):
            _send(self.out, datagrams, self.where)
            self.wire_bytes += sum(map(len, datagrams))
            sent += len(datagrams)
        return sent

    def run(
        self,
        start: float,
        progress: Callable[[SenderState, int, float], None] | None,
        stop: threading.Event | None,
    ) -> bool:
        """Until the session ends; True if ``stop`` ended it first."""
        state = self.state
        pacer = Pacer(None, start=start)
        while not state.finished:
            if stop is not None and stop.is_set():
                return True
            now = time.monotonic()
            bits = state.rate.bits_per_second
            pacer.rate = None if bits is None else bits / self.datagram_bits
            wait = pacer.delay(now)
            if wait > 0:
                self.take(wait)
                continue
            self.take(0.0)
            sent = self.send(now)
            if not sent:
                self.take(max(0.0, min(state.deadline(now) - now, 0.05)))
                continue
            pacer.sent(sent, now=now)
            if progress is not None:
                progress(state, self.wire_bytes, now - start)
        return False


def send_files(
    paths: Sequence[str | os.PathLike[str]],
    group: str | IPAddress | Group,
    port: int,
    *,
    rate: float | None = None,
    adaptive: bool = False,
    config: SenderConfig | None = None,
    block_symbols: int = DEFAULT_BLOCK,
    datagram_size: int = DEFAULT_DATAGRAM,
    interface: InterfaceSpec | None = None,
    ttl: int = 1,
    loopback: bool = True,
    key: bytes | None = None,
    encrypt: bool = False,
    progress: Callable[[SenderState, int, float], None] | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Send ``paths`` to ``group`` (data on ``port``, receivers' packets on ``port + 1``).

    ``rate`` is bits per second (None: as fast as the host sends; with ``adaptive``, the
    ceiling). ``config`` says whether the session is open or closed (see
    :class:`SenderConfig`). Returns when the session ends, or when ``stop`` is set.
    """
    parsed = parse_group(group)
    if not 1 <= port <= 65534:
        raise OptionError(f"port {port} must be 1-65534 (receivers answer on port + 1)")
    config = config or SenderConfig()
    protector = make_protector(key, encrypt=encrypt)
    layout = Layout(datagram_size - DATA_OVERHEAD - protector.overhead, block_symbols)
    catalogue = _catalogue(paths, layout)
    stamper = Stamper(secrets.randbits(64) | 1, protector)
    source = _BlockSource(paths, catalogue, stamper)
    where = interface if interface is not None else parsed.interface
    start = time.monotonic()
    state = SenderState(catalogue, stamper, config, _rate_control(rate, adaptive), now=start)
    interrupted = False
    try:
        with (
            Sender(parsed.family, ttl=ttl, interface=where, loopback=loopback) as out,
            open_receiver(
                [parsed], port + 1, interfaces=where, blocking=False, receive_buffer=1 << 20
            ) as control,
        ):
            request_send_buffer(out.sock, _BUFFER)
            loop = _SenderLoop(state, source, out=out, control=control, group=parsed, port=port)
            interrupted = loop.run(start, progress, stop)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        source.close()
    return send_report(
        state,
        group=str(parsed),
        port=port,
        protection=Protection(protector.mode).name.lower(),
        seconds=time.monotonic() - start,
        interrupted=interrupted,
    )


class _ReceiverLoop:
    """The receiver's socket loop: data and peers' NACKs in, reports and NACKs out."""

    def __init__(
        self,
        state: ReceiverState,
        store: FileStore,
        *,
        data: Receiver,
        control: Receiver,
        out: Sender,
    ) -> None:
        self.state = state
        self.store = store
        self.data = data
        self.control = control
        self.out = out
        self.read = DataReader(state.stamper.protector).read_many

    def take(self, receiver: Receiver, now: float) -> int:
        """Every datagram queued on ``receiver``, handed to the state; how many there were."""
        state = self.state
        arrived = receiver.receive_ready(_RECEIVE_BATCH)
        data, others = self.read([datagram.payload for datagram in arrived])
        for packet in others:  # session and file descriptions first: data may need them
            if isinstance(packet, Reason):
                state.reject(packet)
            else:
                state.handle(packet, now)
        if data:
            state.take_data(data, now)
        return len(arrived)

    def run(
        self,
        group: Group,
        port: int,
        start: float,
        progress: Callable[[ReceiverState, float], None] | None,
        stop: threading.Event | None,
    ) -> tuple[bool, float | None]:
        """Until the session is over for us: (whether ``stop`` ended it, when data began)."""
        state, data, control = self.state, self.data, self.control
        where = destination(self.out.sock, group, port + 1)
        poller = select.poll()
        poller.register(data.sock, select.POLLIN)
        poller.register(control.sock, select.POLLIN)
        control_fd = control.fileno()
        save_at = start + _SAVE_INTERVAL
        first_data: float | None = None
        while not state.finished:
            if stop is not None and stop.is_set():
                return True, first_data
            now = time.monotonic()
            ready = poller.poll(max(0.0, min(state.deadline(now) - now, 0.1)) * 1000)
            now = time.monotonic()
            taken = self.take(data, now)
            if any(fd == control_fd for fd, _ in ready):
                self.take(control, now)
            if first_data is None and state.stats.data:
                first_data = now
            state.kernel_drops = data.drops
            if outgoing := state.poll(now):
                _send(self.out, outgoing, where)
            if now >= save_at:
                self.store.save()
                save_at = now + _SAVE_INTERVAL
            if progress is not None:
                progress(state, now - start)
            if 0 < taken < _FEW:
                # Let datagrams gather: one wake-up per batch, not per datagram.
                time.sleep(_GATHER)
        return False, first_data


def receive_files(
    group: str | IPAddress | Group,
    port: int,
    output: str | os.PathLike[str],
    *,
    config: ReceiverConfig | None = None,
    interface: InterfaceSpec | None = None,
    ttl: int = 1,
    key: bytes | None = None,
    progress: Callable[[ReceiverState, float], None] | None = None,
    stop: threading.Event | None = None,
) -> ReceiveReport:
    """Receive the files of the first session heard on ``group`` into directory ``output``.

    Returns when every file is received and verified (and the sender knows it), when the
    session ends or its sender falls silent (partial files are kept for a later run to
    resume), or when ``stop`` is set.
    """
    parsed = parse_group(group)
    if not 1 <= port <= 65534:
        raise OptionError(f"port {port} must be 1-65534 (receivers answer on port + 1)")
    config = config or ReceiverConfig(name=socket.gethostname())
    protector = make_protector(key)
    code = ParityCode()
    store = FileStore(output)
    ident = secrets.randbits(64) | 1
    start = time.monotonic()
    state = ReceiverState(ident, Stamper(ident, protector), store, code, config, now=start)
    where = interface if interface is not None else parsed.interface
    first_data: float | None = None
    interrupted = False
    try:
        with (
            open_receiver(
                [parsed], port, interfaces=where, blocking=False, receive_buffer=_BUFFER
            ) as data,
            open_receiver([parsed], port + 1, interfaces=where, blocking=False) as control,
            Sender(parsed.family, ttl=ttl, interface=where) as out,
        ):
            loop = _ReceiverLoop(state, store, data=data, control=control, out=out)
            interrupted, first_data = loop.run(parsed, port, start, progress, stop)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        store.close()
    return receive_report(
        state,
        group=str(parsed),
        port=port,
        output=str(output),
        seconds=time.monotonic() - start,
        interrupted=interrupted,
        first_data=first_data,
    )


async def _in_thread(function: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """Run a transfer in a worker thread; cancelling the task stops it (within 0.1 s)."""
    import asyncio  # noqa: PLC0415 (only here: the commands start 15 ms sooner without it)

    stop = threading.Event()
    task = asyncio.ensure_future(
        asyncio.to_thread(functools.partial(function, stop=stop), *args, **kwargs)
    )
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        stop.set()
        await task
        raise


async def send_files_async(
    paths: Sequence[str | os.PathLike[str]],
    group: str | IPAddress | Group,
    port: int,
    **options: Any,
) -> SendReport:
    """:func:`send_files` for asyncio: the loop stays free; cancelling ends the session."""
    return await _in_thread(send_files, paths, group, port, **options)


async def receive_files_async(
    group: str | IPAddress | Group, port: int, output: str | os.PathLike[str], **options: Any
) -> ReceiveReport:
    """:func:`receive_files` for asyncio: the loop stays free; cancelling stops receiving."""
    return await _in_thread(receive_files, group, port, output, **options)


def terminal_progress() -> Progress:
    """Progress lines on standard error when it is a terminal."""
    return Progress(sys.stderr if sys.stderr is not None and sys.stderr.isatty() else None)
