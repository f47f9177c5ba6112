"""The batched fast path (recvmmsg/sendmmsg) against the plain one, datagram for datagram.

Two receivers on one port get the same datagrams; one is drained through the batched
``receive_ready``, the other through the plain loop (``batch.AVAILABLE`` patched off), and
the two lists must be equal field by field. Every test runs on both batch backends (the C
extension and ctypes: the ``io_backend`` fixture). Runs inside scripts/netns-run, on ``lo``.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import errno
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multicast.core import (
    Datagram,
    Payload,
    Receiver,
    Sender,
    batch,
    ctypes_io,
    receive_batch,
    receive_ready,
    send_many,
    send_replies,
)
from multicast.core.datagram import SocketAddress
from multicast.exceptions import AddressError, ClosedError, MessageSizeError

FAMILIES = {
    "ipv4": (socket.AF_INET, ("239.7.0.1", "239.7.0.2", "239.7.0.3")),
    "ipv6": (socket.AF_INET6, ("ff11::7:1", "ff11::7:2", "ff11::7:3")),
}
BUFFER = 1 << 20  # receive buffer asked for (the namespace caps it at 4 MiB)

pytestmark = pytest.mark.usefixtures("io_backend")  # every test on both batch backends


def _receivers(
    family: socket.AddressFamily, groups: Sequence[str], size: int, *, buffer: int = BUFFER
) -> tuple[Receiver, Receiver]:
    """Two receivers on one port, joined to ``groups`` on lo, reading ``size`` bytes at most."""
    first = Receiver(0, family=family, receive_buffer=buffer, max_size=size, blocking=False)
    second = Receiver(
        first.port, family=family, receive_buffer=buffer, max_size=size, blocking=False
    )
    for receiver in (first, second):
        for group in groups:
            receiver.join(group, "lo")
    return first, second


def _plain_ready(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, limit: int = 1 << 20
) -> list[Datagram]:
    with monkeypatch.context() as patch:
        patch.setattr(batch, "AVAILABLE", False)
        return receive_ready(receiver.sock, receiver.buffer, limit)


def _batched_ready(receiver: Receiver, limit: int = 1 << 20) -> list[Datagram]:
    assert batch.AVAILABLE
    return receive_ready(receiver.sock, receiver.buffer, limit)


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[socket.AddressFamily, tuple[str, ...]]:
    return FAMILIES[request.param]


@pytest.fixture
def senders(
    family: tuple[socket.AddressFamily, tuple[str, ...]],
) -> Iterator[tuple[Sender, Sender]]:
    with Sender(family[0], interface="lo") as one, Sender(family[0], interface="lo") as two:
        yield one, two


# --- receiving ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FAMILIES))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    size=st.sampled_from([0, 1, 64, 512, 1500]),
    sends=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(0, 2000)),
        min_size=1,
        max_size=150,
    ),
)
def test_batched_and_plain_receive_agree(
    name: str,
    size: int,
    sends: list[tuple[int, int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two sources, three groups, payloads shorter, equal and longer than the buffer."""
    family, groups = FAMILIES[name]
    batched, plain = _receivers(family, groups, size)
    with (
        batched,
        plain,
        Sender(family, interface="lo") as one,
        Sender(family, interface="lo") as two,
    ):
        for index, (which, group, length) in enumerate(sends):
            payload = bytes([index % 256]) * length
            (one, two)[which].send(payload, groups[group], batched.port)
        ports = [sender.sock.getsockname()[1] for sender in (one, two)]
        got = _batched_ready(batched)
        assert got == _plain_ready(plain, monkeypatch)
    assert len(got) == len(sends)
    for datagram, (which, group, length) in zip(got, sends, strict=True):
        assert datagram.group == groups[group]
        assert datagram.source[1] == ports[which]
        assert datagram.size == length
        assert datagram.truncated == (length > size)
        assert len(datagram.payload) == min(length, size)
        assert isinstance(datagram.payload, bytes)
        assert datagram.interface == socket.if_nametoindex("lo")
        assert datagram.ttl == 1


