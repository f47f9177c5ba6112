"""Fixtures shared by ``tests/unit`` and ``tests/network``.

Each folder's own conftest adds its guard: ``tests/unit`` keeps its tests off the network,
``tests/network`` runs only inside the private namespace of ``scripts/netns-run``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import multicast
from multicast import defaults
from multicast.core import batch, ctypes_io
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


@pytest.fixture
def changed_defaults() -> Iterator[None]:
    """Assign every default through the package, as a program may; restore them afterwards."""
    names = [name for name in defaults.__all__ if name.startswith("_MCAST_DEFAULT_")]
    saved = {name: getattr(defaults, name) for name in names}
    multicast._MCAST_DEFAULT_PORT = 50123
    multicast._MCAST_DEFAULT_GROUP = "239.7.7.7"
    multicast._MCAST_DEFAULT_GROUPS = ["239.7.7.8"]
    multicast._MCAST_DEFAULT_TTL = 9
    multicast._MCAST_DEFAULT_BIND_IP = "0.0.0.0"
    multicast._MCAST_DEFAULT_BUFFER_SIZE = 100
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(defaults, name, value)


@pytest.fixture(params=["extension", "ctypes"])
def io_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once on each batch backend: the C extension (skipped where it is not
    built) and the ctypes fallback, as ``MULTICAST_IO=ctypes`` would choose it."""
    name: str = request.param
    if name == "extension" and batch._fastio is None:
        pytest.skip("the C extension multicast.core._fastio is not built")
    if name == "ctypes":
        monkeypatch.setattr(batch, "_fastio", None)
    monkeypatch.setattr(batch, "receivers", batch._Receivers())  # this backend's receivers
    monkeypatch.setattr(ctypes_io, "_local", threading.local())  # and senders
    return name
