"""The doer model: virtual time, the Doer life cycle and the Doist's passes."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multicast.doing import Doer, Doist, Tymee, Tymer, Tymist, close_generator


class Recorder(Doer):
    """A doer that logs its hooks and can be told to finish or fail at a given recur."""

    def __init__(
        self,
        log: list[Any],
        *,
        finish_at: int | None = None,
        fail_in: str | None = None,
        **kwa: Any,
    ) -> None:
        super().__init__(**kwa)
        self.log = log
        self.finish_at = finish_at
        self.fail_in = fail_in
        self.recurs = 0

    def enter(self, *, temp: bool | None = None) -> None:
        self.log.append(("enter", temp))
        if self.fail_in == "enter":
            raise ValueError("enter failed")

    # Keyword-only on purpose: the Doer must call recur(tyme=...).
    def recur(self, *, tyme: float) -> bool:  # type: ignore[override]
        self.recurs += 1
        self.log.append(("recur", tyme))
        if self.fail_in == "recur":
            raise ValueError("recur failed")
        if self.fail_in == "interrupt":
            raise KeyboardInterrupt
        return self.recurs == self.finish_at

    def clean(self) -> None:
        self.log.append("clean")

    def cease(self) -> None:
        self.log.append("cease")

    def abort(self, ex: Exception) -> None:
        self.log.append(("abort", str(ex)))

    def exit(self) -> None:
        self.log.append("exit")


def hooks(log: list[Any]) -> list[str]:
    return [entry if isinstance(entry, str) else entry[0] for entry in log]


def test_tymist_ticks_and_tymen_reads_it() -> None:
    clock = Tymist()
    assert (clock.tyme, clock.tock) == (0.0, Tymist.Tock)
    tymth = clock.tymen()
    assert clock.tick() == 0.03125 == tymth()
    assert clock.tick(1.0) == 1.03125 == tymth()


def test_tymee_reads_the_clock_it_is_wound_to() -> None:
    tymee = Tymee()
    assert tymee.tyme is None and tymee.tymth is None
    clock = Tymist(tyme=2.0)
    tymee.wind(clock.tymen())
    clock.tick()
    assert tymee.tyme == 2.03125


def test_tymer_expires_on_tyme_and_restarts_without_drift() -> None:
    clock = Tymist(tock=0.25)
    tymer = Tymer(duration=0.5, tymth=clock.tymen())
    clock.tick()
    assert (tymer.elapsed, tymer.remaining, tymer.expired) == (0.25, 0.25, False)
    clock.tick(0.5)  # late: tyme 0.75, the timer stopped at 0.5
    assert tymer.expired
    tymer.restart()  # the next period runs 0.5-1.0, not from now
    assert (tymer.remaining, tymer.expired) == (0.25, False)
    other = Tymist(tyme=10.0)
    tymer.wind(other.tymen())  # winding restarts on the new clock
    assert (tymer.elapsed, tymer.duration) == (0.0, 0.5)


def test_unwound_tymer_says_so() -> None:
    with pytest.raises(RuntimeError, match="not wound"):
        _ = Tymer(duration=1.0).expired


def test_doer_that_finishes_runs_enter_recur_clean_exit() -> None:
    log: list[Any] = []
    doer = Recorder(log, finish_at=3)
    doist = Doist(tock=0.25)
    doist.do(doers=[doer])
    assert log == [
        ("enter", False),
        ("recur", 0.0),
        ("recur", 0.25),
        ("recur", 0.5),
        "clean",
        "exit",
    ]
    assert doer.done is True and doist.done is True and doist.tyme == 0.75


def test_limit_closes_doers_last_started_first_with_cease() -> None:
    log: list[Any] = []
    first, second = Recorder(log), Recorder(log)
    first.exit = lambda: log.append("exit first")  # type: ignore[method-assign]
    doist = Doist(tock=0.125, limit=0.5)
    doist.do(doers=[first, second])
    assert doist.tyme == 0.5 and doist.done is False
    assert first.recurs == second.recurs == 4
    assert log[-4:] == ["cease", "exit", "cease", "exit first"]
    assert first.done is False and second.done is False


def test_failing_recur_aborts_then_exits_and_the_others_are_closed() -> None:
    log: list[Any] = []
    bystander, failing = Recorder([]), Recorder(log, fail_in="recur")
    with pytest.raises(ValueError, match="recur failed"):
        Doist(limit=1.0).do(doers=[bystander, failing])
    assert log == [("enter", False), ("recur", 0.0), ("abort", "recur failed"), "exit"]
    assert hooks(bystander.log)[-2:] == ["cease", "exit"]


def test_failing_enter_aborts_then_exits() -> None:
    log: list[Any] = []
    with pytest.raises(ValueError, match="enter failed"):
        Doist(limit=1.0).do(doers=[Recorder(log, fail_in="enter")])
    assert hooks(log) == ["enter", "abort", "exit"]


def test_keyboard_interrupt_ends_the_run_quietly() -> None:
    interrupted, bystander = Recorder([], fail_in="interrupt"), Recorder([])
    doist = Doist(limit=10.0)
    doist.do(doers=[bystander, interrupted])
    assert hooks(interrupted.log) == ["enter", "recur", "exit"]
    assert hooks(bystander.log)[-2:] == ["cease", "exit"]


def test_doer_tock_spaces_its_recurs_without_drift() -> None:
    log: list[Any] = []
    Doist(tock=0.125, limit=1.25).do(doers=[Recorder(log, tock=0.5)])
    assert [entry[1] for entry in log if entry[0] == "recur"] == [0.0, 0.5, 1.0]


def test_temp_goes_to_enter_from_the_doist_or_the_doer() -> None:
    log: list[Any] = []
    Doist(limit=0.0, temp=True).do(doers=[Recorder(log)])
    Doist(limit=0.0).do(doers=[Recorder(log, temp=True)])
    Doist(limit=0.0).do(doers=[Recorder(log)], temp=True)
    assert [entry for entry in log if entry[0] == "enter"] == [("enter", True)] * 3


def test_generator_recur_is_delegated_to_and_its_return_is_done() -> None:
    class Steps(Doer):
        def recur(self, tock: float = 0.0) -> Generator[float, float, str]:
            seen = []
            for _ in range(3):
                seen.append((yield tock))
            return f"done at {seen}"

    doer = Steps()
    Doist(tock=0.5, limit=10.0).do(doers=[doer])
    assert doer.done == "done at [0.0, 0.5, 1.0]"


def test_doers_reject_unknown_keywords() -> None:
    with pytest.raises(TypeError, match="colour"):
        Doer(colour="blue")  # type: ignore[call-arg]


def test_real_doist_keeps_to_the_documented_tyme() -> None:
    doer = Recorder([])
    doist = Doist(tock=0.03125, real=True, limit=0.25)
    doist.do(doers=[doer])
    assert doist.tyme == 0.25 and doer.recurs == 8


def test_close_generator_returns_the_return_value() -> None:
    def counting() -> Generator[int, None, str]:
        try:
            yield 1
        except GeneratorExit:
            return "closed"
        return "finished"

    running = counting()
    next(running)
    assert close_generator(running) == "closed"
    assert close_generator(counting()) is None  # never started: nothing returned


@given(exponent=st.integers(0, 8), passes=st.integers(1, 200))
def test_limit_in_binary_tocks_is_reached_exactly(exponent: int, passes: int) -> None:
    tock = 2.0**-exponent
    doer = Recorder([])
    doist = Doist(tock=tock, limit=passes * tock)
    doist.do(doers=[doer])
    assert doist.tyme == passes * tock and doer.recurs == passes
