"""The test suite's own promises: unit tests run anywhere and never reach the network, and a
socket left open fails the test that leaked it (in both folders: pyproject.toml's settings)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPOSITORY
from support.offline import NetworkRefusedError, refusing_the_network


def pytest_run(*arguments: str, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGUMENTS`` with this repository's settings, outside any namespace
    as far as the guards can tell (no ``MULTICAST_NETNS``)."""
    environment = {k: v for k, v in os.environ.items() if k != "MULTICAST_NETNS"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_unit_test_opens_no_network_socket_and_starts_no_other_program() -> None:
    with refusing_the_network() as refused:
        with pytest.raises(NetworkRefusedError, match="open a socket of family AF_INET6 "):
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
        with pytest.raises(NetworkRefusedError, match=r"start 'ip' .*; move it to tests/network"):
            subprocess.run(["ip", "-V"], capture_output=True, check=False)
        local, other = socket.socketpair()  # AF_UNIX: stays on this machine
        local.close()
        other.close()
        python = subprocess.run(
            [sys.executable, "-c", "print('ran')"], capture_output=True, text=True, check=True
        )
    assert python.stdout == "ran\n"
    assert len(refused) == 2


def test_the_unit_tests_are_collected_outside_any_namespace() -> None:
    done = pytest_run("--collect-only", "tests/unit")
    assert done.returncode == 0, done.stdout + done.stderr
    assert " tests collected" in done.stdout


def test_a_leaked_socket_fails_its_test(tmp_path: Path) -> None:
    leaking = tmp_path / "test_leaking.py"
    leaking.write_text("import socket\n\n\ndef test_leaks():\n    socket.socketpair()\n")
    done = pytest_run("-c", str(REPOSITORY / "pyproject.toml"), str(leaking), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ResourceWarning: unclosed <socket.socket" in done.stdout
    assert "1 failed" in done.stdout
