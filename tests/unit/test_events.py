"""The event layer of document 003 (multicast.events) without the network: the import, the
package's names, argument checks, and the Poller on local socket pairs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import multicast
from multicast import events
from multicast.events import MulticastListener, Poller, _defaultPoller, listen
from multicast.exceptions import GroupError

from support.events import GROUP, TIMEOUT, ReadOnly, ReadWrite, Recorder, WriteOnly

pytestmark = pytest.mark.usefixtures("default_poller_left_clean")

# --- import and the documented names --------------------------------------------------------


def test_import_opens_no_file_descriptor() -> None:
    script = (
        "import os\n"
        "before = set(os.listdir('/proc/self/fd'))\n"
        "import multicast, multicast.events, multicast.aio\n"
        "after = set(os.listdir('/proc/self/fd'))\n"
        "assert multicast._defaultPoller._selector is None\n"
        "print(len(after - before))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "0"


def test_package_names_of_document_003() -> None:
    assert multicast._defaultPoller is events._defaultPoller
    assert multicast.poll == _defaultPoller.poll
    assert multicast.loop == _defaultPoller.loop
    assert multicast.register == _defaultPoller.register
    assert multicast.unregister == _defaultPoller.unregister
    for name in ("sendto", "listen", "Multicaster", "MulticastListener", "Poller"):
        assert getattr(multicast, name) is getattr(events, name)


# --- sendto and listen -----------------------------------------------------------------------


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit 0"):
        listen(ip=GROUP, port=0, limit=0)


# --- MulticastListener ------------------------------------------------------------------------


def test_invalid_filter_is_named() -> None:
    with pytest.raises(TypeError, match="42 is neither a callable"):
        Recorder(42, GROUP, 0)
    with pytest.raises(TypeError, match="neither a callable"):
        Recorder(re.compile("text"), GROUP, 0)
    assert not _defaultPoller._registered


def test_listener_is_abstract_and_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="abstract"):
        MulticastListener()  # type: ignore[abstract]
    with pytest.raises(ValueError, match="mtu 0"):
        Recorder(None, GROUP, 0, 0)
    with pytest.raises(GroupError, match=r"192\.0\.2\.1"):
        Recorder(None, "192.0.2.1", 0)
    assert not _defaultPoller._registered


# --- Poller -----------------------------------------------------------------------------------


def test_combined_event_mask_dispatches_both_handlers(poller: Poller) -> None:
    pipe = ReadWrite()
    try:
        pipe.outside.send(b"x")
        poller.register(pipe)
        poller.poll(TIMEOUT)
        assert pipe.calls == ["read", "write"]
    finally:
        pipe.close()


def test_objects_with_only_one_handler_register(poller: Poller) -> None:
    reader, writer = ReadOnly(), WriteOnly()
    try:
        poller.register(reader)
        poller.register(writer)
        reader.outside.send(b"x")
        poller.poll(TIMEOUT)
        assert (reader.calls, writer.calls) == (["read"], ["write"])
    finally:
        reader.close()
        writer.close()


def test_unregister_keeps_the_file_open_and_the_poller_usable(poller: Poller) -> None:
    reader = ReadOnly()
    try:
        poller.register(reader)
        poller.unregister(reader)
        assert not poller.polling  # the last one left
        os.fstat(reader.fileno())  # still open
        with pytest.raises(KeyError, match="not registered"):
            poller.unregister(reader)
        poller.register(reader)
        reader.outside.send(b"x")
        poller.poll(TIMEOUT)
        assert reader.calls == ["read"]
        poller.unregister(reader.fileno())
    finally:
        reader.close()


def test_handler_that_unregisters_another_skips_its_events(poller: Poller) -> None:
    first, second = ReadOnly(), ReadOnly()

    def unregistering(this: ReadOnly, other: ReadOnly) -> None:
        this.calls.append("read")
        poller.unregister(other)

    first.handle_read = lambda: unregistering(first, second)  # type: ignore[method-assign]
    second.handle_read = lambda: unregistering(second, first)  # type: ignore[method-assign]
    try:
        poller.register(first)
        poller.register(second)
        second.outside.send(b"x")
        first.outside.send(b"x")
        poller.poll(TIMEOUT)
        assert sorted([first.calls, second.calls]) == [[], ["read"]]  # the later one skipped
    finally:
        first.close()
        second.close()


def test_handler_errors_propagate_and_the_poller_goes_on(poller: Poller) -> None:
    class Failing(ReadOnly):
        def handle_read(self) -> None:
            super().handle_read()
            raise RuntimeError("handler failed")

    failing = Failing()
    try:
        poller.register(failing)
        failing.outside.send(b"x")
        with pytest.raises(RuntimeError, match="handler failed"):
            poller.poll(TIMEOUT)
        failing.outside.send(b"y")
        with pytest.raises(RuntimeError):
            poller.poll(TIMEOUT)
        assert failing.calls == ["read", "read"]
    finally:
        failing.close()


def test_fd_closed_without_unregistering_can_be_reused(poller: Poller) -> None:
    stale = ReadOnly()
    number = stale.fileno()
    poller.register(stale)
    stale.close()
    fresh = ReadOnly()
    try:
        assert fresh.fileno() == number  # the kernel hands out the lowest free fd
        poller.register(fresh)
        fresh.outside.send(b"x")
        poller.poll(TIMEOUT)
        assert fresh.calls == ["read"]
    finally:
        fresh.close()
