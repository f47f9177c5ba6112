"""What a transfer reports: final reports (text and ``--json``) and live progress. Pure code.

The JSON reports carry ``"schema": "multicast.send-file/1"`` or ``"multicast.receive-file/1"``;
a field is only ever added within a schema version (docs/cli.md lists them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from multicast.core import IO_BACKEND
from multicast.reliable.fec import KERNEL
from multicast.reliable.receiver_state import ReceiverState
from multicast.reliable.sender_state import ReceiverEntry, SenderState

__all__ = [
    "RECEIVE_SCHEMA",
    "SEND_SCHEMA",
    "Progress",
    "ReceiveReport",
    "SendReport",
    "receive_report",
    "send_report",
]

SEND_SCHEMA = "multicast.send-file/1"
RECEIVE_SCHEMA = "multicast.receive-file/1"
_MIB = 1 << 20


def _rate(size: float, seconds: float) -> float:
    return size / seconds if seconds > 0 else 0.0


def _receiver_status(entry: ReceiverEntry) -> str:
    if entry.done_at is not None:
        return "done"
    return "dropped" if entry.dropped else "incomplete"


def _label(entry: ReceiverEntry) -> str:
    return f"{entry.name or entry.ident.to_bytes(8, 'big').hex()} ({entry.address})"


@dataclass(frozen=True, slots=True)
class SendReport:
    """A send-file run: its outcome, what it sent, and each receiver's fate."""

    data: dict[str, object]

    @property
    def outcome(self) -> str:
        return str(self.data["outcome"])

    def as_dict(self) -> dict[str, object]:
        return self.data

    def __str__(self) -> str:
        d = self.data
        datagrams = d["datagrams"]
        repair = d["repair"]
        assert isinstance(datagrams, dict) and isinstance(repair, dict)
        lines = [
            f"send-file: {d['outcome']}: {d['bytes']} bytes in {d['files_count']} file(s) to "
            f"{d['group']} port {d['port']} in {d['seconds']:.3f} s "
            f"({float(str(d['goodput'])) / _MIB:.1f} MiB/s), {d['passes']} pass(es), "
            f"protection {d['protection']}",
            f"  datagrams: {datagrams['pass']} in passes, {datagrams['repair']} repairs, "
            f"{datagrams['control']} control; {repair['nacks']} NACKs for "
            f"{repair['rounds']} repair rounds",
        ]
        receivers = d["receivers"]
        assert isinstance(receivers, list)
        for receiver in receivers:
            lines.append(
                f"  {receiver['label']}: {receiver['status']}, "
                f"{receiver['bytes_done']} bytes, loss {receiver['loss_ppm'] / 1e4:.2f} %, "
                f"{receiver['nacks']} NACKs"
            )
        dropped = d["dropped"]
        if dropped:
            assert isinstance(dropped, list)
            lines.append(f"  dropped (silent for {d['drop_after']} s): {', '.join(dropped)}")
        if d["rejected"]:
            lines.append(f"  rejected datagrams: {d['rejected']}")
        return "\n".join(lines)


def send_report(
    state: SenderState,
    *,
    group: str,
    port: int,
    protection: str,
    seconds: float,
    interrupted: bool,
) -> SendReport:
    stats, catalogue = state.stats, state.catalogue
    receivers = [
        {
            "id": f"{e.ident:016x}",
            "name": e.name,
            "address": e.address,
            "label": _label(e),
            "status": _receiver_status(e),
            "bytes_done": e.bytes_done,
            "blocks_done": e.blocks_done,
            "loss_ppm": e.loss_ppm,
            "kernel_drops": e.drops,
            "nacks": e.nacks,
            "nack_entries": e.nack_entries,
            "times_dropped": e.times_dropped,
            "seconds_to_done": None if e.done_at is None else round(e.done_at - state.started, 6),
        }
        for e in state.receivers.values()
    ]
    rounds = stats.repair_rounds
    sending = seconds - ((state.sending_since or state.started) - state.started)
    data: dict[str, object] = {
        "schema": SEND_SCHEMA,
        "outcome": "interrupted" if interrupted else state.outcome or "incomplete",
        "group": group,
        "port": port,
        "session": f"{state.session:016x}",
        "protection": protection,
        "closed": state.config.receivers is not None,
        "files_count": len(catalogue.files),
        "files": [
            {"name": f.name, "size": f.size, "sha256": f.digest.hex()} for f in catalogue.files
        ],
        "bytes": catalogue.total_bytes,
        "seconds": round(seconds, 6),
        "sending_seconds": round(sending, 6),
        "repair_tail_seconds": (
            None
            if state.flushing_since is None
            else round(state.started + seconds - state.flushing_since, 6)
        ),
        "goodput": round(_rate(catalogue.total_bytes, sending), 3),
        "passes": state.passes_done,
        "rate_bits_per_second": state.rate.bits_per_second,
        "block_symbols": catalogue.layout.block_symbols,
        "symbol_size": catalogue.layout.symbol_size,
        "io_backend": IO_BACKEND,
        "parity_kernel": KERNEL,
        "datagrams": {
            "pass": stats.pass_datagrams,
            "repair": stats.repair_datagrams,
            "control": stats.control_datagrams,
            "data_total": stats.pass_datagrams + stats.repair_datagrams,
            "minimum": sum(state.k),
        },
        "repair": {
            "rounds": rounds,
            "topups": stats.topups,
            "nacks": stats.nacks,
            "nack_entries": stats.nack_entries,
            "stale_entries": stats.stale_entries,
            "nacks_per_repaired_block": round(stats.nack_entries / rounds, 3) if rounds else 0.0,
        },
        "receivers": receivers,
        "dropped": [r["label"] for r in receivers if r["status"] == "dropped"],
        "drop_after": state.config.drop_after,
        "rejected": dict(stats.rejected),
    }
    return SendReport(data)


