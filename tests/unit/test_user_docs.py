"""What a user reads first (issue 12): the README starts with installing and using the
package, the developer targets after; docs/cli.md lists each difference from the reference
with its reason."""

from __future__ import annotations

import re

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
