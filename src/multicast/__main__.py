"""``python -m multicast`` and the ``multicast`` command; the code is in :mod:`multicast.cli`.

This module (and the package it is in) loads nothing more when it is imported, so that a
Ctrl-C that comes while the command is still starting (loading the command line takes tens of
milliseconds) ends it like any other Ctrl-C: one line, exit status 130, no traceback. The
names of :mod:`multicast.cli` that the reference package has here are loaded on first use.

>>> import multicast
>>> multicast.__main__.main(["NOOP"])
(0, (True, None))
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (and re) at import
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from multicast.cli import TASK_OPTIONS, McastDispatch, McastNope, McastRecvHearDispatch, main

__all__ = ["TASK_OPTIONS", "McastDispatch", "McastNope", "McastRecvHearDispatch", "cli", "main"]


def cli(argv: Sequence[str] | None = None) -> int:
    """The ``multicast`` command (None: ``sys.argv[1:]``); returns the exit code.

    :func:`multicast.cli.cli`, from the moment this function is called to the moment the
    process exits: a Ctrl-C before the command line has taken over signals gives 130 and no
    traceback too. Run as the process's command (``argv`` None), it leaves Ctrl-C to end the
    process at once and quietly as it exits.
    """
    try:
        from multicast.cli import cli as command  # noqa: PLC0415 (loaded where Ctrl-C is caught)

        code = command(argv)
    except KeyboardInterrupt:
        if sys.stderr is not None:
            print("multicast: interrupted by SIGINT", file=sys.stderr)
        code = 130
    if argv is None:
        _quiet_from_now()
    return code


def _quiet_from_now() -> None:
    """From here the process only exits: a Ctrl-C now ends it at once, quietly, by SIGINT."""
    import signal  # noqa: PLC0415 (nothing is loaded at import)
    import threading  # noqa: PLC0415

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def __getattr__(name: str) -> Any:
    """``main``, ``McastDispatch``, ``TASK_OPTIONS``...: from :mod:`multicast.cli`."""
    if name in __all__:
        from multicast import cli as module  # noqa: PLC0415 (loaded on first use)

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(cli())
