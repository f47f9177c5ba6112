"""Generated ``multicast`` command lines, from the real parser's commands and options: the
fuzz of the command line (``tests/network/test_fuzz_cli.py``) runs them, in a directory made
by :func:`prepare_directory` (the files their values name)."""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

from multicast.cli import McastDispatch
from multicast.cliargs import Parser
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
    "--key-file": ["/dev/null", "/nonexistent", "/dev/zero", "/", "fifo"],
    "--key-env": ["PATH", "MULTICAST_NOPE"],
    "--time-window": ["30", "0.5"],
    # monitor
    "--groups-file": ["groups.txt", "fifo", "/dev/zero", ".", "/nonexistent"],
    "--payload": ["auto", "frames", "rtp", "mpegts", "iperf", "raw"],
    "--rtp-clock": ["90000", "8000"],
    "--leave-wait": ["0.01"],
    "--alarm-loss": ["0", "5", "99.9"],
    "--alarm-silence": ["0.01", "1"],
    "--syslog": ["/dev/log", "monitor.log"],
    "--log-file": ["monitor.log", "fifo", "/dev/full", "."],
    # ping, doctor
    "--unicast": ["127.0.0.1", "::1"],
    "--busy-poll": ["0", "50"],
    "--listen": ["0", "0.01"],
    # querier
    "--igmp": ["2", "3", "off"],
    "--mld": ["1", "2", "off"],
    "--query-interval": ["1", "125"],
    "--response-interval": ["0.5", "10"],
    "--robustness": ["1", "2", "7"],
    "--last-member-interval": ["0.1", "1"],
    "--last-member-count": ["1", "2"],
    "--startup-interval": ["0.1"],
    "--startup-count": ["1"],
    # send-file, receive-file
    "--output": ["out", "payload.bin", "fifo"],
    "--idle": ["0.1", "5"],
    "--name": ["receiver-1"],
    "--session": ["0123abcd"],
    "--receivers": ["1", "3"],
    "--repeat": ["1", "2"],
    "--drop-after": ["0.2", "2"],
    "--parity": ["0", "4"],
    "--block": ["1", "64"],
    "--datagram-size": ["64", "1452"],
}
# What each command takes before its GROUP (send-file's files).
BEFORE_GROUP = {"send-file": ["payload.bin"]}
TAKES_GROUP = ("stream", "monitor", "ping", "pong", "send-file", "receive-file")
# Commands that run until stopped get a bound most of the time (the time limit is the backstop).
BOUNDS = {
    "RECV": ["--timeout", "0.01"],
    "HEAR": ["--timeout", "0.01"],
    "monitor": ["--duration", "0.01"],
    "pong": ["--duration", "0.01"],
    "stream": ["--count", "2", "--rate", "max"],
    "ping": ["--count", "1", "--wait", "0.01"],
    "doctor": ["--no-self-test"],
    "membership": ["--duration", "0.05"],
    "querier": ["--iface", "lo", "--mld", "off", "--duration", "0.2"],
    "send-file": ["--duration", "0.2"],
    "receive-file": ["--output", "out", "--wait", "0.2"],
}
GLOBAL_FLAGS = ("--use-std", "--daemon")


def command_options() -> dict[str, list[tuple[str, bool]]]:
    """Each command of the real parser: its option strings, and whether each takes a value."""
    parser = McastDispatch().buildArgs(None)
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for sub in commands.choices.values():
        if isinstance(sub, Parser):
            sub.complete()  # a tool's options are added when its parser is first used
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
        if name in TAKES_GROUP or not plausible:
            argv.extend(BEFORE_GROUP.get(name, []))
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


def prepare_directory(directory: Path) -> None:
    """The files and folders the values above name, in ``directory`` (the cases' working
    directory): a file to send, a groups file, an output folder, a FIFO nobody writes."""
    (directory / "payload.bin").write_bytes(bytes(range(256)) * 8)
    (directory / "groups.txt").write_text("239.1.2.3 239.1.2.4  # two groups\n")
    (directory / "out").mkdir()
    os.mkfifo(directory / "fifo")
