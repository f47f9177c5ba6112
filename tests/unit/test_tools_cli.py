"""The tools' registration on the ``multicast`` command line."""

from __future__ import annotations

from multicast.cliargs import Tool
from multicast.tools import TOOLS


def test_the_tools_are_registered() -> None:
    assert set(TOOLS) == {"stream", "monitor", "ping", "pong", "doctor"}
    tools: dict[str, Tool] = TOOLS  # the contract, checked by mypy
    for tool in tools.values():
        assert callable(tool.add_arguments) and callable(tool.run)
        assert tool.help and tool.help[0].islower()
