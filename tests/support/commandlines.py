"""Generated ``multicast`` command lines, from the real parser's commands and options: the
fuzz of the command line (``tests/network/test_fuzz_cli.py``) runs them."""

from __future__ import annotations

import argparse
import random

from multicast.cli import McastDispatch
from multicast.exitcodes import COMMAND_EXIT_CODES

HOSTILE = [
    "", " ", "-", "--", "=", "-m", "\udcff", "\u202e", "\n", "x" * 5000, "\u0661", "\u0665000",
    "0x10", "1e3", "1e309", "1e10", "nan", "inf", "-inf", "-0", "-1", "9" * 40, "256", "65536",
    "5_000", "255.255.255.255", "0.0.0.0", "::", "192.0.2.1", "239.1.2.3/24",
    "example.invalid", "localhost", "ff02::1%lo", "ff02::1%nosuch", "ff11::1%eth9", "eth9",
    "99999", "-5kbps", "1e400bps", "12 kbps", "10MBps", "100gpps", "\x1b]0;title\x07",
]  # fmt: skip
GROUPS = ["239.1.2.3", "224.0.0.1", "232.1.1.1", "ff11::1", "ff31::8000:1", "127.0.0.1"]
# Values that make sense for each option (the command still may not accept them together).
PLAUSIBLE = {
    "--port": ["4446", "65535"],
    "--group": ["239.1.2.3", "ff11::1"],
    "--groups": ["239.1.2.3", "239.1.2.4"],
    "--source": ["127.0.0.1", "::1"],
    "--iface": ["lo", "1", "127.0.0.1"],
    "--ttl": ["0", "1", "255"],
    "--count": ["1", "2", "0"],
    "--timeout": ["0.01", "0"],
    "--duration": ["0.01", "0"],
    "--interval": ["0.01"],
    "--wait": ["0.01"],
    "--rate": ["max", "10kpps", "1M", "1000"],
    "--size": ["64", "1200", "65507"],
    "--max-size": ["64", "70000"],
    "--burst": ["1", "8"],
    "-m": ["hello", "STOP"],
    "--message": ["hello", "STOP"],
    "--key-file": ["/dev/null", "/nonexistent", "/dev/zero", "/"],
    "--key-env": ["PATH", "MULTICAST_NOPE"],
    "--time-window": ["30", "0.5"],
}
# Commands that run until stopped get a bound most of the time (the time limit is the backstop).
BOUNDS = {
    "RECV": ["--timeout", "0.01"],
    "HEAR": ["--timeout", "0.01"],
    "monitor": ["--duration", "0.01"],
    "pong": ["--duration", "0.01"],
    "stream": ["--count", "2", "--rate", "max"],
    "ping": ["--count", "1", "--wait", "0.01"],
    "doctor": ["--no-self-test"],
}
GLOBAL_FLAGS = ("--use-std", "--daemon")


def command_options() -> dict[str, list[tuple[str, bool]]]:
    """Each command of the real parser: its option strings, and whether each takes a value."""
    parser = McastDispatch().buildArgs(None)
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {
        name: [(o, action.nargs != 0) for action in sub._actions for o in action.option_strings]
        for name, sub in commands.choices.items()
    }


def argument_lists(count: int, seed: int) -> list[list[str]]:
    """``count`` seeded argument lists: half of them plausible (a real command, its options
    with sensible values), half hostile (odd values, random text, options of other commands,
    shuffled or cut lists)."""
    rng = random.Random(seed)
    commands = command_options()
    names = sorted(commands)
    every_option = sorted({entry for options in commands.values() for entry in options})

    def text() -> str:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(1, 0x3000)]))
                       for _ in range(rng.randrange(1, 12)))  # fmt: skip

    def value(option: str, plausible: bool) -> str:
        if plausible and option in PLAUSIBLE:
            return rng.choice(PLAUSIBLE[option])
        return rng.choice([*HOSTILE, *GROUPS, text()])

    lists = []
    for _ in range(count):
        plausible = rng.random() < 0.5
        argv: list[str] = []
        if rng.random() < 0.1:
            argv.append(rng.choice([*GLOBAL_FLAGS, "-v", "-h", text()]))
        name = rng.choice(names if plausible else [*names, "nope", "say", text()])
        argv.append(name)
        options = commands.get(name, every_option) if rng.random() < 0.9 else every_option
        for option, takes_value in rng.sample(options, min(len(options), rng.randrange(5))):
            if option in ("-h", "--help") and rng.random() < 0.9:
                continue  # help is one path; do not spend every tenth case on it
            argv.append(option)
            if takes_value or not plausible:
                argv.extend(value(option, plausible) for _ in range(rng.choice([1, 1, 1, 2])))
        if name in ("stream", "monitor", "ping", "pong") or not plausible:
            argv.append(value("--group", plausible))  # the GROUP they take
        if name in BOUNDS and rng.random() < 0.95:
            argv.extend(BOUNDS[name])
        if not plausible and rng.random() < 0.2:
            rng.shuffle(argv)
        if not plausible and rng.random() < 0.1:
            argv = argv[: rng.randrange(len(argv) + 1)]
        lists.append(argv)
    return lists


def documented_codes(argv: list[str]) -> dict[int, str]:
    """The exit codes the command that ``argv`` runs documents (``multicast`` itself for a
    command line that names no command, or asks for help or the version first)."""
    for item in argv:
        if item in COMMAND_EXIT_CODES:
            return COMMAND_EXIT_CODES[item]
        if item not in GLOBAL_FLAGS:
            break
    return COMMAND_EXIT_CODES["multicast"]