def test_kernel_drops_are_reported_alike(
    family: tuple[socket.AddressFamily, tuple[str, ...]],
    senders: tuple[Sender, Sender],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both sockets overflow the same way; every datagram carries the same drop count.

    The kernel stamps its drop count on datagrams queued after the drops: overflow, drain,
    send again.
    """
    batched, plain = _receivers(family[0], family[1][:1], 2048, buffer=4096)
    got: list[Datagram] = []
    expected: list[Datagram] = []
    with batched, plain:
        for burst in (400, 5):
            for index in range(burst):
                senders[0].send(bytes([index % 256]) * 300, family[1][0], batched.port)
            got += batched.receive_ready(1000)
            expected += _plain_ready(plain, monkeypatch)
    assert got == expected
    assert got[-1].drops > 0
    assert [d.drops for d in got] == sorted(d.drops for d in got)
    assert batched.drops == got[-1].drops


def test_limit_is_respected_and_the_rest_stays_queued(
    family: tuple[socket.AddressFamily, tuple[str, ...]], senders: tuple[Sender, Sender]
) -> None:
    receiver, other = _receivers(family[0], family[1][:1], 64)
    with receiver, other:
        for index in range(150):
            senders[0].send(index.to_bytes(2, "big"), family[1][0], receiver.port)
        assert receive_ready(receiver.sock, receiver.buffer, 0) == []
        first = receive_ready(receiver.sock, receiver.buffer, 70)
        rest = receive_ready(receiver.sock, receiver.buffer, 1000)
    assert [int.from_bytes(d.payload, "big") for d in first + rest] == list(range(150))
    assert len(first) == 70


def test_empty_queue_returns_at_once_even_on_a_blocking_socket(
    family: tuple[socket.AddressFamily, tuple[str, ...]],
) -> None:
    with Receiver(0, family=family[0], blocking=True) as receiver:
        assert receive_ready(receiver.sock, receiver.buffer) == []


def test_payloads_do_not_share_the_reused_buffers(
    family: tuple[socket.AddressFamily, tuple[str, ...]], senders: tuple[Sender, Sender]
) -> None:
    receiver, other = _receivers(family[0], family[1][:1], 64)
    with receiver, other:
        senders[0].send(b"first", family[1][0], receiver.port)
        (first,) = receiver.receive_ready()
        senders[0].send(b"second", family[1][0], receiver.port)
        (second,) = receiver.receive_ready()
    assert (first.payload, second.payload) == (b"first", b"second")


def test_closed_socket_raises_like_the_plain_path(
    family: tuple[socket.AddressFamily, tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver(0, family=family[0])
    receiver.close()
    with pytest.raises(OSError) as batched:
        _batched_ready(receiver)
    with pytest.raises(OSError) as plain:
        _plain_ready(receiver, monkeypatch)
    assert batched.value.errno == plain.value.errno == errno.EBADF


def test_many_sources_beyond_the_decoded_memory(
    family: tuple[socket.AddressFamily, tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forgetting decoded sources when the memory is full changes nothing received (the
    extension remembers 64 sources, ctypes here 2)."""
    monkeypatch.setattr(ctypes_io, "_MEMORY_LIMIT", 2)
    batched, plain = _receivers(family[0], family[1][:1], 64)
    with batched, plain:
        with contextlib.ExitStack() as stack:  # open together: 100 distinct ports
            for index in range(100):
                sender = stack.enter_context(Sender(family[0], interface="lo"))
                sender.send(bytes([index]), family[1][0], batched.port)
        got = batch.receivers[64].receive(batched.sock.fileno(), 100)
        assert got == _plain_ready(plain, monkeypatch)
    assert len({d.source for d in got}) == 100


def test_threads_reading_at_once_each_get_buffers(
    family: tuple[socket.AddressFamily, tuple[str, ...]], senders: tuple[Sender, Sender]
) -> None:
    """The receivers of one buffer size are shared: a thread that reads while another waits
    inside one (its system call made without the GIL) gets buffers of its own for the call."""
    group = family[1][0]
    waiting, reading = (Receiver(0, family=family[0], max_size=128) for _ in "ab")
    shared = batch.receivers[128]
    results: list[list[bytes]] = []
    with waiting, reading:
        for receiver in (waiting, reading):
            receiver.join(group, "lo")
        blocked = threading.Thread(
            target=lambda: results.append(
                [d.payload for d in shared.receive(waiting.sock.fileno(), 1000, True)]
            )
        )
        blocked.start()
        time.sleep(0.2)  # inside recvmmsg, waiting for a datagram to its port
        for index in range(200):
            senders[0].send(str(index).encode(), group, reading.port)
        got = [d.payload for d in shared.receive(reading.sock.fileno(), 1000, True)]
        assert shared.busy  # still the waiting thread's: this call used buffers of its own
        senders[0].send(b"at last", group, waiting.port)
        blocked.join(timeout=10)
    assert got == [str(i).encode() for i in range(200)]
    assert results == [[b"at last"]]
    assert batch.receivers[128] is shared and not shared.busy


# --- waiting, then taking every datagram queued -------------------------------------------------


@pytest.mark.parametrize("batched", [True, False])
def test_receive_batch_waits_then_takes_all_queued(
    batched: bool,
    family: tuple[socket.AddressFamily, tuple[str, ...]],
    senders: tuple[Sender, Sender],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch, "AVAILABLE", batched)
    with Receiver(0, family=family[0], max_size=64) as receiver:
        receiver.join(family[1][0], "lo")
        for index in range(5):
            senders[0].send(bytes([index]), family[1][0], receiver.port)
        first = receiver.receive_batch(limit=3)
        rest = receiver.receive_batch()
        later = threading.Timer(0.2, senders[0].send, (b"late", family[1][0], receiver.port))
        later.start()
        waited = receiver.receive_batch()
        later.join()
    assert [d.payload for d in first + rest] == [bytes([i]) for i in range(5)]
    assert [d.payload for d in waited] == [b"late"]


@pytest.mark.parametrize("blocking", [True, False])
def test_receive_batch_timeout_gives_nothing(
    blocking: bool, family: tuple[socket.AddressFamily, tuple[str, ...]]
) -> None:
    with Receiver(0, family=family[0], blocking=blocking) as receiver:
        assert receiver.receive_batch(timeout=0.05) == []
        assert receive_batch(receiver.sock, receiver.buffer, timeout=0) == []


def test_a_signal_ends_a_blocking_wait() -> None:
    """The handler runs while recvmmsg waits, and what it raises ends the wait."""

    class WokenError(Exception):
        pass

    def wake(signum: int, frame: object) -> None:
        raise WokenError

    previous = signal.signal(signal.SIGALRM, wake)
    try:
        with Receiver(0) as receiver:
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            with pytest.raises(WokenError):
                receiver.receive_batch()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- sending -----------------------------------------------------------------------------------


def _payload_kinds() -> list[bytes | bytearray | memoryview]:
    return [
        b"bytes",
        bytearray(b"bytearray"),
        memoryview(b"a memoryview"),
        memoryview(array.array("H", [1, 2, 3])),  # six bytes, whatever the format
        b"",
        bytes(1400),
    ]


def test_batched_and_plain_send_agree(
    family: tuple[socket.AddressFamily, tuple[str, ...]],
    senders: tuple[Sender, Sender],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payloads = _payload_kinds() * 30
    receiver, other = _receivers(family[0], family[1][:1], 2048)
    with receiver, other:
        assert send_many(senders[0].sock, payloads, family[1][0], receiver.port) == len(payloads)
        with monkeypatch.context() as patch:
            patch.setattr(batch, "AVAILABLE", False)
            sent = send_many(senders[0].sock, payloads, family[1][0], receiver.port)
        assert sent == len(payloads)
        got = [d.payload for d in receiver.receive_ready(1000)]
    expected = [bytes(p) for p in payloads]
    assert got == expected + expected


def test_send_beyond_one_batch_region(
    family: tuple[socket.AddressFamily, tuple[str, ...]], senders: tuple[Sender, Sender]
) -> None:
    """Large payloads fill the region before the slots: the rest go in the next call."""
    payloads = [bytes([i]) * 60_000 for i in range(12)]
    receiver, other = _receivers(family[0], family[1][:1], 65_535, buffer=4 << 20)
    with receiver, other:
        assert send_many(senders[0].sock, iter(payloads), family[1][0], receiver.port) == 12
        assert [d.payload for d in receiver.receive_ready(100)] == payloads


@pytest.mark.parametrize("batched", [True, False])
def test_errors_come_after_the_payloads_before_them(
    batched: bool,
    family: tuple[socket.AddressFamily, tuple[str, ...]],
    senders: tuple[Sender, Sender],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch, "AVAILABLE", batched)

    def failing() -> Iterator[bytes]:
        yield b"one"
        yield b"two"
        raise RuntimeError("source failed")

    receiver, other = _receivers(family[0], family[1][:1], 70_000, buffer=4 << 20)
    with receiver, other:
        with pytest.raises(MessageSizeError, match="70000 bytes"):
            send_many(senders[0].sock, [b"a", bytes(70_000), b"b"], family[1][0], receiver.port)
        with pytest.raises(RuntimeError, match="source failed"):
            send_many(senders[0].sock, failing(), family[1][0], receiver.port)
        assert [d.payload for d in receiver.receive_ready()] == [b"a", b"one", b"two"]


def _fake_sendmmsg(results: list[int | tuple[int, int]]) -> object:
    """A sendmmsg that returns ``results`` in turn: counts, or (-1, errno) failures."""

    pending = list(results)

    def call(fd: int, address: int, count: int, flags: int) -> int:
        result = pending.pop(0)
        if isinstance(result, tuple):
            ctypes.set_errno(result[1])
            return result[0]
        return min(result, count)

    return call


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([(-1, errno.EAGAIN)], 0),
        ([3, (-1, errno.EAGAIN)], 3),
        ([(-1, errno.EINTR), 2, 3, 5], 10),
    ],
)
def test_send_stops_when_it_would_block(
    results: list[int | tuple[int, int]],
    expected: int,
    senders: tuple[Sender, Sender],
    family: tuple[socket.AddressFamily, tuple[str, ...]],
) -> None:
    sender = batch.BatchSender()
    sender._sendmmsg = _fake_sendmmsg(results)  # type: ignore[assignment]
    name = batch.encode_address(family[0], (family[1][0], 9))
    assert name is not None
    assert sender.send(senders[0].sock, [b"x"] * 10, name) == expected


