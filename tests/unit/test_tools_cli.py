"""The tools' registration on the ``multicast`` command line."""

from __future__ import annotations

import argparse

from multicast.cliargs import Tool
from multicast.tools import TOOLS


def test_the_tools_are_registered() -> None:
    assert set(TOOLS) == {
        "stream",
        "monitor",
        "ping",
        "pong",
        "doctor",
        "querier",
        "membership",
        "send-file",
        "receive-file",
    }
    tools: dict[str, Tool] = TOOLS  # the contract each tool keeps
    for name, tool in tools.items():
        assert tool.help and tool.help[0].islower()
        parser = argparse.ArgumentParser(prog=name, add_help=False)
        tool.add_arguments(parser)
        assert parser.format_usage().strip() != f"usage: {name}", f"{name} adds no arguments"
