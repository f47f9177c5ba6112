"""Helpers shared by the tests of ``tests/unit`` and ``tests/network`` (no tests here).

Importable as ``support`` through pytest's ``pythonpath`` setting (pyproject.toml); test
modules import from here, never from one another.
"""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
ACCEPTANCE = REPOSITORY.parent / "shared" / "acceptance"  # the reference documents' examples