def test_send_error_is_raised(
    senders: tuple[Sender, Sender], family: tuple[socket.AddressFamily, tuple[str, ...]]
) -> None:
    sender = batch.BatchSender()
    sender._sendmmsg = _fake_sendmmsg([1, (-1, errno.ENETUNREACH)])  # type: ignore[assignment]
    name = batch.encode_address(family[0], (family[1][0], 9))
    assert name is not None
    with pytest.raises(OSError, match="unreachable") as raised:
        sender.send(senders[0].sock, [b"x"] * 5, name)
    assert raised.value.errno == errno.ENETUNREACH
    assert not sender.busy


def test_a_payload_source_that_sends_too(
    family: tuple[socket.AddressFamily, tuple[str, ...]], senders: tuple[Sender, Sender]
) -> None:
    """A generator calling send_many itself gets its own batch buffers."""
    receiver, other = _receivers(family[0], family[1][:2], 64)

    def payloads() -> Iterator[bytes]:
        for index in range(3):
            send_many(senders[1].sock, [b"inner"], family[1][1], receiver.port)
            yield b"outer%d" % index

    with receiver, other:
        assert send_many(senders[0].sock, payloads(), family[1][0], receiver.port) == 3
        got = sorted(d.payload for d in receiver.receive_ready())
    assert got == [b"inner"] * 3 + [b"outer0", b"outer1", b"outer2"]


