"""A small cooperative scheduler, compatible with the doer model of ``hio.base``.

Time is virtual: a :class:`Tymist` owns a clock (its *tyme*) that advances one *tock* per
:meth:`Tymist.tick`; :class:`Tymee` objects read that clock through a ``tymth`` closure
and never move it. A :class:`Doer` is a task whose life cycle is one generator,
``enter → recur … → clean | cease | abort → exit``; a :class:`Doist` runs doers in passes,
one pass per tock, for a ``limit`` of tyme or until every doer is done.

>>> class Countdown(Doer):
...     def __init__(self, count: int) -> None:
...         super().__init__()
...         self.count = count
...     def recur(self, tyme: float) -> bool:
...         self.count -= 1
...         return self.count == 0  # done
>>> countdown = Countdown(3)
>>> doist = Doist(tock=0.25)
>>> doist.do(doers=[countdown])
>>> countdown.done, doist.done, doist.tyme
(True, True, 0.75)

The doer was entered before the first pass and recurred on the first three passes, at
tyme 0.0, 0.25 and 0.5; each pass ends with a tick, and after the third the Doist saw no
doer left and stopped.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import Any, NamedTuple

__all__ = ["Deed", "Doer", "Doist", "Tymee", "Tymer", "Tymist", "close_generator"]

Tymth = Callable[[], float]
DoGenerator = Generator[float, float, Any]


class Tymist:
    """Owner of a virtual clock: ``tyme`` advances by ``tock`` on each :meth:`tick`."""

    Tock = 0.03125  # 1/32 s, exact in binary so that sums of tocks do not drift

    def __init__(self, tyme: float = 0.0, tock: float | None = None) -> None:
        self.tyme = tyme
        self.tock = self.Tock if tock is None else tock

    @property
    def tyme(self) -> float:
        return self._tyme

    @tyme.setter
    def tyme(self, value: float) -> None:
        self._tyme = float(value)

    @property
    def tock(self) -> float:
        return self._tock

    @tock.setter
    def tock(self, value: float) -> None:
        self._tock = float(value)

    def tick(self, tock: float | None = None) -> float:
        """Advance tyme by ``tock`` (default: :attr:`tock`) and return the new tyme."""
        self.tyme += self.tock if tock is None else float(tock)
        return self.tyme

    def tymen(self) -> Tymth:
        """A closure that reads this clock: give it to a :class:`Tymee` to wind it."""

        def tymth() -> float:
            return self.tyme

        return tymth


class Tymee:
    """Reader of a :class:`Tymist`'s clock, through the ``tymth`` closure it is wound to."""

    def __init__(self, tymth: Tymth | None = None) -> None:
        self._tymth = tymth

    @property
    def tymth(self) -> Tymth | None:
        return self._tymth

    @property
    def tyme(self) -> float | None:
        """The current tyme, or None while not wound to a clock."""
        return self._tymth() if self._tymth is not None else None

    def wind(self, tymth: Tymth) -> None:
        """Read time from ``tymth`` from now on."""
        self._tymth = tymth


class Tymer(Tymee):
    """A timer on virtual time: started at some tyme, expired once ``duration`` has passed.

    >>> clock = Tymist(tock=0.5)
    >>> tymer = Tymer(duration=1.0, tymth=clock.tymen())
    >>> tymer.expired, clock.tick(), tymer.expired, clock.tick(), tymer.expired
    (False, 0.5, False, 1.0, True)
    """

    Duration = 0.0

    def __init__(
        self, duration: float | None = None, start: float | None = None, tymth: Tymth | None = None
    ) -> None:
        super().__init__(tymth)
        self._duration = float(self.Duration if duration is None else duration)
        self._start = 0.0
        self._stop = self._duration
        if tymth is not None:
            self.start(start=start)

    @property
    def duration(self) -> float:
        return self._duration

    @property
    def elapsed(self) -> float:
        return self._now() - self._start

    @property
    def remaining(self) -> float:
        return self._stop - self._now()

    @property
    def expired(self) -> bool:
        return self._now() >= self._stop

    def _now(self) -> float:
        tyme = self.tyme
        if tyme is None:
            raise RuntimeError("this Tymer is not wound to a clock; call wind(tymth) first")
        return tyme

    def start(self, duration: float | None = None, start: float | None = None) -> None:
        """Start at ``start`` (default: now), for ``duration`` (default: the current one)."""
        if duration is not None:
            self._duration = float(duration)
        self._start = self._now() if start is None else float(start)
        self._stop = self._start + self._duration

    def restart(self, duration: float | None = None) -> None:
        """Start again where the last run stopped, so that periods do not drift."""
        self.start(duration=duration, start=self._stop)

    def wind(self, tymth: Tymth) -> None:
        """Read time from ``tymth`` and restart from its current tyme."""
        super().wind(tymth)
        self.start()


