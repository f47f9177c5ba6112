"""The command lines the documents show (README.md, docs/cli.md, docs/why-did-my-stream-stop.md)
are ones the command accepts. In the namespace: parsing an ``--iface`` looks the interface up."""

from __future__ import annotations

import re
import shlex

import pytest

from multicast.cli import McastDispatch
from multicast.exceptions import MulticastError

from support import REPOSITORY

DOCUMENTS = ["README.md", "docs/cli.md", "docs/why-did-my-stream-stop.md"]
# Interfaces the documents name that this host may not have: parsed as `lo` instead.
EXAMPLE_INTERFACES = re.compile(r"(?<=[\s%])(eth\d|br\d)\b")


def documented_command_lines() -> list[tuple[str, list[str]]]:
    """Each ``multicast ...`` line of the documents' code blocks: its document and argv."""
    found = []
    for name in DOCUMENTS:
        text = (REPOSITORY / name).read_text()
        for block in re.findall(r"```(?:sh)?\n(.*?)```", text, flags=re.S):
            written = block.replace("\\\n", " ").splitlines()
            if any(line.startswith("$ ") for line in written):  # a transcript: its commands
                written = [line.removeprefix("$ ") for line in written if line.startswith("$ ")]
            for each in written:
                line = each.split("#")[0].split("|")[-1].strip()
                if line.startswith("multicast "):
                    found.append((name, shlex.split(EXAMPLE_INTERFACES.sub("lo", line))[1:]))
    return found


def test_every_documented_command_line_is_accepted_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A command line a user copies from the documents is one the command accepts: no option
    that does not exist, no value it refuses (a rate such as ``--rate 100`` is also warned
    about when it is under a datagram a second: the documents write ``pps``)."""
    lines = documented_command_lines()
    assert len(lines) > 30
    parser = McastDispatch().buildArgs(None)
    refused = []
    for document, argv in lines:
        try:
            parser.parse_args(argv)
        except SystemExit as done:  # --help, --version
            assert done.code == 0, argv
        except MulticastError as error:
            refused.append(f"{document}: multicast {shlex.join(argv)}: {error}")
        rates = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "--rate"]
        refused += [
            f"{document}: --rate {r}: a bare number is bits/s" for r in rates if r.isdigit()
        ]
    assert refused == []
