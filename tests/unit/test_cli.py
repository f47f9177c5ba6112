"""The ``multicast`` command line without the network: errors are one line and a documented
exit code (docs/cli.md), help and version, global flags before and after the command (the
tools' work recorded, not done), contributed tools, and ``python -m multicast NOOP``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

import multicast
from multicast import cli as cli_module
from multicast.__main__ import cli, main
from multicast.exceptions import GroupError
from multicast.exitcodes import COMMAND_EXIT_CODES
from multicast.hear import McastHEAR
from multicast.recv import McastRECV

from support.cli import recording, run_multicast, stderr_lines


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (KeyboardInterrupt(), 130, "multicast: interrupted by SIGINT"),
        (
            BrokenPipeError(32, "Broken pipe"),
            141,
            "multicast: standard output was closed (broken pipe)",
        ),
        (GroupError("group 'x' is bad"), 65, "multicast: group 'x' is bad"),
        (ZeroDivisionError("oops"), 70, "multicast: internal error: ZeroDivisionError: oops"),
    ],
)
def test_errors_inside_a_command_are_one_line(
    error: BaseException, code: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock.patch.object(McastRECV, "doStep", side_effect=error):
        assert cli(["RECV"]) == code
    assert stderr_lines(capsys.readouterr().err) == [line]


def test_help_and_version_succeed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == (0, (True, None))
    assert capsys.readouterr().out == f"multicast {multicast.__version__}\n"
    assert main(["SAY", "--help"]) == (0, (True, None))
    out = capsys.readouterr().out
    assert "--message WORD [WORD ...]" in out and "--pipe" in out


def test_the_help_says_what_every_command_is_for(capsys: pytest.CaptureFixture[str]) -> None:
    """The first paragraph of ``multicast --help`` names each command (it named only the
    first eight: querier, membership, send-file and receive-file came later)."""
    assert main(["--help"])[0] == 0
    description = capsys.readouterr().out.split("\n\n")[1]
    words = set(description.replace(",", " ").replace(";", " ").replace(":", " ").split())
    assert set(COMMAND_EXIT_CODES) - {"multicast", "NOOP"} <= words


def test_no_command_prints_help_and_a_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli([]) == 64
    printed = capsys.readouterr()
    assert printed.out.startswith("usage: multicast [-h | -v] [--use-std] [--daemon] CMD ...")
    assert "SAY" in printed.out and "RECV" in printed.out
    assert len(stderr_lines(printed.err)) == 1


def test_invalid_environment_is_warned_about_once_per_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MULTICAST_PORT", "1024")
    monkeypatch.setenv("MULTICAST_BUFFER_SIZE", "0")
    assert cli(["NOOP"]) == 0
    assert stderr_lines(capsys.readouterr().err) == [
        "multicast: warning: MULTICAST_PORT: '1024' is not a dynamic port (49152-65535); "
        "using the default 59259",
        "multicast: warning: MULTICAST_BUFFER_SIZE: '0' is not a datagram size from 1 to 65507; "
        "using the default 1316",
    ]


# --- options before and after the command ------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ["--daemon", "--use-std", "HEAR"],
        ["HEAR", "--daemon", "--use-std"],
        ["--use-std", "HEAR", "--daemon"],
        ["--daemon", "RECV", "--use-std"],
    ],
)
def test_global_flags_work_before_and_after_the_command(arguments: list[str]) -> None:
    with recording(McastHEAR) as calls:
        assert main(arguments) == (0, (True, None))
    assert calls[0]["is_daemon"] is True and calls[0]["is_std"] is True


def test_hear_and_recv_join_the_default_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multicast, "_MCAST_DEFAULT_GROUPS", ["224.0.0.1", "239.9.9.9"])
    with recording(McastRECV) as calls:
        main(["HEAR"])
    assert [str(g) for g in calls[0]["groups"]] == ["224.0.0.1", "239.9.9.9"]


# --- contributed tools -------------------------------------------------------------------------


class EchoTool:
    """A tool as ``multicast.tools.TOOLS`` provides them."""

    help = "answer with the exit code asked for"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--code", type=int, default=0)

    def run(self, args: Any) -> int:
        if args.code < 0:
            raise GroupError("a tool's own bad input")
        return int(args.code)


@pytest.fixture
def echo_tool() -> Iterator[None]:
    with mock.patch.object(cli_module, "contributed_tools", return_value={"echo": EchoTool()}):
        yield


@pytest.mark.usefixtures("echo_tool")
def test_a_contributed_tool_is_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["echo"]) == (0, (True, None))
    assert main(["echo", "--code", "3"]) == (3, (False, None))
    assert cli(["echo", "--code", "-1"]) == 65
    assert cli(["echo", "--bogus"]) == 64
    assert stderr_lines(capsys.readouterr().err) == [
        "multicast: a tool's own bad input",
        "multicast: unrecognized arguments: --bogus",
    ]
    assert main(["--help"])[0] == 0
    assert "answer with the exit code asked for" in capsys.readouterr().out


def test_tools_are_optional_only_when_the_package_is_missing() -> None:
    missing = ModuleNotFoundError("No module named 'multicast.tools'", name="multicast.tools")
    with mock.patch("importlib.import_module", side_effect=missing):
        assert cli_module.contributed_tools() == {}
    broken = ModuleNotFoundError("No module named 'numpy'", name="numpy")
    with (
        mock.patch("importlib.import_module", side_effect=broken),
        pytest.raises(ModuleNotFoundError),
    ):
        cli_module.contributed_tools()


# --- through a real process --------------------------------------------------------------------


def test_python_dash_m_runs_without_a_runpy_warning() -> None:
    done = run_multicast(["NOOP"])
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    strict = run_multicast(["-v"], PYTHONWARNINGS="error")
    assert (strict.returncode, strict.stderr) == (0, "")


# --- help that teaches (issue 12) ----------------------------------------------------------


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*argv, "--help"]) == (0, (True, None))
    return capsys.readouterr().out


def test_the_main_help_has_no_placeholder_text(capsys: pytest.CaptureFixture[str]) -> None:
    page = help_of([], capsys)
    for placeholder in ("The Main Entrypoint.", "Sub-Commands.", "Called from the command line"):
        assert placeholder not in page
    assert "multicast SAY --group 239.1.2.3 --port 5000" in page
    assert "exit codes: 0 success" in page


@pytest.mark.parametrize("command", ["SAY", "RECV", "HEAR", "NOOP"])
def test_each_command_says_what_it_does_with_an_example_and_its_exit_codes(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    page = help_of([command], capsys)
    description = page.split("\n\n")[1]
    assert not description.startswith(("options:", "usage:"))
    examples = page.split("examples:\n")[1]
    assert examples.startswith("  multicast ") and command in examples.split("\n\n")[0]
    assert "exit codes:\n  0    " in page and "  64   usage error" in page


def test_say_offers_no_receiving_flags(capsys: pytest.CaptureFixture[str]) -> None:
    page = help_of(["SAY"], capsys)
    assert "--use-std" not in page and "--daemon" not in page
    assert main(["SAY", "--daemon"])[0] == 64
    capsys.readouterr()
    assert main(["--use-std", "NOOP"]) == (0, (True, None))  # before the command: as ever


def test_recv_and_hear_have_pages_of_their_own(capsys: pytest.CaptureFixture[str]) -> None:
    recv, hear = help_of(["RECV"], capsys), help_of(["HEAR"], capsys)
    assert recv.replace("RECV", "HEAR") != hear
    assert "echo server" in hear.split("\n\n")[1]
    assert "--count datagrams" in " ".join(recv.split("\n\n")[1].split())


@pytest.mark.parametrize("command", sorted(set(COMMAND_EXIT_CODES) - {"multicast"}))
def test_every_help_lists_the_exit_codes_of_its_command(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == (0, (True, None))
    out = capsys.readouterr().out
    listed = out[out.index("exit codes:\n") :].splitlines()[1:]
    codes = COMMAND_EXIT_CODES[command]
    assert listed == [f"  {code:<4} {meaning}" for code, meaning in codes.items()]
    # The one rule for signals, and the errors every command shares.
    assert {0, 64, 130, 141, 143} <= set(codes)
    assert "SIGINT" in codes[130] and "SIGTERM" in codes[143]
