"""``make acceptance``: the reference documents' examples, from ``../shared/acceptance/``.

Not part of ``make test`` (pyproject's ``testpaths`` leave this folder out): a clone has no
``../shared/`` beside it, and the project's own tests carry the same contract in their own
words. The examples send and join, so they run only inside ``scripts/netns-run``; without
the folder the session stops at once, saying so.
"""

from __future__ import annotations

import pytest

from multicast.testing import private_namespace_problem

from support import ACCEPTANCE


def pytest_configure(config: pytest.Config) -> None:
    if not ACCEPTANCE.is_dir():
        pytest.exit(f"no acceptance examples: {ACCEPTANCE} does not exist", returncode=4)
    problem = private_namespace_problem()
    if problem is not None:
        pytest.exit(
            f"the acceptance examples send multicast: {problem}; run `make acceptance`",
            returncode=3,
        )