def _asked(family: socket.AddressFamily, count: int) -> tuple[socket.socket, list[socket.socket]]:
    """A server socket on loopback, and ``count`` clients that each sent it one datagram."""
    loopback = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind((loopback, 0))
    clients = []
    for index in range(count):
        client = socket.socket(family, socket.SOCK_DGRAM)
        client.bind((loopback, 0))
        client.settimeout(5.0)
        client.sendto(b"question %d" % index, server.getsockname())
        clients.append(client)
    return server, clients


def test_send_replies_answers_each_source(
    family: tuple[socket.AddressFamily, tuple[str, ...]],
) -> None:
    server, clients = _asked(family[0], 3)
    with server, contextlib.ExitStack() as stack:
        for client in clients:
            stack.enter_context(client)
        questions = receive_ready(server, bytearray(64))
        replies = [(b"answer to " + d.payload, d) for d in questions]
        assert send_replies(server, family[0], replies) == []
        answers = [client.recv(64) for client in clients]
    assert answers == [b"answer to question %d" % index for index in range(3)]


def test_send_replies_reports_a_refused_source_and_sends_the_others() -> None:
    server, (client,) = _asked(socket.AF_INET, 1)
    with server, client:
        (question,) = receive_ready(server, bytearray(64))
        forged = Datagram(b"x", ("255.255.255.255", 9))  # no SO_BROADCAST: EACCES
        refused = send_replies(server, socket.AF_INET, [(b"no", forged), (b"yes", question)])
        assert client.recv(64) == b"yes"
    ((datagram, error),) = refused
    assert datagram is forged
    assert error.errno == errno.EACCES


def test_send_replies_refuses_an_oversized_payload_before_sending() -> None:
    server, (client,) = _asked(socket.AF_INET, 1)
    with server, client:
        (question,) = receive_ready(server, bytearray(64))
        too_large = bytes(70_000)
        with pytest.raises(MessageSizeError):
            send_replies(server, socket.AF_INET, [(b"first", question), (too_large, question)])
        client.settimeout(0.2)
        with pytest.raises(TimeoutError):  # not even the first was sent
            client.recv(64)


