"""Fixtures shared by ``tests/unit`` and ``tests/network``.

Each folder's own conftest adds its guard: ``tests/unit`` keeps its tests off the network,
``tests/network`` runs only inside the private namespace of ``scripts/netns-run``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from multicast.events import Multicaster, MulticastListener, Poller, _defaultPoller


@pytest.fixture
def default_poller_left_clean() -> Iterator[None]:
    """Close whatever a test left registered with the default poller."""
    yield
    for registration in list(_defaultPoller._registered.values()):
        target = registration.target
        if isinstance(target, MulticastListener | Multicaster):
            target.close()
        else:
            _defaultPoller.unregister(target)


@pytest.fixture
def poller() -> Iterator[Poller]:
    """A poller of the test's own (the default one is shared by the whole process)."""
    with Poller() as own:
        yield own
