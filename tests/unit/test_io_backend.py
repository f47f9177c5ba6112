"""Which batch backend the package uses: ``MULTICAST_IO`` read at import, in a fresh Python."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from multicast.core import IO_BACKEND, batch


def _backend(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MULTICAST_IO"}
    if value is not None:
        env["MULTICAST_IO"] = value
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", "import multicast.core as c; print(c.IO_BACKEND)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_the_backend_in_use_is_named() -> None:
    assert ("extension" if batch._fastio is not None else "ctypes") == IO_BACKEND


def test_ctypes_forces_the_fallback() -> None:
    assert _backend("ctypes").stdout == "ctypes\n"
    assert _backend(" CTYPES ").stdout == "ctypes\n"


def test_auto_and_extension_use_the_extension_where_it_is_built() -> None:
    if batch._fastio is None:
        pytest.skip("the C extension is not built")
    for value in (None, "", "auto", "extension"):
        done = _backend(value)
        assert (done.stdout, done.stderr) == ("extension\n", "")


def test_an_unknown_value_warns_and_chooses_as_auto() -> None:
    done = _backend("fast")
    assert done.stdout == IO_BACKEND + "\n"
    assert "MULTICAST_IO='fast' is none of extension, ctypes, auto" in done.stderr
