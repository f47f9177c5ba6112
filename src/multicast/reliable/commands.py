"""``multicast send-file FILE... GROUP`` and ``multicast receive-file GROUP --output DIR``.

Exit status (beyond the command line's own: 2 refused by the system, 64 usage, 130
interrupted): 0 every receiver (send-file) or every file (receive-file) complete; 1 the
session ended incomplete (a receiver dropped, the sender gone: partial files are kept for
a later run to resume); 3 nothing to do it with (a closed session's receivers did not all
join within ``--wait``; no session heard within ``--wait``); 4 a file was refused (an unsafe
name, or a SHA-256 that did not match twice).
"""

from __future__ import annotations

import argparse
import math
import socket

from multicast.cliargs import add_iface, add_port, add_ttl, group_type
from multicast.exceptions import OptionError, UsageError
from multicast.reliable.receiver_state import ReceiverState
from multicast.reliable.receiving import ReceiverConfig
from multicast.reliable.report import ReceiveReport, SendReport
from multicast.reliable.sender_state import SenderConfig, SenderState
from multicast.reliable.transfer import (
    DEFAULT_BLOCK,
    DEFAULT_DATAGRAM,
    receive_files,
    send_files,
    terminal_progress,
)
from multicast.tools.options import add_json, add_key, emit, key_of, positive_type, seconds_type
from multicast.tools.pacing import parse_rate

__all__ = ["RECEIVE_FILE", "SEND_FILE"]

DEFAULT_RATE = "100M"
EXIT_INCOMPLETE = 1
EXIT_NOTHING = 3
EXIT_REFUSED = 4


def _rate_type(text: str) -> float | None:
    try:
        rate = parse_rate(text)
    except OptionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if rate.unit == "datagrams":
        raise argparse.ArgumentTypeError(
            f"rate {text!r}: give bits or bytes per second (10M, 1Gbps, 50MBps) or max"
        )
    return rate.bits_per_second()


