"""The guard and fixtures of ``tests/network``: tests that send, join or build hosts.

They run only in the private network namespace that ``scripts/netns-run`` makes (``make test``
and ``make unit`` do): elsewhere, a session that collects this folder stops before its first
test, saying why. ``tests/unit`` needs no namespace.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator

import pytest

from multicast.testing import Testbed, private_namespace_problem


def pytest_configure(config: pytest.Config) -> None:
    problem = private_namespace_problem()
    if problem is not None:
        pytest.exit(
            f"tests/network sends multicast and must run in a private network namespace: "
            f"{problem}; run it as `scripts/netns-run .venv/bin/python -m pytest` (or `make "
            "unit`); `pytest tests/unit` runs anywhere",
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


@pytest.fixture(scope="session")
def other_source() -> Iterator[dict[socket.AddressFamily, str]]:
    """A second local source address per family (on ``lo``), for source-specific tests on one
    host: ``127.0.0.2`` is local already; the IPv6 one is added for the session."""
    addresses = {socket.AF_INET: "127.0.0.2", socket.AF_INET6: "2001:db8:ffff::2"}
    ipv6 = addresses[socket.AF_INET6] + "/128"
    subprocess.run(["ip", "-6", "addr", "add", ipv6, "dev", "lo", "nodad"], check=True)
    yield addresses
    subprocess.run(["ip", "-6", "addr", "del", ipv6, "dev", "lo"], check=True)
