"""``python -m multicast`` and the ``multicast`` command; the code is in :mod:`multicast.cli`.

>>> import multicast
>>> multicast.__main__.main(["NOOP"])
(0, (True, None))
"""

import sys

from multicast.cli import TASK_OPTIONS, McastDispatch, McastNope, McastRecvHearDispatch, cli, main

__all__ = ["TASK_OPTIONS", "McastDispatch", "McastNope", "McastRecvHearDispatch", "cli", "main"]

if __name__ == "__main__":
    sys.exit(cli())
