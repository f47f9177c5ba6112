"""The package face: its names load on first use, its defaults live in ``multicast.defaults``.

No socket is opened here: these tests run anywhere (the defaults reaching HEAR's server, which
opens one, are in ``tests/network/test_package_face.py``).
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import multicast
from multicast import defaults, exceptions, exitcodes
from multicast.testing import TestbedError


def loaded_after(statement: str) -> list[str]:
    """The ``multicast`` modules a fresh interpreter has loaded after ``statement``."""
    probe = f"{statement}\nimport sys\nprint(*sorted(m for m in sys.modules if 'multicast' in m))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


def test_importing_the_package_loads_none_of_its_modules() -> None:
    assert loaded_after("import multicast") == ["multicast"]
    assert "multicast.events" not in loaded_after("import multicast; multicast.genSocket")


def test_each_name_of_the_face_is_the_one_of_its_home() -> None:
    homes = {
        "genSocket": "multicast.skt",
        "endSocket": "multicast.skt",
        "mtool": "multicast.cliargs",
        "EXIT_CODES": "multicast.exitcodes",
        "EXCEPTION_EXIT_CODES": "multicast.exitcodes",
        "exit_on_exception": "multicast.exitcodes",
        "get_exit_code_from_exception": "multicast.exitcodes",
        "CommandExecutionError": "multicast.exceptions",
        "ShutdownCommandReceived": "multicast.exceptions",
        "Poller": "multicast.events",
        "_defaultPoller": "multicast.events",
    }
    for name, home in homes.items():
        assert getattr(multicast, name) is getattr(importlib.import_module(home), name), name
    for face in ("skt", "send", "recv", "hear", "env", "exceptions", "__main__"):
        assert getattr(multicast, face) is importlib.import_module(f"multicast.{face}")
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        multicast.nothing  # noqa: B018


def test_star_import_gives_every_name_of_all() -> None:
    namespace: dict[str, object] = {}
    exec("from multicast import *", namespace)
    assert set(multicast.__all__) <= set(namespace)


def test_exceptions_still_has_the_exit_codes_of_the_reference() -> None:
    for name in exitcodes.__all__:
        assert getattr(exceptions, name) is getattr(exitcodes, name)
    assert set(exitcodes.__all__) <= set(exceptions.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'EXIT'"):
        exceptions.EXIT  # noqa: B018
    with pytest.raises(ValueError, match="between 0 and 255, not 256"):
        exceptions.CommandExecutionError("failed", 256)


def test_the_test_bed_error_is_a_multicast_error() -> None:
    assert issubclass(TestbedError, exceptions.MulticastError)
    assert issubclass(TestbedError, RuntimeError)


@pytest.mark.usefixtures("changed_defaults")
def test_assigning_a_default_through_the_package_assigns_it_in_defaults() -> None:
    assert (defaults._MCAST_DEFAULT_PORT, defaults._MCAST_DEFAULT_GROUP) == (50123, "239.7.7.7")
    assert (defaults._MCAST_DEFAULT_TTL, defaults._MCAST_DEFAULT_BUFFER_SIZE) == (9, 100)
    assert defaults._MCAST_DEFAULT_GROUPS == ["239.7.7.8"]
    assert multicast._MCAST_DEFAULT_PORT == 50123
    assert not any(name.startswith("_MCAST_DEFAULT_") for name in vars(multicast))
    with pytest.raises(AttributeError):
        del multicast._MCAST_DEFAULT_PORT


def test_other_attributes_of_the_package_behave_as_usual() -> None:
    multicast.scratch = 1  # type: ignore[attr-defined]
    assert vars(multicast)["scratch"] == 1
    del multicast.scratch  # type: ignore[attr-defined]
    assert "scratch" not in vars(multicast)
