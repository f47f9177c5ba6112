"""The engineers' tools: ``stream``, ``monitor``, ``ping``, ``pong`` and ``doctor``.

:data:`TOOLS` maps each subcommand name to its :class:`~multicast.cliargs.Tool`; the
``multicast`` command line adds them. Each tool is also a library function that returns a
report (:func:`run_stream`, :func:`run_monitor`, :func:`run_ping`, :func:`run_pong`,
:func:`run_doctor`). They speak the frame format of :mod:`multicast.tools.framing`.
"""

from __future__ import annotations

from multicast.cliargs import Tool
from multicast.tools.doctor import DoctorReport, DoctorTool, run_doctor
from multicast.tools.monitor import Monitor, MonitorReport, MonitorTool, run_monitor
from multicast.tools.ping import PingReport, PingTool, run_ping
from multicast.tools.pong import Pong, PongReport, PongTool, run_pong
from multicast.tools.stream import StreamReport, StreamTool, run_stream

__all__ = [
    "TOOLS",
    "DoctorReport",
    "Monitor",
    "MonitorReport",
    "PingReport",
    "Pong",
    "PongReport",
    "StreamReport",
    "run_doctor",
    "run_monitor",
    "run_ping",
    "run_pong",
    "run_stream",
]

TOOLS: dict[str, Tool] = {
    "stream": StreamTool(),
    "monitor": MonitorTool(),
    "ping": PingTool(),
    "pong": PongTool(),
    "doctor": DoctorTool(),
}
