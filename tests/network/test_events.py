"""The event layer of document 003 (multicast.events), and each defect of the original fixed.

Runs inside the private namespace of scripts/netns-run, on `lo`.
"""

from __future__ import annotations

import re
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import multicast
from multicast import events
from multicast.core import Sender, send_datagram
from multicast.events import READ_BUDGET, Multicaster, Poller, _defaultPoller, listen, sendto
from multicast.exceptions import GroupError
from multicast.testing import Testbed

from support.events import GROUP, TIMEOUT, ReadOnly, ReadWrite, Recorder

pytestmark = pytest.mark.usefixtures("default_poller_left_clean")

OTHER_GROUP = "239.3.0.2"


class Numbers(Multicaster):
    """Sends b'0', b'1', ... b'<count - 1>'."""

    def __init__(self, count: int, *args: object, **options: object) -> None:
        self.count = count
        super().__init__(*args, **options)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[bytes]:
        return (str(n).encode() for n in range(self.count))


def _poll_until(poller: Poller, done: Callable[[], object], rounds: int = 200) -> None:
    """Poll (at most ``rounds`` times, 10 ms each) until ``done()`` is true."""
    for _ in range(rounds):
        if done():
            return
        poller.poll(0.01)
    raise AssertionError("condition not reached")


# --- import and the documented names --------------------------------------------------------


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
        send_datagram(sender.sock, b"unicast", "127.0.0.1", listener.port)
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
