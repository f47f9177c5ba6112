"""Session guard and shared fixtures.

Every test may send or join multicast groups, so the whole session refuses to start unless it
runs in the private network namespace that ``scripts/netns-run`` makes (``make test`` does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from multicast.testbed import Testbed, private_namespace_problem


def pytest_configure(config: pytest.Config) -> None:
    problem = private_namespace_problem()
    if problem is not None:
        pytest.exit(
            f"tests send multicast and must run in a private network namespace: {problem}; "
            "run them as `scripts/netns-run .venv/bin/python -m pytest` (or `make test`)",
            returncode=3,
        )


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    """An empty test bed: add hosts, links and bridges; all of it is removed afterwards."""
    with Testbed() as bed:
        yield bed


@pytest.fixture
def exit_stack() -> Iterator[contextlib.ExitStack]:
    """Sockets and other resources a test enters here are closed when it ends, pass or fail."""
    with contextlib.ExitStack() as stack:
        yield stack
