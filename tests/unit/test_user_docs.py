"""What a user reads first (issue 12): the README starts with installing and using the
package, the developer targets after; docs/cli.md lists each difference from the reference
with its reason."""

from __future__ import annotations

import argparse
import re

from multicast.cli import McastDispatch
from multicast.exitcodes import COMMAND_EXIT_CODES

from support import REPOSITORY


def headings(path: str) -> list[str]:
    text = (REPOSITORY / path).read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # comments in code are not headings
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("## ")]


def test_the_readme_starts_with_what_a_user_needs() -> None:
    found = headings("README.md")
    assert found[:4] == [
        "Install",
        "Quick start: two terminals",
        "Measure: stream and monitor, ping and pong",
        "Check a host: doctor",
    ]
    assert found.index("For developers") > found.index("The library")
    text = (REPOSITORY / "README.md").read_text()
    before = text.split("## For developers")[0]
    for needed in ("RECV", "SAY", "stream", "monitor", "ping", "pong", "doctor", "Rate units"):
        assert needed in before, needed
    assert "make test" not in before


def test_each_difference_from_the_reference_has_its_reason() -> None:
    text = (REPOSITORY / "docs" / "cli.md").read_text()
    section = text.split("## Differences from the reference package (multicast 2.x)")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| difference | reason |"
    assert all(len(row.split(" | ")) == 2 and row.endswith(" |") for row in rows[1:])
    listed = " ".join(rows)
    assert "usage errors exit 64" in listed
    assert "unknown or misplaced arguments are refused" in listed


def test_every_option_of_every_command_is_in_the_command_line_document() -> None:
    """docs/cli.md names every option that a command's ``--help`` shows (the parsers are the
    truth: a new option without its line in the document fails here)."""
    text = (REPOSITORY / "docs" / "cli.md").read_text()
    missing = {
        name: [o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
        for name, options in help_options().items()
    }
    assert {name: found for name, found in missing.items() if found} == {}


def test_the_exit_status_table_lists_what_each_command_documents() -> None:
    """The table of docs/cli.md gives each command the exit codes of its ``--help``
    (``COMMAND_EXIT_CODES``); send-file's and receive-file's own are in their section."""
    text = (REPOSITORY / "docs" / "cli.md").read_text()
    table = text.split("| command | exit codes |")[1].split("\n\n")[0]
    listed: dict[str, set[int]] = {}
    for row in table.splitlines()[2:]:
        names, codes = row.strip("|").split(" | ")
        numbers = {int(n) for n in re.findall(r"(?<![\w.-])\d+(?![\w.-])", codes)}
        for name in re.findall(r"`([\w-]+)`", names):
            listed[name] = numbers
    own = text.split("## Reliable file transfer")[1].split("**Exit status.**")[1].split("\n\n")[0]
    for name in ("send-file", "receive-file"):
        codes = set(COMMAND_EXIT_CODES[name])
        mentioned = {int(n) for n in re.findall(r"(?<![\w.-])(\d+):", own)}
        assert codes - listed[name] <= mentioned, name
        listed[name] = codes
    assert listed == {name: set(codes) for name, codes in COMMAND_EXIT_CODES.items()}


def help_options() -> dict[str, list[str]]:
    """Each command's options, as its ``--help`` shows them (``-h``/``--help`` aside)."""
    parser = McastDispatch().buildArgs(None)
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    shown = {}
    for name, sub in commands.choices.items():
        page = sub.format_help()  # a tool's options are added when its page is first made
        shown[name] = [
            option
            for action in sub._actions
            for option in action.option_strings
            if option not in ("-h", "--help") and option in page
        ]
    return shown


def test_every_file_the_documents_name_exists() -> None:
    """A path such as ``tests/network/test_pim_routers.py`` leads to the file (the tests
    moved into ``tests/network`` once; the stream page still named the old places)."""
    named = {
        path
        for document in ("README.md", *(f"docs/{p.name}" for p in (REPOSITORY / "docs").iterdir()))
        for path in re.findall(
            r"(?:tests|examples|benchmarks|scripts)/[\w/.-]+\.(?:py|md)|scripts/[\w-]+",
            (REPOSITORY / document).read_text(),
        )
    }
    assert len(named) > 3
    assert sorted(path for path in named if not (REPOSITORY / path).exists()) == []
