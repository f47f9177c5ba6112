"""The command line against generated command lines (issue 12): each one runs as its own
``python -m multicast`` process in this namespace, with its standard streams open, closed or
a pipe nobody reads, and is bounded in time: still running after ``CASE_LIMIT`` seconds, it
gets SIGINT as a user's Ctrl-C, and it must then end within ``AFTER_SIGINT`` seconds.

Every one must end without a traceback or an "internal error", with an exit code its command
documents (``multicast.exitcodes.COMMAND_EXIT_CODES``, shown by its ``--help``). The lists
come from the real parser's commands and options (``support.commandlines``), seeded: a
failure names its seed and its command line. The normal suite runs a sample; ``-m soak``
runs 10,000.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from multicast.exitcodes import COMMAND_EXIT_CODES

from support.cli import clean_environment
from support.commandlines import (
    PLAUSIBLE,
    argument_lists,
    command_options,
    documented_codes,
    prepare_directory,
)

CASE_LIMIT = 1.5  # seconds a command may run before it gets SIGINT
AFTER_SIGINT = 5.0  # seconds it then has to end
WORKERS = 4  # commands running at once

# How each case's standard streams are set up: a shell redirection, and whether standard
# output is a pipe whose reader goes away at once (`| head -c0`).
STREAMS = [("", False)] * 14 + [("<&-", False), (">&-", False), ("2>&-", False), ("", True)]


@dataclass(frozen=True)
class Outcome:
    argv: list[str]
    streams: str
    code: int
    output: str
    interrupted: bool  # it was still running at the time limit


UNBOUNDED = [
    ["RECV", "--group", "239.255.0.1"],
    ["monitor", "239.255.0.2", "--port", "5000"],
    ["pong", "239.255.0.3"],
]


def run_case(
    argv: list[str], redirect: str, unread: bool, directory: str, limit: float = CASE_LIMIT
) -> Outcome:
    """Run one command line as a process; interrupt it at the time ``limit``, as Ctrl-C would."""
    stdout: int = subprocess.PIPE
    if unread:  # a pipe whose reader is gone before the command starts
        read_end, stdout = os.pipe()
        os.close(read_end)
    interrupted = False
    with subprocess.Popen(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", sys.executable, "-m", "multicast", *argv],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE if unread else subprocess.STDOUT,
        cwd=directory,
        env=clean_environment(),
    ) as process:
        if unread:
            os.close(stdout)
        try:
            out, err = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            interrupted = True
            process.send_signal(signal.SIGINT)
            try:
                out, err = process.communicate(timeout=AFTER_SIGINT)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
                return Outcome(argv, redirect or "unread" * unread, -999, "", interrupted)
    text = (err if unread else out) or b""
    code = process.returncode
    if code == -signal.SIGINT and interrupted:
        code = 130  # ended by the SIGINT as it exited (the shell shows 130): the rule holds
    return Outcome(
        argv, redirect or "unread" * unread, code, text.decode(errors="replace"), interrupted
    )


def ended_by_itself(outcome: Outcome, directory: str) -> bool:
    """Whether the case, run again with no time limit short of ``AFTER_SIGINT`` (and never
    interrupted), ends by itself with the code it had after its SIGINT: then the SIGINT only
    raced its exit (a loaded machine starts Python slowly), and that code is its own."""
    streams = outcome.streams if outcome.streams not in ("", "unread") else ""
    again = run_case(
        outcome.argv, streams, outcome.streams == "unread", directory, limit=AFTER_SIGINT
    )
    return not again.interrupted and again.code == outcome.code


def problems(outcome: Outcome, directory: str) -> list[str]:
    """What is wrong with one case's end: empty when it ended as documented."""
    found = []
    documented = documented_codes(outcome.argv)
    if outcome.code not in documented:
        found.append(f"exit code {outcome.code}, not one of {sorted(documented)}")
    elif (  # the rule: a run Ctrl-C ended is 130
        outcome.interrupted and outcome.code != 130 and not ended_by_itself(outcome, directory)
    ):
        found.append(f"exit code {outcome.code} after SIGINT, not 130")
    for bad in ("Traceback", "internal error", "Exception ignored"):
        if bad in outcome.output:
            found.append(f"{bad!r} in its output")
    return found


def fuzz_command_lines(count: int, seed: int) -> None:
    rng = random.Random(seed)
    lists = argument_lists(count, seed)
    streams = [rng.choice(STREAMS) for _ in lists]
    # Runs that only a signal ends, whatever the sample drew: the SIGINT path is always taken.
    lists += UNBOUNDED
    streams += [rng.choice(STREAMS) for _ in UNBOUNDED]
    with tempfile.TemporaryDirectory() as directory, ThreadPoolExecutor(WORKERS) as pool:
        prepare_directory(Path(directory))
        outcomes = list(
            pool.map(
                lambda case: run_case(case[0], *case[1], directory),
                zip(lists, streams, strict=True),
            )
        )
        failures = [
            f"{outcome.argv!r} ({outcome.streams or 'open streams'}"
            f"{', interrupted' if outcome.interrupted else ''}): {'; '.join(found)}\n"
            f"{outcome.output[-1500:]}"
            for outcome in outcomes
            if (found := problems(outcome, directory))
        ]
    assert not failures, f"seed {seed}: {len(failures)} of {count} failed\n" + "\n".join(
        failures[:10]
    )
    # The sample reached the paths it is meant to: interrupted runs and each kind of stream.
    assert any(outcome.interrupted for outcome in outcomes)
    assert {outcome.streams for outcome in outcomes} >= {"", "<&-", ">&-", "2>&-", "unread"}


def test_every_option_of_every_command_is_generated_with_values() -> None:
    """The generator sees each command's options (the tools add theirs when their parser is
    first used), and has sensible values for each option that takes one."""
    options = command_options()
    assert set(options) == set(COMMAND_EXIT_CODES) - {"multicast"}
    for name in ("monitor", "querier", "send-file", "receive-file"):
        assert len(options[name]) > 10, (name, options[name])
    valued = {option for listed in options.values() for option, takes in listed if takes}
    assert sorted(valued - set(PLAUSIBLE)) == []


def test_generated_command_lines_end_as_documented() -> None:
    fuzz_command_lines(300, seed=12)


@pytest.mark.soak
@pytest.mark.timeout(3600)  # about 10 minutes on 2 cores
def test_10000_generated_command_lines_end_as_documented() -> None:
    fuzz_command_lines(10_000, seed=1200)