class Doer(Tymee):
    """A task run by a :class:`Doist`; subclasses override the hooks they need.

    Calling a doer makes its generator, :meth:`do`: ``enter`` once, then ``recur`` once per
    due pass until it returns something truthy, which becomes :attr:`done`. Exactly one of
    ``clean`` (finished by itself), ``cease`` (closed by the Doist) or ``abort`` (an
    exception, which is re-raised) follows, and ``exit`` always runs last. ``tock`` is how
    much tyme to wait between recurs (0.0: every pass).
    """

    def __init__(
        self,
        *,
        tymth: Tymth | None = None,
        tock: float = 0.0,
        opts: dict[str, Any] | None = None,
        temp: bool = False,
    ) -> None:
        super().__init__(tymth)
        self.done: Any = None
        self.tock = tock
        self.opts: dict[str, Any] = {} if opts is None else dict(opts)
        self.temp = bool(temp)

    @property
    def tock(self) -> float:
        return self._tock

    @tock.setter
    def tock(self, value: float) -> None:
        self._tock = abs(float(value))

    def __call__(self, *pa: Any, **kwa: Any) -> DoGenerator:
        return self.do(*pa, **kwa)

    def do(
        self, tymth: Tymth, *, tock: float = 0.0, temp: bool | None = None, **opts: Any
    ) -> DoGenerator:
        """The doer's whole life cycle, as a generator driven by a :class:`Doist`.

        It yields its tock and is sent the current tyme back. ``opts`` update :attr:`opts`.
        The return value is :attr:`done`.
        """
        temp = temp or self.temp or temp
        try:
            self.wind(tymth)
            self.tock = tock
            self.opts.update(opts)
            self.enter(temp=temp)
            recur: Callable[..., Any] = self.recur  # a subclass may make it a generator
            if inspect.isgeneratorfunction(recur):
                self.done = yield from recur(tock=self.tock)
            else:
                while not self.done:
                    tyme = yield self.tock
                    self.done = self.recur(tyme=tyme)
        except GeneratorExit:
            self.cease()
        except Exception as ex:
            self.abort(ex=ex)
            raise
        else:
            self.clean()
        finally:
            self.exit()
        return self.done

    def enter(self, *, temp: bool | None = None) -> None:
        """Set up resources (``temp``: use temporary ones where that means something)."""

    def recur(self, tyme: float) -> Any:
        """Do one step of work at ``tyme``; return something truthy when done."""
        return False

    def clean(self) -> None:
        """Runs after ``recur`` finished by itself."""

    def cease(self) -> None:
        """Runs when the scheduler closed the doer before it finished."""

    def abort(self, ex: Exception) -> None:
        """Runs when ``enter`` or ``recur`` raised ``ex`` (re-raised afterwards)."""

    def exit(self) -> None:
        """Release resources; runs last, whatever happened."""


class Deed(NamedTuple):
    """A running doer: its generator, the tyme it is next due, and the doer itself."""

    dog: DoGenerator
    retyme: float
    doer: Doer


