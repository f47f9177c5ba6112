"""The project's own files on a fresh machine (issue 12): ``make system-deps``, ``make demo``,
``make acceptance`` and ``.ci/run``, each run with stand-ins for the programs they call
(``dpkg-query``, ``apt-get``, ``id``, ``make``) so that nothing is installed for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from support import REPOSITORY

STAND_INS = {
    # smcroute was removed, its configuration files left: dpkg -s still succeeds for it.
    "dpkg-query": 'case "$*" in *smcroute*) printf "rc ";; *) printf "ii ";; esac',
    "dpkg": "exit 0",
    "apt-get": 'echo "apt-get $*" >> "$CALLS"; echo "E: Could not open lock file" >&2; exit 100',
}


def stand_ins(tmp_path: Path, uid: int, **more: str) -> dict[str, str]:
    """An environment whose PATH finds the stand-ins first; calls land in ``$CALLS``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, body in {**STAND_INS, "id": f"echo {uid}", **more}.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "CALLS": str(calls)}


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_system_deps_installs_a_package_removed_with_its_configuration_left(
    tmp_path: Path,
) -> None:
    env = stand_ins(tmp_path, uid=0, **{"apt-get": 'echo "apt-get $*" >> "$CALLS"'})
    done = run(["make", "-s", "system-deps"], REPOSITORY, env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "calls").read_text().splitlines() == [
        "apt-get update -qq",
        "apt-get install -y -qq smcroute",
    ]


def test_system_deps_tells_a_user_what_to_run_instead(tmp_path: Path) -> None:
    done = run(["make", "-s", "system-deps"], REPOSITORY, stand_ins(tmp_path, uid=1000))
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        "system-deps: missing Debian packages: smcroute; install them as root: "
        "sudo apt-get install -y smcroute"
    )
    assert "lock" not in done.stderr
    assert (tmp_path / "calls").read_text() == ""


def copy_of_the_project(tmp_path: Path) -> Path:
    """The Makefile, the build files, .ci/ and scripts/ in a folder with nothing beside it."""
    clone = tmp_path / "alone" / "clone"
    clone.mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "setup.py", "src/multicast/reliable/_gf256.c"):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPOSITORY / name, clone / name)
    (clone / "src/multicast/core").mkdir(parents=True, exist_ok=True)
    for source in (REPOSITORY / "src/multicast/core").glob("_fastio*.[ch]"):
        shutil.copy(source, clone / "src/multicast/core" / source.name)
    for folder in (".ci", "scripts"):
        shutil.copytree(REPOSITORY / folder, clone / folder)
    return clone


def test_demo_installs_only_what_the_demo_uses(tmp_path: Path) -> None:
    clone = copy_of_the_project(tmp_path)
    done = run(["make", "-n", "demo"], clone, dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "pip install --quiet -e ." in done.stdout
    assert "[test]" not in done.stdout
    assert "scripts/system-deps iproute2 util-linux build-essential python3-dev\n" in done.stdout


def test_make_test_needs_nothing_beside_the_clone(tmp_path: Path) -> None:
    """The suite of ``make test`` reads nothing from ``../shared``; ``make acceptance`` says
    plainly that it is missing, before installing anything."""
    settings = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    testpaths = settings["tool"]["pytest"]["ini_options"]["testpaths"]
    assert "tests/acceptance" not in testpaths
    for folder in testpaths:
        for module in (REPOSITORY / folder).rglob("*.py"):
            reads = re.search(r"^from support import .*\bACCEPTANCE\b", module.read_text(), re.M)
            assert reads is None, f"{module} reads ../shared"
    clone = copy_of_the_project(tmp_path)
    done = run(["make", "acceptance"], clone, dict(os.environ))
    assert done.returncode != 0
    assert "acceptance: ../shared/acceptance is not beside this repository" in done.stderr
    assert not (clone / ".venv").exists()


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "with-shared"])
def test_ci_runs_the_acceptance_examples_when_they_are_beside_it(
    tmp_path: Path, shared: bool
) -> None:
    clone = copy_of_the_project(tmp_path)
    if shared:
        (clone.parent / "shared" / "acceptance").mkdir(parents=True)
    env = stand_ins(tmp_path, uid=0, make='echo "make $*" >> "$CALLS"')
    env.pop("CI", None)
    done = run(["bash", ".ci/run"], clone, env)
    assert done.returncode == 0, done.stderr
    made = (tmp_path / "calls").read_text().splitlines()
    if shared:
        assert made == ["make test", "make acceptance"]
    else:
        assert made == ["make test"]
        assert "../shared/acceptance is not beside this clone" in done.stdout


def test_the_license_and_classifiers_match_the_metadata() -> None:
    settings = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    assert settings["license"] == "MIT"
    assert (REPOSITORY / "LICENSE").read_text().startswith("MIT License\n")
    assert "License :: OSI Approved :: MIT License" not in settings["classifiers"]  # PEP 639
    assert any(
        c.startswith("Programming Language :: Python :: 3.11") for c in settings["classifiers"]
    )
    assert sys.version_info >= (3, 11)
