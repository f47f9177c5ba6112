"""The engineers' tools: ``stream``, ``monitor``, ``ping``, ``pong``, ``doctor``, ``querier``,
``membership``, and the file transfer commands ``send-file`` and ``receive-file``
(:mod:`multicast.reliable`).

:data:`TOOLS` maps each subcommand name to its :class:`~multicast.cliargs.Tool`; the
``multicast`` command line adds them. A tool's module is imported only when the tool is
used, so ``multicast SAY`` starts without them. Each tool is also a library function that
returns a report (:func:`run_stream`, :func:`run_monitor`, :func:`run_ping`,
:func:`run_pong`, :func:`run_doctor`). They speak the frame format of
:mod:`multicast.tools.framing`.

What the tools count and decide is kept in plain objects, without sockets or clocks, which
their receiving loops feed: :class:`Tally` (monitor), :class:`Answerer` (pong) and
:class:`Prober` (ping).
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from multicast.cliargs import Tool

if TYPE_CHECKING:
    from multicast.tools.doctor import DoctorReport, run_doctor
    from multicast.tools.monitor import Monitor, MonitorReport, run_monitor
    from multicast.tools.ping import PingReport, Prober, run_ping
    from multicast.tools.pong import Answerer, Pong, PongReport, run_pong
    from multicast.tools.stream import StreamReport, run_stream
    from multicast.tools.tally import Tally

__all__ = [
    "TOOLS",
    "Answerer",
    "DoctorReport",
    "Monitor",
    "MonitorReport",
    "PingReport",
    "Pong",
    "PongReport",
    "Prober",
    "StreamReport",
    "Tally",
    "run_doctor",
    "run_monitor",
    "run_ping",
    "run_pong",
    "run_stream",
]


class _Runnable(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(slots=True)
class _Deferred:
    """A tool whose module (``multicast.tools.<name>``, which defines ``TOOL``, unless
    ``home`` names another module and attribute) is imported on first use."""

    name: str
    help: str
    home: tuple[str, str] | None = None

    def _tool(self) -> _Runnable:
        module, attribute = self.home or (f"{__name__}.{self.name}", "TOOL")
        tool: _Runnable = getattr(importlib.import_module(module), attribute)
        return tool

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        self._tool().add_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        return self._tool().run(args)


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        _Deferred("stream", "send sequenced frames to a group at a set rate, for monitor to count"),
        _Deferred(
            "monitor",
            "count what arrives on groups, per flow and whatever the payload (frames, RTP, "
            "MPEG-TS, iperf2): rates, loss, jitter, delay, join latency; live, JSON or CSV",
        ),
        _Deferred("ping", "probe a group and time the replies of every pong on it"),
        _Deferred("pong", "answer ping probes on groups, by unicast to each prober"),
        _Deferred(
            "doctor", "check this host's multicast set-up and self-test each interface (TTL 0)"
        ),
        _Deferred("querier", "be the IGMP/MLD querier of a link that has none (CAP_NET_RAW)"),
        _Deferred(
            "membership",
            "show the IGMP/MLD reports, leaves and queries on the links, or this host's groups",
        ),
        _Deferred(
            "send-file",
            "send files to every receiver of a group, whole (NACK repair, parity, resume)",
            ("multicast.reliable.commands", "SEND_FILE"),
        ),
        _Deferred(
            "receive-file",
            "receive the files a send-file session multicasts, checked, into a directory",
            ("multicast.reliable.commands", "RECEIVE_FILE"),
        ),
    )
}

_HOMES = {
    "DoctorReport": "doctor",
    "run_doctor": "doctor",
    "Monitor": "monitor",
    "MonitorReport": "monitor",
    "run_monitor": "monitor",
    "PingReport": "ping",
    "Prober": "ping",
    "run_ping": "ping",
    "Answerer": "pong",
    "Pong": "pong",
    "PongReport": "pong",
    "run_pong": "pong",
    "StreamReport": "stream",
    "run_stream": "stream",
    "Tally": "tally",
}


def __getattr__(name: str) -> Any:
    """The library names above, each imported from its tool's module when first asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
