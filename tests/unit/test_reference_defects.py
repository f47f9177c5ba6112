"""Defects 3 and 6 of the reference package (issue 3), each test failing on multicast 2.1.1:
importing the package sets the default socket timeout and prints warnings; the exception ->
exit-code mapping is wrong in several cases."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys

import pytest

from multicast.exceptions import (
    EXIT_CODES,
    CommandExecutionError,
    GroupError,
    ShutdownCommandReceived,
    exit_on_exception,
    get_exit_code_from_exception,
)

from support.cli import WAIT, clean_environment

# --- 3. Importing changes nothing outside the package ------------------------------------------


IMPORT_PROBE = """
import logging, os, socket, sys, warnings
fds = sorted(os.listdir("/proc/self/fd"))
filters = list(warnings.filters)
handlers = list(logging.getLogger().handlers)
import multicast
from multicast import *
assert socket.getdefaulttimeout() is None, socket.getdefaulttimeout()
assert sorted(os.listdir("/proc/self/fd")) == fds, "an fd was left open"
assert warnings.filters == filters, "warning filters changed"
assert logging.getLogger().handlers == handlers, "root logging changed"
assert "multicast.__main__" not in sys.modules
print(multicast._MCAST_DEFAULT_PORT, multicast._MCAST_DEFAULT_GROUP, multicast._MCAST_DEFAULT_TTL)
"""


def test_import_sets_no_default_timeout_and_prints_nothing() -> None:
    environment = clean_environment(
        MULTICAST_PORT="1024", MULTICAST_GROUP="bogus", MULTICAST_TTL="500"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", IMPORT_PROBE],
        env=environment,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "59259 224.0.0.1 1\n"


# --- 6. Exit codes -----------------------------------------------------------------------------


def _instance(kind: type[BaseException]) -> BaseException:
    return argparse.ArgumentError(None, "bad") if kind is argparse.ArgumentError else kind()


@pytest.mark.parametrize(
    ("code", "kind"), [(code, kind) for code, (kind, _) in EXIT_CODES.items() if kind is not None]
)
def test_every_exception_of_the_table_gets_its_code(code: int, kind: type[BaseException]) -> None:
    assert get_exit_code_from_exception(_instance(kind)) == code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ShutdownCommandReceived(), 143),  # the reference: 1
        (CommandExecutionError("denied", 77), 77),  # the reference: 1
        (CommandExecutionError("failed"), 1),
        (ConnectionRefusedError(), 69),  # a ConnectionError; the reference: 2
        (BrokenPipeError(), 141),
        (TimeoutError(), 2),  # an OSError
        (socket.gaierror(), 2),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), 65),
        (GroupError("bad group"), 65),  # a ValueError
        (ImportError(), 70),
        (TypeError(), 70),
        ("not an exception", 70),
    ],
)
def test_the_most_specific_class_or_own_exit_code_wins(error: object, code: int) -> None:
    assert get_exit_code_from_exception(error) == code


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (SystemExit(3), 3),  # the reference: KeyError
        (SystemExit(None), 0),
        (SystemExit("a message"), 1),
        (SystemExit(300), 255),
        (ValueError("bad"), 65),
        (KeyboardInterrupt(), 130),
        (ShutdownCommandReceived(), 143),
    ],
)
def test_exit_on_exception_exits_with_the_right_code(raised: BaseException, code: int) -> None:
    @exit_on_exception
    def fail() -> None:
        raise raised

    with pytest.raises(SystemExit) as exited:
        fail()
    assert exited.value.code == code
