"""The event layer of document 003 (multicast.events), and each defect of the original fixed.

Runs inside the private namespace of scripts/netns-run, on `lo`.
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import multicast
from multicast import events
from multicast.core import Sender
from multicast.events import (
    READ_BUDGET,
    Multicaster,
    MulticastListener,
    Poller,
    _defaultPoller,
    listen,
    sendto,
)
from multicast.exceptions import GroupError
from multicast.testing import Testbed

GROUP = "239.3.0.1"
OTHER_GROUP = "239.3.0.2"
TIMEOUT = 2.0
ACCEPTANCE = Path(__file__).resolve().parents[2] / "shared/acceptance/seed_003_poller.txt"


@pytest.fixture(autouse=True)
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
    with Poller() as own:
        yield own


class Recorder(MulticastListener):
    """Keeps every packet it is handed; stops after ``stop_after`` packets if given."""

    def __init__(self, *args: object, stop_after: int | None = None, **options: object) -> None:
        self.packets: list[tuple[bytes, tuple[str, int]]] = []
        self.stop_after = stop_after
        super().__init__(*args, **options)  # type: ignore[arg-type]

    def handle_packet(self, packet: bytes, addr: tuple[str, int]) -> bool:
        self.packets.append((packet, addr))
        return len(self.packets) == self.stop_after

    @property
    def payloads(self) -> list[bytes]:
        return [packet for packet, _ in self.packets]


class Numbers(Multicaster):
    """Sends b'0', b'1', ... b'<count - 1>'."""

    def __init__(self, count: int, *args: object, **options: object) -> None:
        self.count = count
        super().__init__(*args, **options)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[bytes]:
        return (str(n).encode() for n in range(self.count))


class Pipe:
    """A datagram socket pair with handlers that record their calls (no multicast)."""

    def __init__(self) -> None:
        self.inside, self.outside = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.calls: list[str] = []

    def fileno(self) -> int:
        return self.inside.fileno()

    def close(self) -> None:
        self.inside.close()
        self.outside.close()


class ReadWrite(Pipe):
    def handle_read(self) -> None:
        self.calls.append("read")
        self.inside.recv(100)

    def handle_write(self) -> None:
        self.calls.append("write")


class ReadOnly(Pipe):
    def handle_read(self) -> None:
        self.calls.append("read")
        self.inside.recv(100)


class WriteOnly(Pipe):
    def handle_write(self) -> None:
        self.calls.append("write")


def _poll_until(poller: Poller, done: Callable[[], object], rounds: int = 200) -> None:
    """Poll (at most ``rounds`` times, 10 ms each) until ``done()`` is true."""
    for _ in range(rounds):
        if done():
            return
        poller.poll(0.01)
    raise AssertionError("condition not reached")


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


@pytest.mark.skipif(not ACCEPTANCE.exists(), reason="shared/acceptance is not beside the repo")
def test_acceptance_examples_of_document_003() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "doctest", str(ACCEPTANCE)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- sendto and listen -----------------------------------------------------------------------


def test_listen_without_handler_joins_at_once() -> None:
    with listen(ip=GROUP, port=0, timeout=TIMEOUT) as packets:
        sendto(b"test", GROUP, packets.listener.port)  # before any poll() or next()
        multicast.poll()
        assert next(packets) == b"test"


def test_next_polls_by_itself_and_times_out() -> None:
    with listen(ip=GROUP, port=0, timeout=0.2) as packets:
        sendto([b"a", b"b"], GROUP, packets.listener.port)
        assert [next(packets), next(packets)] == [b"a", b"b"]
        with pytest.raises(TimeoutError, match=GROUP):
            next(packets)


def test_unread_packets_are_bounded_dropping_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "LISTEN_BACKLOG", 2)
    with listen(ip=GROUP, port=0, timeout=TIMEOUT) as packets:
        sendto([b"1", b"2", b"3"], GROUP, packets.listener.port)
        multicast.poll(TIMEOUT)
        assert (next(packets), next(packets), packets.dropped) == (b"2", b"3", 1)


def test_sendto_sends_one_bytes_argument_as_one_packet() -> None:
    with listen(ip=GROUP, port=0, timeout=TIMEOUT) as packets:
        port = packets.listener.port
        sendto(b"test", GROUP, port)
        sendto(iter([bytearray(b"x"), memoryview(b"yz")]), GROUP, port)
        assert [next(packets) for _ in range(3)] == [b"test", b"x", b"yz"]
        with pytest.raises(TypeError, match="encode the text first"):
            sendto("test", GROUP, port)  # type: ignore[arg-type]
        with pytest.raises(GroupError):
            sendto(b"x", "192.0.2.1", port)


def test_listen_iterator_stops_after_limit() -> None:
    with listen(ip=GROUP, port=0, limit=2, timeout=TIMEOUT) as packets:
        sendto([b"1", b"2", b"3"], GROUP, packets.listener.port)
        assert list(packets) == [b"1", b"2"]
        assert packets.listener.closed


def test_listen_with_handler_returns_when_handler_returns_true() -> None:
    seen: list[bytes] = []
    with Numbers(5, GROUP, 4343) as numbers:  # driven by the default poller that listen runs
        listen(lambda packet, addr: seen.append(packet) or packet == b"1", GROUP, 4343, timeout=5)
    assert seen == [b"0", b"1"]
    assert numbers.closed


def test_limit_stops_after_exactly_that_many_packets() -> None:
    seen: list[bytes] = []
    with Numbers(6, GROUP, 4343):
        listen(lambda packet, addr: seen.append(packet), GROUP, 4343, limit=3, timeout=TIMEOUT)
    assert seen == [b"0", b"1", b"2"]


def test_listen_can_run_again_after_every_listener_closed() -> None:
    seen: list[bytes] = []
    for _ in range(2):
        with Numbers(1, GROUP, 4343):
            listen(lambda packet, addr: seen.append(packet), GROUP, 4343, limit=1, timeout=TIMEOUT)
        assert not _defaultPoller.polling  # nothing registered any more
    assert seen == [b"0", b"0"]


def test_listen_times_out_with_a_clear_error() -> None:
    with pytest.raises(TimeoutError, match=f"{GROUP} port 4343"):
        listen(lambda packet, addr: True, GROUP, 4343, timeout=0.1)
    assert not _defaultPoller._registered


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit 0"):
        listen(ip=GROUP, port=0, limit=0)


# --- MulticastListener ------------------------------------------------------------------------


def test_listener_filters_by_regex_and_by_callable(poller: Poller) -> None:
    with (
        Recorder(b"keep", GROUP, 0, poller=poller) as by_bytes,
        Recorder("ke+p", GROUP, 0, poller=poller) as by_text,
        Recorder(re.compile(b"k"), GROUP, 0, poller=poller) as by_pattern,
        Recorder(lambda packet, addr: addr[0] == "127.0.0.1", GROUP, 0, poller=poller) as by_call,
        Sender() as sender,
    ):
        for receiver in (by_bytes, by_text, by_pattern, by_call):
            sender.send(b"drop keep", GROUP, receiver.port)
            sender.send(b"keep this", GROUP, receiver.port)
        _poll_until(poller, lambda: len(by_call.packets) == 2)
    assert by_bytes.payloads == by_text.payloads == by_pattern.payloads == [b"keep this"]
    assert by_call.payloads == [b"drop keep", b"keep this"]


def test_invalid_filter_is_named() -> None:
    with pytest.raises(TypeError, match="42 is neither a callable"):
        Recorder(42, GROUP, 0)
    with pytest.raises(TypeError, match="neither a callable"):
        Recorder(re.compile("text"), GROUP, 0)
    assert not _defaultPoller._registered


def test_filter_given_as_class_attribute_is_shadowed_by_the_constructor(poller: Poller) -> None:
    class Printer(Recorder):
        filter = lambda packet, addr: True  # noqa: E731 (the document's example)

    with Printer(None, GROUP, 0, poller=poller) as printer, Sender() as sender:
        sender.send(b"test", GROUP, printer.port)
        _poll_until(poller, lambda: printer.packets)
    assert printer.filter is None
    assert printer.payloads == [b"test"]


def test_true_result_closes_the_listener(poller: Poller) -> None:
    with Recorder(None, GROUP, 0, poller=poller, stop_after=1) as listener, Sender() as sender:
        sender.send(b"1", GROUP, listener.port)
        sender.send(b"2", GROUP, listener.port)
        _poll_until(poller, lambda: listener.closed)
    assert listener.payloads == [b"1"]
    assert not poller._registered


def test_listener_ignores_unicast_to_its_port(poller: Poller) -> None:
    with Recorder(None, GROUP, 0, poller=poller) as listener, Sender() as sender:
        sender.send(b"unicast", "127.0.0.1", listener.port)
        sender.send(b"group", GROUP, listener.port)
        _poll_until(poller, lambda: listener.packets)
        poller.poll(0.05)
    assert listener.payloads == [b"group"]


def test_long_packets_are_cut_at_mtu_and_counted(poller: Poller) -> None:
    with Recorder(None, GROUP, 0, 8, poller=poller) as listener, Sender() as sender:
        sender.send(b"0123456789abcdef", GROUP, listener.port)
        _poll_until(poller, lambda: listener.packets)
    assert listener.payloads == [b"01234567"]
    assert listener.truncated == 1


def test_ipv6_and_source_specific_listeners(poller: Poller) -> None:
    with (
        Recorder(None, "ff11::3:1", 0, interface="lo", poller=poller) as ipv6,
        Recorder(None, "232.3.0.1", 0, source="127.0.0.1", poller=poller) as chosen,
        Recorder(None, "232.3.0.1", 0, source="127.0.0.2", poller=poller) as other,
        Sender(socket.AF_INET6, interface="lo") as sender6,
        Sender() as sender4,
    ):
        sender6.send(b"six", "ff11::3:1", ipv6.port)
        sender4.send(b"ssm", "232.3.0.1", chosen.port)
        sender4.send(b"ssm", "232.3.0.1", other.port)
        _poll_until(poller, lambda: ipv6.packets and chosen.packets)
        poller.poll(0.05)
    assert (ipv6.payloads, ipv6.packets[0][1][0]) == ([b"six"], "::1")
    assert chosen.payloads == [b"ssm"]
    assert other.payloads == []


def test_listener_is_abstract_and_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="abstract"):
        MulticastListener()  # type: ignore[abstract]
    with pytest.raises(ValueError, match="mtu 0"):
        Recorder(None, GROUP, 0, 0)
    with pytest.raises(GroupError, match=r"192\.0\.2\.1"):
        Recorder(None, "192.0.2.1", 0)
    assert not _defaultPoller._registered


# --- Multicaster ------------------------------------------------------------------------------


def test_multicaster_sends_its_packets_then_closes(poller: Poller) -> None:
    with Recorder(None, GROUP, 0, poller=poller) as listener:
        numbers = Numbers(3, GROUP, listener.port, poller=poller)
        _poll_until(poller, lambda: len(listener.packets) == 3)
    assert listener.payloads == [b"0", b"1", b"2"]
    assert numbers.closed and numbers.sent == 3
    with pytest.raises(TypeError, match="abstract"):
        Multicaster()  # type: ignore[abstract]
    with pytest.raises(ValueError, match="rate 0"):
        Numbers(1, GROUP, 4343, rate=0)


def test_multicaster_loopback_and_interface_on_a_real_link(
    poller: Poller, testbed: Testbed
) -> None:
    h1, h2 = testbed.add_hosts(2)
    testbed.connect(h1, h2)  # loopback makes a difference on a real link only, not on lo
    here = h1.call(Recorder, None, GROUP, 4444, interface="eth0", poller=poller)
    there = h2.call(Recorder, None, GROUP, 4444, interface="eth0", poller=poller)
    with here, there:
        for loopback in (False, True):
            h1.call(Numbers, 1, GROUP, 4444, interface="eth0", loopback=loopback, poller=poller)
        _poll_until(poller, lambda: len(there.packets) == 2 and len(here.packets) == 1)
        poller.poll(0.05)
    assert (there.payloads, here.payloads) == ([b"0", b"0"], [b"0"])
    assert there.packets[0][1][0] == h1.address()


def test_multicaster_keeps_a_refused_packet_for_the_next_turn(
    poller: Poller, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_send = Sender.send
    refusals = [BlockingIOError()]

    def full_once(self: Sender, *args: object) -> int:
        if refusals:
            raise refusals.pop()
        return real_send(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Sender, "send", full_once)
    with Recorder(None, GROUP, 0, poller=poller) as listener:
        numbers = Numbers(3, GROUP, listener.port, poller=poller)
        poller.poll(0)
        assert (numbers.sent, refusals) == (0, [])
        _poll_until(poller, lambda: len(listener.packets) == 3)
    assert listener.payloads == [b"0", b"1", b"2"]


def test_rate_paces_without_spinning() -> None:
    class Counting(Poller):
        polls = 0

        def poll(self, timeout: float | None = 0) -> None:
            self.polls += 1
            super().poll(timeout)

    with Counting() as poller, Recorder(None, GROUP, 0, poller=poller) as listener:
        numbers = Numbers(5, GROUP, listener.port, rate=50.0, poller=poller)
        started = time.process_time()
        finished = poller.run_until(
            lambda: len(listener.packets) == 5, deadline=time.monotonic() + 10
        )
        cpu = time.process_time() - started
    assert finished
    assert listener.payloads == [b"0", b"1", b"2", b"3", b"4"]
    assert numbers.closed
    assert poller.polls < 40  # a spinning poller would turn thousands of times in 80 ms
    assert cpu < 0.05


def test_flooded_listener_starves_neither_listeners_nor_multicasters(poller: Poller) -> None:
    with (
        Recorder(None, GROUP, 0, poller=poller) as flooded,
        Recorder(None, OTHER_GROUP, 0, poller=poller) as quiet,
        Sender() as sender,
    ):
        for _ in range(5 * READ_BUDGET):
            sender.send(b"flood", GROUP, flooded.port)
        sender.send(b"hello", OTHER_GROUP, quiet.port)
        numbers = Numbers(5, OTHER_GROUP, quiet.port, poller=poller)
        poller.poll(0.5)
        assert quiet.payloads[:1] == [b"hello"]  # served in the same poll as the flood
        assert len(flooded.packets) <= READ_BUDGET
        _poll_until(poller, lambda: numbers.closed)
        assert numbers.sent == 5
        assert len(flooded.packets) < 5 * READ_BUDGET  # the multicaster did not wait for it


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


def test_flags_narrow_the_events_and_must_match_handlers(poller: Poller) -> None:
    both, reader = ReadWrite(), ReadOnly()
    try:
        poller.register(both, selectors.EVENT_READ)
        poller.poll(0)
        assert both.calls == []  # writable, but only reading is watched
        with pytest.raises(ValueError, match=r"no handle_write\(\)"):
            poller.register(reader, selectors.EVENT_WRITE)
        with pytest.raises(ValueError, match=r"selectors\.EVENT_READ"):
            poller.register(reader, 8)
        with socket.socket() as plain, pytest.raises(TypeError, match="neither a handle_read"):
            poller.register(plain)
        with pytest.raises(TypeError, match="no fileno"):
            poller.register(object())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="already registered"):
            poller.register(both)
    finally:
        both.close()
        reader.close()


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


@pytest.mark.parametrize("interval", [0, 30])
def test_idle_loop_sleeps_and_stops_from_another_thread(poller: Poller, interval: float) -> None:
    with Recorder(None, GROUP, 0, poller=poller):
        thread = threading.Thread(target=poller.loop, kwargs={"interval": interval})
        thread.start()
        try:
            started = time.process_time()
            time.sleep(1.0)
            cpu = time.process_time() - started  # every thread of this process
            assert cpu < 0.02, f"an idle loop used {cpu:.3f} s of CPU in 1 s"
        finally:
            poller.polling = False
            thread.join(1.0)
        assert not thread.is_alive(), "loop() did not return within 1 s of polling = False"
