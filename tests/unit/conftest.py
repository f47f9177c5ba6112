"""The guard of ``tests/unit``: tests that need no network, no namespace and no root.

They run anywhere (``make unit-pure`` runs them outside any namespace). Each one runs with
the network refused (``support.offline``): a test that opens a network socket or starts a
program other than Python fails, and belongs in ``tests/network``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.offline import refusing_the_network


@pytest.fixture(autouse=True)
def offline() -> Iterator[None]:
    """Refuse the network to the test, and fail it if it tried to reach it."""
    with refusing_the_network() as refused:
        yield
    if refused:
        pytest.fail(
            "a unit test must not reach the network; it tried to " + "; ".join(refused),
            pytrace=False,
        )
