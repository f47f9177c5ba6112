"""The acceptance files of the reference documents, run verbatim with ``python -m doctest``.

Each file runs in a subprocess of its own (003 imports a different ``multicast`` API into the
same name), from ``../shared/acceptance/`` next to the repository. A failure shows doctest's
own report.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from support import ACCEPTANCE, REPOSITORY
from support.cli import clean_environment

FILES = ["seed_000_hear.txt", "seed_001_recv.txt", "seed_002_skt.txt", "seed_003_poller.txt"]


@pytest.mark.parametrize("name", FILES)
def test_acceptance_file_passes_verbatim(name: str) -> None:
    path = ACCEPTANCE / name
    assert path.is_file(), f"acceptance file {path} is missing"
    done = subprocess.run(
        [sys.executable, "-m", "doctest", str(path)],
        cwd=REPOSITORY,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{name} failed:\n{done.stdout}{done.stderr}", pytrace=False)