def test_send_each_refuses_what_is_no_numeric_address_without_looking_it_up(
    family: tuple[socket.AddressFamily, tuple[str, ...]], senders: tuple[Sender, Sender]
) -> None:
    """Both backends encode each address by one rule: a name, or an address of the other
    family, is refused with EAFNOSUPPORT and the others are sent (flow info and all)."""
    group = family[1][0]
    other = "239.7.0.9" if family[0] == socket.AF_INET6 else "ff11::7:9"
    with Receiver(0, family=family[0], max_size=64, blocking=False) as receiver:
        receiver.join(group, "lo")
        port = receiver.port
        pairs: list[tuple[Payload, SocketAddress]] = [
            (b"plain", (group, port)),
            (b"by name", ("localhost", port)),
            (b"empty", ("", port)),
            (b"broadcast", ("<broadcast>", port)),
            (b"other family", (other, port)),
            (b"with flow info", (group, port, 0x12345, 0)),
        ]
        refused = batch.send_each(senders[0].sock, family[0], pairs)
        got = [d.payload for d in receive_ready(receiver.sock, receiver.buffer)]
    assert refused == [(index, errno.EAFNOSUPPORT) for index in (1, 2, 3, 4)]
    assert got == [b"plain", b"with flow info"]


@pytest.mark.parametrize(
    ("address", "error"),
    [
        (("239.7.0.1", 70_000), OverflowError),
        ((None, 9), TypeError),
        (("239.7.0.1",), TypeError),
        (("239.7.0.1", 9, 0, 0, 0), TypeError),
        (["239.7.0.1", 9], TypeError),  # a list: the extension checked no type before
    ],
)
def test_send_each_raises_for_a_malformed_address_before_sending(
    address: Any, error: type[Exception]
) -> None:
    with Receiver(0, bind_address="127.0.0.1", blocking=False) as receiver, Sender() as sender:
        pairs = [(b"first", ("127.0.0.1", receiver.port)), (b"bad", address)]
        with pytest.raises(error):
            batch.send_each(sender.sock, socket.AF_INET, pairs)
        assert receive_ready(receiver.sock, receiver.buffer) == []  # not even the first


def test_names_and_timeouts_take_the_plain_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Timeouts must be waited for: sendto does it. A name is refused before any path."""

    def refuse(*arguments: object) -> int:
        raise AssertionError("the batch path was taken")

    monkeypatch.setattr(batch, "send", refuse)
    with Receiver(0, bind_address="127.0.0.1") as receiver, Sender() as sender:
        with pytest.raises(AddressError, match="never looked up in DNS"):
            send_many(sender.sock, [b"by name"], "localhost", receiver.port)
        sender.sock.settimeout(1.0)
        assert send_many(sender.sock, [b"with timeout"], "127.0.0.1", receiver.port) == 1
        assert receiver.receive(timeout=2).payload == b"with timeout"


def test_busy_polling_takes_what_comes_and_gives_up_in_time(
    family: tuple[socket.AddressFamily, tuple[str, ...]], senders: tuple[Sender, Sender]
) -> None:
    """A spin finds a datagram queued meanwhile; on an empty socket it ends by the timeout."""
    with Receiver(0, family=family[0], max_size=64, blocking=False) as receiver:
        receiver.join(family[1][0], "lo")
        assert receiver.set_busy_poll(0.05) in (True, False)  # SO_BUSY_POLL may be refused
        later = threading.Timer(0.01, senders[0].send, (b"soon", family[1][0], receiver.port))
        later.start()
        got = receive_ready(receiver.sock, receiver.buffer, spin=0.5)
        later.join()
        assert [d.payload for d in got] == [b"soon"]
        started = time.monotonic()
        assert receiver.receive_batch(timeout=0.1) == []
        assert 0.1 <= time.monotonic() - started < 1.0
        senders[0].send(b"queued", family[1][0], receiver.port)
        assert [
            d.payload for d in receive_batch(receiver.sock, receiver.buffer, spin=0.01, timeout=1)
        ] == [b"queued"]


def test_a_watching_receiver_whose_socket_was_closed_raises_at_once() -> None:
    with Receiver(0, blocking=False) as receiver:
        receiver.watch_interfaces()
        receiver.sock.close()
        with pytest.raises(ClosedError):
            receiver.receive_batch(timeout=5)
