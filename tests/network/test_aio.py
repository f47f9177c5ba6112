"""asyncio receiver and sender (multicast.aio) on `lo`, inside the private namespace."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from multicast.aio import AsyncReceiver, AsyncSender, Overflow, open_receiver, open_sender
from multicast.core import Datagram, Sender
from multicast.core import open_receiver as open_core_receiver
from multicast.exceptions import ClosedError, GroupError
from multicast.testing import Testbed

FAMILIES = {
    "ipv4": (socket.AF_INET, "239.4.0.1", "232.4.0.1", "127.0.0.1"),
    "ipv6": (socket.AF_INET6, "ff11::4:1", "ff31::4:1", "::1"),
}
GROUP = "239.4.0.1"
TIMEOUT = 2.0


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[socket.AddressFamily, str, str, str]:
    return FAMILIES[request.param]


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run (at most ~2 s) until ``condition()``."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def first(awaitable: Awaitable[Datagram]) -> Datagram:
    return await asyncio.wait_for(awaitable, TIMEOUT)


def send_all(group: str, port: int, payloads: list[bytes]) -> None:
    with Sender() as sender:
        for payload in payloads:
            sender.send(payload, group, port)


def test_send_and_receive_with_metadata(family: tuple[socket.AddressFamily, str, str, str]) -> None:
    _, group, _, local = family

    async def test() -> None:
        async with open_receiver(group, 0, interfaces="lo") as receiver:
            async with open_sender(group, receiver.port, ttl=3, interface="lo") as sender:
                for n in range(3):
                    assert await sender.send(bytes([n]) * 10) == 10
            got = [await first(receiver.receive()) for _ in range(3)]
        assert [d.payload for d in got] == [bytes([n]) * 10 for n in range(3)]
        assert {(d.group, d.ttl, d.source[0], d.truncated) for d in got} == {
            (group, 3, local, False)
        }
        assert receiver.closed

    run(test)


def test_async_iteration_ends_after_close() -> None:
    async def test() -> None:
        receiver = open_receiver([GROUP], 0)
        send_all(GROUP, receiver.port, [b"1", b"2"])
        await until(lambda: receiver.queued == 2)
        receiver.close()
        assert [d.payload async for d in receiver] == [b"1", b"2"]  # what was queued
        with pytest.raises(ClosedError, match=f"port {receiver.port} is closed") as closed:
            await receiver.receive()
        assert closed.value.errno == errno.EBADF

    run(test)


def test_close_wakes_a_waiting_reader() -> None:
    async def test() -> None:
        async with open_receiver(GROUP, 0) as receiver:
            reader = asyncio.create_task(receiver.receive())
            await asyncio.sleep(0.01)
            receiver.close()
            with pytest.raises(ClosedError):
                await reader

    run(test)


def test_source_specific(
    family: tuple[socket.AddressFamily, str, str, str],
    other_source: dict[socket.AddressFamily, str],
) -> None:
    af, _, ssm_group, local = family

    async def test() -> None:
        async with open_receiver(ssm_group, 0, interfaces="lo", sources=[local]) as receiver:
            port = receiver.port
            for source, payload in ((other_source[af], b"stranger"), (local, b"friend")):
                async with open_sender(ssm_group, port, interface="lo", source=source) as sender:
                    await sender.send(payload)
            got = await first(receiver.receive())
            assert (got.payload, got.source[0]) == (b"friend", local)
            await asyncio.sleep(0.05)
            assert receiver.queued == 0

    run(test)


def test_sender_loopback_decides_whether_this_host_hears_it(testbed: Testbed) -> None:
    h1, h2 = testbed.add_hosts(2)
    testbed.connect(h1, h2)  # loopback makes a difference on a real link only, not on lo

    async def test() -> None:
        receivers = [
            AsyncReceiver(host.call(open_core_receiver, [GROUP], 4444, interfaces="eth0"))
            for host in (h1, h2)
        ]
        for loopback in (False, True):
            sender = h1.call(Sender, interface="eth0", loopback=loopback)
            async with AsyncSender(sender, GROUP, 4444) as async_sender:
                await async_sender.send(str(loopback).encode())
        here, there = receivers
        assert (await first(there.receive())).payload == b"False"
        assert (await first(there.receive())).payload == b"True"
        assert (await first(here.receive())).payload == b"True"
        assert here.queued == 0
        for receiver in receivers:
            receiver.close()

    run(test)


def test_join_and_leave_more_groups() -> None:
    async def test() -> None:
        async with open_receiver(GROUP, 0) as receiver:
            receiver.join("239.4.0.2")
            send_all("239.4.0.2", receiver.port, [b"second"])
            assert (await first(receiver.receive())).group == "239.4.0.2"
            receiver.leave("239.4.0.2")
            assert [str(m.group) for m in receiver.memberships] == [GROUP]

    run(test)


@pytest.mark.parametrize(
    ("overflow", "kept"),
    [(Overflow.DROP_OLDEST, range(16, 20)), (Overflow.DROP_NEWEST, range(4))],
)
def test_drop_policies_keep_the_queue_bounded(overflow: Overflow, kept: range) -> None:
    async def test() -> None:
        async with open_receiver(GROUP, 0, queue_size=4, overflow=overflow) as receiver:
            send_all(GROUP, receiver.port, [bytes([n]) for n in range(20)])
            await until(lambda: receiver.overflow_drops == 16)
            assert receiver.queued == 4
            assert [(await receiver.receive()).payload for _ in range(4)] == [
                bytes([n]) for n in kept
            ]
            assert receiver.kernel_drops == 0

    run(test)


def test_pause_leaves_the_rest_to_the_kernel_buffer_and_resumes() -> None:
    async def test() -> None:
        async with open_receiver(GROUP, 0, queue_size=4, batch=3) as receiver:
            assert receiver.overflow is Overflow.PAUSE  # the default
            send_all(GROUP, receiver.port, [bytes([n]) for n in range(20)])
            await until(lambda: receiver.paused)
            assert receiver.queued == 4
            payloads = [(await first(receiver.receive())).payload for _ in range(20)]
            assert payloads == [bytes([n]) for n in range(20)]
            assert (receiver.overflow_drops, receiver.kernel_drops) == (0, 0)
            assert not receiver.paused

    run(test)


def test_one_wake_up_drains_every_ready_datagram() -> None:
    async def test() -> None:
        async with open_receiver(GROUP, 0, batch=100) as receiver:
            send_all(GROUP, receiver.port, [b"x"] * 50)
            await until(lambda: receiver.queued > 0)
            assert receiver.queued == 50

    run(test)


def test_a_busy_stream_is_read_in_batches_after_a_rest() -> None:
    async def test() -> None:
        async with open_receiver(GROUP, 0, coalesce=0.5) as receiver:
            send_all(GROUP, receiver.port, [b"quiet"])  # after a long wait: read at once
            assert (await first(receiver.receive())).payload == b"quiet"
            send_all(GROUP, receiver.port, [b"busy"])  # soon after: read, then rest 0.5 s
            assert (await first(receiver.receive())).payload == b"busy"
            send_all(GROUP, receiver.port, [b"1", b"2", b"3"])
            await asyncio.sleep(0.05)
            assert receiver.queued == 0  # gathering in the kernel's buffer meanwhile
            await until(lambda: receiver.queued > 0)
            assert receiver.queued == 3  # taken in one read when the rest is over
        with pytest.raises(ValueError, match="coalesce 2"):
            open_receiver(GROUP, 0, coalesce=2)

    run(test)


def test_kernel_drops_are_reported() -> None:
    async def test() -> None:
        async with open_receiver(GROUP, 0, receive_buffer=4096) as receiver:
            send_all(GROUP, receiver.port, [b"d" * 512] * 200)  # the loop is not reading now
            await until(lambda: receiver.queued > 0)
            kept = receiver.queued
            for _ in range(kept):
                await receiver.receive()
            send_all(GROUP, receiver.port, [b"last"])
            last = await first(receiver.receive())
            assert last.payload == b"last"
            assert receiver.kernel_drops == last.drops == 200 - kept > 0

    run(test)


def test_sender_waits_while_the_socket_would_block(monkeypatch: pytest.MonkeyPatch) -> None:
    async def test() -> None:
        async with open_receiver(GROUP, 0) as receiver:
            async with open_sender(GROUP, receiver.port) as sender:
                real_send = Sender.send
                refusals = [BlockingIOError()]

                def full_once(self: Sender, *args: Any) -> int:
                    if refusals:
                        raise refusals.pop()
                    return real_send(self, *args)

                monkeypatch.setattr(Sender, "send", full_once)
                assert await sender.send(b"after waiting") == 13
                assert not refusals
            assert (await first(receiver.receive())).payload == b"after waiting"
            with pytest.raises(ClosedError, match="closed"):
                await sender.send(b"too late")

    run(test)


def test_bad_arguments_are_named() -> None:
    async def test() -> None:
        with pytest.raises(GroupError, match="not a multicast address"):
            open_receiver("192.0.2.1", 0)
        with pytest.raises(GroupError, match="not a multicast address"):
            open_sender("192.0.2.1", 5000)
        with pytest.raises(ValueError, match="queue_size 0"):
            open_receiver(GROUP, 0, queue_size=0)
        with pytest.raises(ValueError, match="batch 0"):
            open_receiver(GROUP, 0, batch=0)
        with pytest.raises(ValueError, match="'spill'"):
            open_receiver(GROUP, 0, overflow="spill")  # type: ignore[arg-type]

    run(test)
    with open_core_receiver([GROUP], 0) as receiver:
        with pytest.raises(RuntimeError, match="no running event loop"):
            AsyncReceiver(receiver)
