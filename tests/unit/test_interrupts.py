"""SIGINT and SIGTERM (issue 12): the exit rule 128 + the signal, deferral for exact counts, and
a Ctrl-C that comes while the command line is still loading. Signals are raised in this process."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from unittest import mock

import pytest

from multicast import __main__ as entry
from multicast import cli as cli_module
from multicast import interrupts
from multicast.exceptions import Terminated
from multicast.recv import McastRECV
from multicast.send import McastSAY

from support.cli import stderr_lines


@pytest.fixture(autouse=True)
def default_handlers() -> Iterator[None]:
    """Each test starts and ends with Python's own handlers and nothing recorded."""
    before = {signum: signal.getsignal(signum) for signum in interrupts.SIGNALS}
    interrupts.reset()
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)
    interrupts.reset()


def test_the_rule_is_128_plus_the_signal() -> None:
    assert interrupts.exit_code(0) == 0
    with interrupts.handling():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert interrupts.exit_code(0) == interrupts.exit_code(1) == 130
        interrupts.reset()
        with pytest.raises(Terminated):
            signal.raise_signal(signal.SIGTERM)
        assert interrupts.exit_code(0) == 143
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_deferred_signal_is_recorded_and_acted_on_at_a_checkpoint() -> None:
    with interrupts.handling(), interrupts.deferred() as stopped:
        assert not stopped()
        signal.raise_signal(signal.SIGTERM)  # nothing raised here, between two steps
        assert stopped()
    assert interrupts.exit_code(0) == 143


def test_outside_the_command_line_ctrl_c_is_deferred_and_left_to_the_program() -> None:
    with interrupts.deferred() as stopped:
        signal.raise_signal(signal.SIGINT)
        assert stopped()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert interrupts.received() is None  # the program's Ctrl-C, not a command's


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_command_that_a_signal_ended_exits_128_plus_it_after_its_own_output(
    signum: int, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tool that catches the interruption and prints its report still exits 128 + n."""

    def interrupted(self: object, *args: object, **kwargs: object) -> tuple[bool, str]:
        try:
            signal.raise_signal(signum)
        except KeyboardInterrupt:  # Terminated is one too
            print("the report")
        return True, "done"

    with mock.patch.object(McastSAY, "doStep", interrupted):
        assert cli_module.cli(["SAY"]) == code
    assert capsys.readouterr().out == "the report\n"


class _CtrlCWhileLoading:
    """A finder of modules that is interrupted as ``multicast.cli`` is being loaded."""

    @staticmethod
    def find_spec(name: str, *args: object) -> None:
        if name == "multicast.cli":
            raise KeyboardInterrupt


def test_a_ctrl_c_while_the_command_line_loads_is_130_and_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "meta_path", [_CtrlCWhileLoading(), *sys.meta_path])
    monkeypatch.setattr(sys, "argv", ["multicast", "NOOP"])
    with mock.patch.dict(sys.modules):
        sys.modules.pop("multicast.cli")  # to be loaded again, and interrupted as it loads
        assert entry.cli() == 130
    assert stderr_lines(capsys.readouterr().err) == ["multicast: interrupted by SIGINT"]
    assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL  # from here: quietly killed


def test_a_ctrl_c_after_the_command_line_gave_signals_back_ends_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with mock.patch.object(McastRECV, "doStep", return_value=(True, None)):
        assert entry.cli(["RECV"]) == 0  # called by a program: its signals are its own
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        monkeypatch.setattr(sys, "argv", ["multicast", "RECV"])
        assert entry.cli() == 0  # the process's command: it only exits from here
    assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL


def test_errors_never_go_to_standard_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With standard error closed (None), an error line goes nowhere, and the exit code stays."""
    monkeypatch.setattr(sys, "stderr", None)
    with mock.patch.object(McastRECV, "doStep", side_effect=OSError(19, "No such device")):
        assert cli_module.cli(["RECV"]) == 2
    assert cli_module.cli(["SAY", "--port", "70000"]) == 64
    assert capsys.readouterr().out == ""


def test_held_signals_wait_for_the_end_of_the_step() -> None:
    """Inside ``held`` a signal is not raised; it is handled as usual just after the block."""
    steps = []
    with interrupts.handling(), pytest.raises(Terminated):
        with interrupts.held():
            signal.raise_signal(signal.SIGTERM)
            steps.append("counted")
        steps.append("not reached")
    assert steps == ["counted"]
    assert interrupts.exit_code(0) == 143