def close_generator(generator: Generator[Any, Any, Any]) -> Any:
    """Close ``generator`` and return its return value.

    It is what ``generator.close()`` returns from Python 3.13 on; this works on 3.11 too.
    """
    try:
        generator.throw(GeneratorExit())
    except StopIteration as stop:
        return stop.value
    except GeneratorExit:
        return None
    raise RuntimeError("generator ignored GeneratorExit")


class Doist(Tymist):
    """Runs doers in passes of one tock each, for ``limit`` tyme or until all are done.

    With ``real`` each pass is paced to the wall clock at a fixed rate of one per ``tock``
    seconds (a late pass does not delay later ones); otherwise passes run back to back and
    only tyme advances. ``limit`` counts tyme, not wall time.
    """

    def __init__(
        self,
        *,
        name: str = "doist",
        real: bool = False,
        limit: float | None = None,
        doers: Iterable[Doer] | None = None,
        temp: bool = False,
        tyme: float = 0.0,
        tock: float = Tymist.Tock,
    ) -> None:
        super().__init__(tyme=tyme, tock=tock)
        self.name = name
        self.real = bool(real)
        self.limit = None if limit is None else abs(float(limit))
        self.doers: list[Doer] = [] if doers is None else list(doers)
        self.temp = bool(temp)
        self.done = False
        self.deeds: deque[Deed] = deque()

    def do(
        self,
        doers: Iterable[Doer] | None = None,
        limit: float | None = None,
        tyme: float | None = None,
        *,
        temp: bool | None = None,
    ) -> None:
        """Enter the doers, run passes until all are done or ``limit`` expired, then exit them.

        Arguments given replace :attr:`doers`, :attr:`limit` and :attr:`tyme`. A
        ``KeyboardInterrupt`` ends the run quietly; other exceptions propagate once every
        doer left has been closed.
        """
        self.done = False
        if doers is not None:
            self.doers = list(doers)
        if limit is not None:
            self.limit = abs(float(limit))
        if tyme is not None:
            self.tyme = tyme
        self.deeds = deque()
        try:
            self.enter(temp=temp)
            tymer = None if self.limit is None else Tymer(self.limit, tymth=self.tymen())
            deadline = time.monotonic() + self.tock
            while True:
                self.recur()
                if self.real:
                    time.sleep(max(0.0, deadline - time.monotonic()))
                    deadline += self.tock
                if not self.deeds:
                    self.done = True
                    break
                if tymer is not None and tymer.expired:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            self.exit()

    def enter(self, doers: Iterable[Doer] | None = None, *, temp: bool | None = None) -> None:
        """Start each doer (default: :attr:`doers`) up to its first yield; keep the live ones."""
        temp = self.temp if temp is None else temp
        for doer in self.doers if doers is None else doers:
            doer.done = False
            dog = doer(tymth=self.tymen(), tock=doer.tock, temp=temp, **doer.opts)
            try:
                dog.send(None)  # type: ignore[arg-type]  # a generator starts with None
            except StopIteration as stop:
                if stop.value is not None:
                    doer.done = stop.value
                continue
            self.deeds.append(Deed(dog, self.tyme, doer))

    def recur(self, deeds: deque[Deed] | None = None) -> None:
        """One pass: send the tyme to every deed that is due, drop the finished, then tick."""
        deeds = self.deeds if deeds is None else deeds
        for _ in range(len(deeds)):
            dog, retyme, doer = deeds.popleft()
            if retyme <= self.tyme:
                try:
                    tock = dog.send(self.tyme)
                except StopIteration as stop:
                    if stop.value is not None:
                        doer.done = stop.value
                    continue
                retyme = retyme + tock if tock else self.tyme + self.tock
            deeds.append(Deed(dog, retyme, doer))
        self.tick()

    def exit(self, deeds: deque[Deed] | None = None) -> None:
        """Close every deed left, the last started first, so that exits nest."""
        deeds = self.deeds if deeds is None else deeds
        while deeds:
            dog, _, doer = deeds.pop()
            done = close_generator(dog)
            if done is not None:
                doer.done = done