def _drop_type(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0.2 <= seconds <= 2.0:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0.2-2 seconds")
    return seconds


def _session_type(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"session {text!r} is not a hexadecimal id") from None


class SendFileTool:
    """``multicast send-file FILE... GROUP``."""

    help = "send files to every receiver of a group, whole: NACK repair with parity (FEC)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="files to send")
        parser.add_argument("group", type=group_type, metavar="GROUP", help="multicast group")
        add_port(parser, help_text="UDP port of the data; receivers answer on PORT+1")
        add_iface(parser, help_text="send by this interface (name, index or address)")
        add_ttl(parser)
        parser.add_argument(
            "--no-loopback", action="store_true", help="receivers on this host get nothing"
        )
        parser.add_argument(
            "--rate",
            type=_rate_type,
            default=_rate_type(DEFAULT_RATE),
            metavar="RATE",
            help=f"bits/s as iperf2 (10M, 1G), bytes/s (50MBps) or max (default {DEFAULT_RATE})",
        )
        parser.add_argument(
            "--adaptive",
            action="store_true",
            help="follow the slowest receiver's loss, up to --rate (see docs/cli.md)",
        )
        session = parser.add_mutually_exclusive_group()
        session.add_argument(
            "--receivers",
            type=positive_type,
            metavar="N",
            help="closed session: wait for N receivers, finish when all N have everything",
        )
        session.add_argument(
            "--repeat",
            type=positive_type,
            default=None,
            metavar="N",
            help="open session (carousel): send every file N times (default 1)",
        )
        parser.add_argument(
            "--duration",
            type=seconds_type,
            metavar="SECONDS",
            help="open session: repeat the files for this long",
        )
        parser.add_argument(
            "--wait",
            type=seconds_type,
            default=30.0,
            metavar="SECONDS",
            help="closed session: how long to wait for the receivers (default %(default)s)",
        )
        parser.add_argument(
            "--drop-after",
            type=_drop_type,
            default=1.5,
            metavar="SECONDS",
            help="drop a receiver silent this long, 0.2-2 (default %(default)s)",
        )
        parser.add_argument(
            "--parity",
            type=int,
            default=0,
            choices=range(0, 128),
            metavar="N",
            help="parity datagrams sent with every block before anyone asks (default 0)",
        )
        parser.add_argument(
            "--block",
            type=positive_type,
            default=DEFAULT_BLOCK,
            metavar="N",
            help="data datagrams per block, 1-128 (default %(default)s)",
        )
        parser.add_argument(
            "--datagram-size",
            type=positive_type,
            default=DEFAULT_DATAGRAM,
            metavar="BYTES",
            help="UDP payload of data datagrams (default %(default)s: a 1500-byte MTU)",
        )
        add_key(parser)
        parser.add_argument(
            "--encrypt", action="store_true", help="encrypt with AES-256-GCM under the key"
        )
        add_json(parser)

    def run(self, args: argparse.Namespace) -> int:
        if args.duration is not None and args.receivers is not None:
            raise UsageError("--duration is for open sessions; --receivers makes it closed")
        if args.encrypt and args.key_file is None and args.key_env is None:
            raise UsageError("--encrypt needs a key: give --key-file or --key-env")
        config = SenderConfig(
            receivers=args.receivers,
            repeat=args.repeat or 1,
            duration=args.duration,
            parity=args.parity,
            wait=args.wait,
            drop_after=args.drop_after,
        )
        progress = terminal_progress()

        def show(state: SenderState, sent: int, seconds: float) -> None:
            if progress.due(seconds):
                progress.sender(state, sent, seconds)

        report = send_files(
            args.files,
            args.group,
            args.port,
            rate=args.rate,
            adaptive=args.adaptive,
            config=config,
            block_symbols=args.block,
            datagram_size=args.datagram_size,
            interface=args.iface,
            ttl=args.ttl,
            loopback=not args.no_loopback,
            key=key_of(args),
            encrypt=args.encrypt,
            progress=show if progress.stream is not None else None,
        )
        emit(report, args)
        return _send_code(report)


def _send_code(report: SendReport) -> int:
    if report.outcome == "interrupted":
        raise KeyboardInterrupt
    if report.outcome == "complete":
        return 0
    return EXIT_NOTHING if report.outcome == "no-receivers" else EXIT_INCOMPLETE


class ReceiveFileTool:
    """``multicast receive-file GROUP --output DIR``."""

    help = "receive the files a send-file session multicasts, whole and checked"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("group", type=group_type, metavar="GROUP", help="multicast group")
        parser.add_argument(
            "--output", required=True, metavar="DIR", help="directory the files go into"
        )
        add_port(parser, help_text="UDP port of the data; NACKs and reports go to PORT+1")
        add_iface(parser, help_text="join on this interface (name, index or address)")
        add_ttl(parser, help_text="TTL (IPv6 hop limit) of NACKs and reports (default %(default)s)")
        parser.add_argument(
            "--wait",
            type=seconds_type,
            default=None,
            metavar="SECONDS",
            help="give up if no session is heard this long (default: wait on)",
        )
        parser.add_argument(
            "--idle",
            type=seconds_type,
            default=5.0,
            metavar="SECONDS",
            help="give up when the sender is silent this long (default %(default)s)",
        )
        parser.add_argument(
            "--name", default=None, help="how the sender's report names us (default: host name)"
        )
        parser.add_argument(
            "--session", type=_session_type, default=None, metavar="ID", help="only this session"
        )
        add_key(parser)
        add_json(parser)

    def run(self, args: argparse.Namespace) -> int:
        config = ReceiverConfig(
            name=args.name if args.name is not None else socket.gethostname(),
            wait=args.wait,
            idle=args.idle,
            session=args.session,
        )
        progress = terminal_progress()

        def show(state: ReceiverState, seconds: float) -> None:
            if progress.due(seconds):
                progress.receiver(state, seconds)

        report = receive_files(
            args.group,
            args.port,
            args.output,
            config=config,
            interface=args.iface,
            ttl=args.ttl,
            key=key_of(args),
            progress=show if progress.stream is not None else None,
        )
        emit(report, args)
        return _receive_code(report)


def _receive_code(report: ReceiveReport) -> int:
    if report.outcome == "interrupted":
        raise KeyboardInterrupt
    if report.refused:
        return EXIT_REFUSED
    if report.outcome == "complete":
        return 0
    return EXIT_NOTHING if report.outcome == "no-session" else EXIT_INCOMPLETE


SEND_FILE = SendFileTool()
RECEIVE_FILE = ReceiveFileTool()