@dataclass(frozen=True, slots=True)
class ReceiveReport:
    """A receive-file run: each file's fate and how the transfer went."""

    data: dict[str, object] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return str(self.data["outcome"])

    @property
    def refused(self) -> bool:
        files = self.data["files"]
        assert isinstance(files, list)
        return any(f["refused"] for f in files)

    def as_dict(self) -> dict[str, object]:
        return self.data

    def __str__(self) -> str:
        d = self.data
        lines = [
            f"receive-file: {d['outcome']}: {d['bytes_done']} of {d['bytes']} bytes "
            f"from {d['group']} port {d['port']} in {d['seconds']:.3f} s "
            f"({float(str(d['goodput'])) / _MIB:.1f} MiB/s), session {d['session']}",
            f"  {d['datagrams']} data datagrams, {d['duplicates']} duplicates, "
            f"{d['decoded_blocks']} blocks rebuilt from parity, {d['nacks_sent']} NACKs sent, "
            f"{d['suppressed']} suppressed, kernel drops {d['kernel_drops']}",
        ]
        files = d["files"]
        assert isinstance(files, list)
        for f in files:
            status = (
                "already here"
                if f["already"]
                else "received"
                if f["received"]
                else f"refused: {f['refused']}"
                if f["refused"]
                else "incomplete (partial file kept for resume)"
            )
            resumed = f", resumed {f['resumed_blocks']} blocks" if f["resumed_blocks"] else ""
            lines.append(f"  {f['name']!r} ({f['size']} bytes): {status}{resumed}")
        if d["rejected"]:
            lines.append(f"  rejected datagrams: {d['rejected']}")
        return "\n".join(lines)


def receive_report(
    state: ReceiverState,
    *,
    group: str,
    port: int,
    output: str,
    seconds: float,
    interrupted: bool,
    first_data: float | None,
) -> ReceiveReport:
    stats = state.stats
    session = state.session
    total = sum(f.size for f in state.files.values())
    done = state.bytes_done if session is not None else 0
    receiving = seconds if first_data is None else seconds - (first_data - state.started)
    data: dict[str, object] = {
        "schema": RECEIVE_SCHEMA,
        "outcome": "interrupted" if interrupted else state.ending or "incomplete",
        "group": group,
        "port": port,
        "output": output,
        "receiver": f"{state.ident:016x}",
        "name": state.config.name,
        "session": None if session is None else f"{session.origin:016x}",
        "files": [
            {
                "name": o.name,
                "size": o.size,
                "received": o.received,
                "already": o.already,
                "resumed_blocks": o.resumed_blocks,
                "refused": o.refused,
                "digest_failures": o.digest_failures,
            }
            for o in state.outcomes.values()
        ],
        "bytes": total,
        "bytes_done": done,
        "seconds": round(seconds, 6),
        "goodput": round(_rate(done, receiving), 3),
        "datagrams": stats.data,
        "duplicates": stats.duplicates,
        "early": stats.early,
        "decoded_blocks": stats.decoded_blocks,
        "nacks_sent": stats.nacks_sent,
        "nack_entries": stats.nack_entries,
        "suppressed": stats.suppressed,
        "parity_dropped": stats.parity_dropped,
        "loss_ppm": state.loss_ppm,
        "kernel_drops": state.kernel_drops,
        "io_backend": IO_BACKEND,
        "parity_kernel": KERNEL,
        "rejected": dict(stats.rejected),
    }
    return ReceiveReport(data)


def _bar(done: int, total: int, width: int = 24) -> str:
    share = done / total if total else 1.0
    filled = int(share * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {share * 100:5.1f}%"


class Progress:
    """Live progress lines on a terminal, redrawn in place (nothing when ``stream`` is None)."""

    def __init__(self, stream: TextIO | None, interval: float = 0.5) -> None:
        self.stream = stream
        self.interval = interval
        self._next = 0.0
        self._lines = 0

    def due(self, now: float) -> bool:
        if self.stream is None or now < self._next:
            return False
        self._next = now + self.interval
        return True

    def _draw(self, lines: list[str]) -> None:
        assert self.stream is not None
        up = f"\x1b[{self._lines}F\x1b[J" if self._lines else ""
        self.stream.write(up + "\n".join(lines) + "\n")
        self.stream.flush()
        self._lines = len(lines)

    def sender(self, state: SenderState, sent_bytes: int, seconds: float) -> None:
        total = state.catalogue.total_bytes
        lines = [
            f"send-file: {state.phase.name.lower()} pass {state.pass_number + 1}, "
            f"{_rate(sent_bytes, seconds) / _MIB:.1f} MiB/s on the wire, "
            f"{state.stats.repair_rounds} repair rounds, {len(state.receivers)} receiver(s)"
        ]
        for entry in state.receivers.values():
            lines.append(
                f"  {_label(entry)[:40]:40} {_bar(entry.bytes_done, total)} "
                f"{_receiver_status(entry)}"
            )
        self._draw(lines)

    def receiver(self, state: ReceiverState, seconds: float) -> None:
        total = sum(f.size for f in state.files.values())
        done = state.bytes_done if state.session is not None else 0
        self._draw(
            [
                f"receive-file: {_bar(done, total)} {done / _MIB:.1f} MiB, "
                f"{_rate(done, seconds) / _MIB:.1f} MiB/s, loss {state.loss_ppm / 1e4:.2f} %"
            ]
        )
