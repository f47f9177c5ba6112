"""stream, monitor, ping and pong over real sockets: on lo, and across veth hosts.

Every run is bounded by a count and a duration. Counts are compared with what was sent or
with what the link was set up to do; nothing is asserted about timing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import pytest

from multicast.core import Datagram, Receiver, Sender, send_datagram, socket_drops
from multicast.exceptions import AuthKeyError
from multicast.testing import Host, Testbed
from multicast.tools import Monitor, Pong, run_ping, run_pong, run_stream
from multicast.tools.framing import Flag, encode_frame, frame_context
from multicast.tools.monitor import IntervalReport, MonitorReport

P = ParamSpec("P")
T = TypeVar("T")

KEY = b"a shared key of 32 bytes........"
WRONG_KEY = b"another key, also long enough..."
GROUPS = {
    socket.AF_INET: ("239.6.1.1", "239.6.1.2", "232.6.1.1"),
    socket.AF_INET6: ("ff11::6:1", "ff11::6:2", "ff31::6:1"),
}
LIMIT = 10.0  # seconds: the bound on every run here


@pytest.fixture
def background() -> Iterator[Callable[..., Future[object]]]:
    """Run a callable in a thread; the test waits for its future (bounded)."""
    with ThreadPoolExecutor(max_workers=4) as pool:

        def start(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
            return pool.submit(fn, *args, **kwargs)

        yield start  # type: ignore[misc]


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def family(request: pytest.FixtureRequest) -> socket.AddressFamily:
    value: socket.AddressFamily = request.param
    return value


def monitored(
    background: Callable[..., Future[object]],
    monitor: Monitor,
    send: Callable[[], object],
    *,
    count: int,
) -> MonitorReport:
    """Run ``monitor`` until ``count`` datagrams (or the time limit) while ``send`` runs."""
    future = background(monitor.run, duration=LIMIT, count=count)
    send()
    report = future.result(timeout=LIMIT + 5)
    assert isinstance(report, MonitorReport)
    return report


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "authenticated"])
def test_monitor_counts_a_clean_stream(
    background: Callable[..., Future[object]], family: socket.AddressFamily, key: bytes | None
) -> None:
    group = GROUPS[family][0]
    with Monitor([group], 6100, key=key) as monitor:
        sent = []
        report = monitored(
            background,
            monitor,
            lambda: sent.append(
                run_stream(group, 6100, rate="20kpps", burst=20, size=300, count=1000, key=key)
            ),
            count=1000,
        )
    assert sent[0].sent == 1000 and sent[0].errors == 0
    (sender,) = report.senders
    assert sender.stream == sent[0].sender
    assert (sender.group, sender.received, sender.lost, sender.duplicates) == (group, 1000, 0, 0)
    assert (sender.first_sequence, sender.last_sequence, sender.bytes) == (0, 999, 300_000)
    assert sender.ttl_min == sender.ttl_max == 1
    assert report.drops == 0
    assert sum(report.rejected.values()) == 0


def test_monitor_counts_every_kind_of_rejection(
    background: Callable[..., Future[object]], family: socket.AddressFamily
) -> None:
    group = GROUPS[family][0]
    with Monitor([group], 6101, key=KEY) as monitor, Sender(family) as out:
        where = frame_context(group, 6101)  # frames are sent after the monitor started

        def tagged(sequence: int, context: bytes = where, **options: Any) -> bytes:
            return encode_frame(7, sequence, b"data", key=KEY, context=context, **options)

        valid = [tagged(n) for n in range(3)]
        bad = {
            "foreign": [b"", b"hello", bytes(100)],
            "unsupported": [b"MCTF\x09" + valid[0][5:]],
            "malformed": [valid[0] + b"!", valid[0][:40]],
            "unauthenticated": [encode_frame(7, 10, b"data")],
            "forged": [
                encode_frame(7, 11, b"data", key=WRONG_KEY, context=where),
                valid[1][:-1] + b"\x00",
                tagged(12, frame_context(group, 6102)),  # made for another port
                tagged(13, frame_context(GROUPS[family][1], 6101)),  # for another group
            ],
            "replayed": [valid[0], valid[2]],
            "stale": [tagged(14, timestamp=0), tagged(15, timestamp=2**64 - 1)],
        }
        datagrams = [*valid, *(d for batch in bad.values() for d in batch)]
        report = monitored(
            background,
            monitor,
            lambda: [out.send(d, group, 6101) for d in datagrams],
            count=len(datagrams),
        )
    assert report.rejected == {name: len(batch) for name, batch in bad.items()}
    assert report.foreign == 3
    (sender,) = report.senders
    assert (sender.received, sender.lost, sender.duplicates) == (3, 0, 0)


def test_monitor_counts_truncated_frames(background: Callable[..., Future[object]]) -> None:
    with Monitor(["239.6.1.3"], 6102, max_size=64) as monitor:
        report = monitored(
            background,
            monitor,
            lambda: run_stream("239.6.1.3", 6102, rate="max", size=200, count=50),
            count=50,
        )
    (sender,) = report.senders
    assert (report.truncated, sender.truncated, sender.received, sender.lost) == (50, 50, 50, 0)
    assert sender.bytes == 50 * 200  # the real length, not what fit the buffer


def test_monitor_counts_kernel_drops() -> None:
    """With a tiny receive buffer left undrained, every frame is either received or dropped."""
    with Monitor(["239.6.1.8"], 6111, receive_buffer=4096) as monitor:
        sent = run_stream("239.6.1.8", 6111, rate="max", size=1200, count=200)
        report = monitor.run(duration=1.0)
    assert report.drops > 0
    assert report.received + report.drops == sent.sent == 200


def test_socket_drops_reads_the_kernel_counter() -> None:
    with Receiver(0, family=socket.AF_INET6) as receiver:
        assert socket_drops(receiver.sock) == 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        assert socket_drops(tcp) is None  # not in the UDP table


def test_monitor_separates_senders_and_groups(
    background: Callable[..., Future[object]], family: socket.AddressFamily
) -> None:
    first, second, _ = GROUPS[family]
    with Monitor([first, second], 6103) as monitor:

        def send() -> None:
            for group, count in ((first, 30), (second, 20), (first, 10)):
                run_stream(group, 6103, rate="max", size=64, count=count)

        report = monitored(background, monitor, send, count=60)
    counts = sorted((s.group, s.received, s.lost) for s in report.senders)
    assert counts == sorted([(first, 30, 0), (second, 20, 0), (first, 10, 0)])
    assert report.received == 60
    assert report.as_dict()["summary"]["received"] == 60  # type: ignore[index]


def test_monitor_source_specific(background: Callable[..., Future[object]]) -> None:
    """Joined to (127.0.0.1, G), the monitor never sees G from 127.0.0.2."""
    group = GROUPS[socket.AF_INET][2]
    with Monitor([group], 6104, sources=["127.0.0.1"]) as monitor:

        def send() -> None:
            run_stream(group, 6104, rate="max", size=64, count=20, source="127.0.0.2")
            run_stream(group, 6104, rate="max", size=64, count=25, source="127.0.0.1")

        report = monitored(background, monitor, send, count=25)
    (sender,) = report.senders
    assert (sender.source, sender.received) == ("127.0.0.1", 25)
    assert report.datagrams == 25


def test_monitor_interval_reports(background: Callable[..., Future[object]]) -> None:
    intervals: list[IntervalReport] = []
    with Monitor(["239.6.1.4"], 6105) as monitor:
        future = background(monitor.run, duration=1.0, interval=0.1, on_interval=intervals.append)
        stream = run_stream("239.6.1.4", 6105, rate="400pps", size=100, duration=0.5)
        report = future.result(timeout=LIMIT)
    assert intervals, "a one-second run with 0.1-second intervals reports some"
    assert all(i.end > i.start and i.lost == 0 for i in intervals)
    assert sum(i.received for i in intervals) <= report.received == stream.sent
    assert " [  0.00-  0.10 s] datagrams" in str(intervals[0])  # after the wall clock
    assert all(abs(i.at - time.time()) < LIMIT for i in intervals)


def test_monitor_without_live_lines_waits_instead_of_spinning() -> None:
    """Without ``on_interval`` no interval is due: a quiet monitor waits for its deadline."""
    with Monitor(["239.6.1.9"], 6112) as monitor:
        waits = []
        wait = monitor.receiver.wait

        def counted(timeout: float | None = None) -> bool:
            waits.append(timeout)
            return wait(timeout)

        monitor.receiver.wait = counted  # type: ignore[method-assign]
        report = monitor.run(duration=0.6, interval=0.1)
    assert report.datagrams == 0
    assert 1 <= len(waits) <= 3, f"{len(waits)} waits in 0.6 s"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_refused_monitor_or_pong_leaves_no_socket_open() -> None:
    """A bad key or reply TTL is refused before joining, or the joined socket is closed."""
    fds = open_fds()
    with pytest.raises(AuthKeyError):
        Monitor(["239.6.1.10"], 6113, key=b"short")
    with pytest.raises(AuthKeyError):
        Pong(["239.6.1.10"], 6113, key=b"short")
    with pytest.raises(ValueError, match="unicast TTL 0"):
        Pong(["239.6.1.10"], 6113, ttl=0)
    assert open_fds() == fds


def test_ping_two_pongs(
    background: Callable[..., Future[object]], family: socket.AddressFamily
) -> None:
    group = GROUPS[family][1]
    with Pong([group], 6106, key=KEY) as one, Pong([group], 6106, key=KEY) as two:
        serving = [background(p.serve, duration=LIMIT, count=5) for p in (one, two)]
        replies: list[object] = []
        report = run_ping(
            group, 6106, count=5, interval=0.01, wait=1.0, ttl=4, key=KEY, on_reply=replies.append
        )
        pongs = [f.result(timeout=LIMIT) for f in serving]
    assert (report.sent, report.received, len(replies)) == (5, 10, 10)
    assert {r.responder for r in report.responders} == {one.responder, two.responder}
    for responder in report.responders:
        assert (responder.replies, responder.lost, responder.duplicates) == (5, 0, 0)
        assert responder.hops == 0  # TTL 4 sent, 4 seen: no router in between
        assert responder.rtt is not None
        assert responder.rtt.min <= responder.rtt.p50 <= responder.rtt.p99 <= responder.rtt.max
    assert all(p.probes == p.replies == 5 for p in pongs)  # type: ignore[attr-defined]
    rtt = report.as_dict()["responders"][0]["rtt_ms"]  # type: ignore[index]
    assert {"min", "p50", "p90", "p99", "max"} <= set(rtt)


def test_ping_without_pong_counts_loss() -> None:
    report = run_ping("239.6.1.5", 6107, count=3, interval=0.01, wait=0.2)
    assert (report.sent, report.received, report.responders) == (3, 0, ())


def test_pong_refuses_what_it_must_not_answer() -> None:
    """Non-probes are ignored, replays and forgeries rejected, tiny probes left unanswered."""
    group = "239.6.1.6"
    with Pong([group], 6108, key=KEY) as pong, Sender() as out:
        where = frame_context(group, 6108)
        probe = encode_frame(1, 0, bytes(16), flags=Flag.PROBE, key=KEY, context=where)
        for datagram in (
            probe,
            probe,  # replayed
            encode_frame(1, 1, bytes(16), flags=Flag.PROBE, key=WRONG_KEY, context=where),
            encode_frame(1, 2, bytes(16), key=KEY, context=where),  # not a probe
            encode_frame(1, 3, b"", flags=Flag.PROBE, key=KEY, context=where),  # too small
        ):
            out.send(datagram, group, 6108)
        report = pong.serve(duration=0.5)
    assert (report.probes, report.replies, report.oversized, report.ignored) == (2, 1, 1, 1)
    assert (report.rejected["replayed"], report.rejected["forged"]) == (1, 1)


def test_pong_replies_carry_the_ttl_asked_for() -> None:
    group, port = "239.6.1.8", 6110
    with Pong([group], port, ttl=9) as pong, Receiver(0) as prober:
        probe = encode_frame(1, 0, bytes(32), flags=Flag.PROBE)
        send_datagram(prober.sock, probe, group, port)
        assert pong.serve(count=1, duration=2.0).replies == 1
        reply = prober.receive(timeout=2.0)
    assert (reply.group, reply.ttl) == ("127.0.0.1", 9)


def test_run_pong_is_ready_once_joined_and_replies_with_its_ttl() -> None:
    group, port = "239.6.1.11", 6114
    ready: list[Pong] = []
    with Receiver(0) as prober:

        def probe(pong: Pong) -> None:
            ready.append(pong)
            data = encode_frame(1, 0, bytes(32), flags=Flag.PROBE)
            send_datagram(prober.sock, data, group, port)

        report = run_pong([group], port, ttl=9, count=1, duration=2.0, on_ready=probe)
        reply = prober.receive(timeout=2.0)
    assert (len(ready), report.probes, report.replies) == (1, 1, 1)
    assert reply.ttl == 9


def test_pong_answers_a_truncated_or_foreign_datagram_with_nothing() -> None:
    with Pong(["239.6.1.7"], 6109) as pong:
        cut = Datagram(payload=b"MCTF", source=("127.0.0.1", 9), truncated=True, size=900)
        assert not pong.answer(cut)
        assert not pong.answer(Datagram(payload=b"x" * 50, source=("127.0.0.1", 9), size=50))
        assert (pong.answerer.rejected["malformed"], pong.answerer.rejected["foreign"]) == (1, 1)


# --- across hosts, through a link that loses, doubles and delays a known share --------------
#
# The kernel here has no netem (CONFIG_NET_SCH_NETEM is off), so the link is built from what it
# has: htb classes and u32 filters on h1's eth0 that match the low four bits of each frame's
# sequence number (frame byte 23). Of every 16 frames: number 3 goes to a class whose queue holds
# nothing (dropped), number 7 is mirrored to eth1 as well (duplicated, arriving on h2's eth1),
# and numbers 9 and 10 go to a class of 20 kbit/s with no burst: 9 leaves at once and empties it,
# so 10 waits about 60 ms while 11-15 of its burst pass (reordered). Bursts are 160 ms apart, so
# the class has recovered before the next 9 comes.

_SEQUENCE_LOW_BYTE = {socket.AF_INET: 20 + 8 + 23, socket.AF_INET6: 40 + 8 + 23}


def impair(host: Host, port: int, family: socket.AddressFamily) -> None:
    ip, protocol = ("ip", "ip") if family == socket.AF_INET else ("ip6", "ipv6")
    offset = _SEQUENCE_LOW_BYTE[family]
    udp = f"match {ip} protocol 17 0xff match {ip} dport {port} 0xffff"
    commands = [
        "qdisc add dev eth0 root handle 1: htb default 10",
        "class add dev eth0 parent 1: classid 1:10 htb rate 1gbit",
        "class add dev eth0 parent 1: classid 1:20 htb rate 20kbit ceil 20kbit burst 1 cburst 1",
        "class add dev eth0 parent 1: classid 1:30 htb rate 1gbit",
        "qdisc add dev eth0 parent 1:30 handle 30: pfifo limit 0",
        f"filter add dev eth0 parent 1: protocol {protocol} prio 1 u32 {udp} "
        f"match u8 3 0x0f at {offset} flowid 1:30",
        f"filter add dev eth0 parent 1: protocol {protocol} prio 2 u32 {udp} "
        f"match u8 9 0x0f at {offset} flowid 1:20",
        f"filter add dev eth0 parent 1: protocol {protocol} prio 3 u32 {udp} "
        f"match u8 10 0x0f at {offset} flowid 1:20",
        f"filter add dev eth0 parent 1: protocol {protocol} prio 4 u32 {udp} "
        f"match u8 7 0x0f at {offset} flowid 1:10 action mirred egress mirror dev eth1",
    ]
    for command in commands:
        host.run(["tc", *command.split()])


def test_monitor_counts_match_an_impaired_link(
    testbed: Testbed, family: socket.AddressFamily
) -> None:
    group = "239.6.2.1" if family == socket.AF_INET else "ff15::6:2:1"
    port = 6110
    h1, h2 = testbed.add_hosts(2)
    testbed.connect(h1, h2)
    testbed.connect(h1, h2)  # the duplicates' path
    impair(h1, port, family)
    monitor = h2.call(Monitor, [group], port, interfaces=["eth0", "eth1"])
    try:
        running = h2.start(monitor.run, duration=LIMIT, count=160)
        sent = h1.call(
            run_stream, group, port, rate="100pps", burst=16, size=100, count=160, interface="eth0"
        )
        report = running.result(timeout=LIMIT + 5)
    finally:
        monitor.close()
    assert (sent.sent, sent.errors) == (160, 0)
    (sender,) = report.senders
    assert sender.source == h1.address(family)
    counts = (sender.received, sender.unique, sender.lost, sender.duplicates, sender.reordered)
    # Gaps: each burst has one at the dropped frame and one at the delayed frame.
    assert (*counts, sender.gaps) == (160, 150, 10, 10, 10, 20), sender
    assert report.drops == 0


def test_ping_and_pong_in_latency_mode(background: Callable[..., Future[object]]) -> None:
    """Busy-polling changes when replies are read, never what is counted."""
    group = "239.6.1.12"
    with Pong([group], 6114, busy_poll=0.0005) as pong:
        assert pong.receiver.busy_poll == 0.0005
        serving = background(pong.serve, duration=LIMIT, count=20)
        report = run_ping(group, 6114, count=20, interval=0.002, wait=1.0, busy_poll=0.0005)
        answered = serving.result(timeout=LIMIT)
    assert (report.sent, report.received) == (20, 20)
    assert answered.replies == 20  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="busy-poll"):
        Pong([group], 6114, busy_poll=2.0)
