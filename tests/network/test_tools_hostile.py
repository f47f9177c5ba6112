"""The responders and senders under hostile or careless conditions (issue 12, section 4): a
probe from a broadcast source, an interface deleted and made again under HEAR and stream, a
monitor overloaded, and a stream interrupted at full speed."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from contextlib import ExitStack, closing

import pytest

from multicast.core import Datagram, Receiver, Sender, send_many
from multicast.hear import HearUDPHandler, McastServer
from multicast.testing import WAIT, Testbed
from multicast.tools import Monitor, Pong, run_stream
from multicast.tools.framing import Flag, encode_frame
from multicast.tools.monitor import IntervalReport

from support.cli import free_port
from support.tools import command, finish

GROUP = "239.12.2.1"


def test_a_reply_that_cannot_be_sent_is_counted_never_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A probe whose source is a broadcast address killed pong (``[Errno 13] Permission
    denied``, exit 77): the kernel refuses the reply; pong counts it, logs it once, goes on."""
    port = free_port()
    probe = encode_frame(1, 0, bytes(32), flags=Flag.PROBE)
    with Pong([GROUP], port) as pong, Receiver(0) as prober:
        for _ in range(3):
            forged = Datagram(probe, ("255.255.255.255", 9), GROUP, ttl=1, size=len(probe))
            assert pong.answer(forged) is False
        honest = Datagram(probe, ("127.0.0.1", prober.port), GROUP, ttl=1, size=len(probe))
        assert pong.answer(honest) is True
        assert prober.receive(timeout=WAIT).payload
        report = pong.report(1.0)
    assert (report.probes, report.replies, report.send_errors) == (4, 1, 3)
    warned = [r for r in caplog.records if r.name == "multicast.tools.pong" and r.levelno >= 30]
    assert len(warned) == 1  # once for this kind of refusal, not once per probe
    assert "255.255.255.255" in warned[0].getMessage()


def test_hear_logs_an_answer_it_cannot_send_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """The same refusal for HEAR: its server logs it (socketserver's handle_error), and the
    next datagram is answered."""
    port = free_port()
    with McastServer((GROUP, port), HearUDPHandler, allow_stop=False) as server:
        forged = ("255.255.255.255", 9)
        with pytest.raises(PermissionError) as refused:
            HearUDPHandler((b"hello", server.socket), forged, server)
        try:
            raise refused.value
        except PermissionError:
            server.handle_error((b"hello", server.socket), forged)  # what socketserver calls
    (logged,) = [r for r in caplog.records if r.name.startswith("multicast.hear")]
    assert "cannot answer 255.255.255.255 port 9" in logged.getMessage()


class Subclassed(HearUDPHandler):
    """HEAR's own answer by socketserver's one-request path (only HearUDPHandler is batched)."""


@pytest.mark.parametrize("handler", [HearUDPHandler, Subclassed], ids=["batched", "one-by-one"])
@pytest.mark.parametrize(
    ("family", "group"), [(socket.AF_INET, GROUP), (socket.AF_INET6, "ff0e::12:2")]
)
def test_hear_with_an_interface_rejoins_after_it_is_deleted_and_made_again(
    testbed: Testbed,
    exit_stack: ExitStack,
    family: socket.AddressFamily,
    group: str,
    handler: type[HearUDPHandler],
) -> None:
    source, host = testbed.add_hosts(2)
    testbed.bridge(source, host)
    port = 5012
    server = host.call(
        McastServer,
        ("::" if family == socket.AF_INET6 else "0.0.0.0", port),
        handler,
        groups=[group],
        iface="eth0",
        allow_stop=False,
    )
    exit_stack.callback(server.server_close)
    # Served in the host's namespace: the server watches the interfaces of the one it runs in.
    serving = host.start(server.serve_forever, poll_interval=0.05)
    exit_stack.callback(serving.result, WAIT)
    exit_stack.callback(server.shutdown)
    out = exit_stack.enter_context(source.call(Sender, family))

    def answered(word: bytes) -> None:
        """Send ``word`` until the source gets its answer (not an earlier word's)."""
        deadline = time.monotonic() + WAIT
        while True:
            assert time.monotonic() < deadline, "HEAR stayed deaf"
            source.call(out.send, word + bytes(80), group, port)
            time.sleep(0.02)
            try:
                while not out.sock.recv(1024, socket.MSG_DONTWAIT).startswith(b"HEAR [ " + word):
                    pass
                return
            except BlockingIOError:
                continue

    answered(b"BEFORE")
    host.delete_interface("eth0")
    deadline = time.monotonic() + WAIT
    while server.table.joined:  # the deletion noticed
        assert time.monotonic() < deadline, "the deletion went unnoticed"
        time.sleep(0.02)
    host.create_interface("eth0")
    answered(b"AFTER")
    (rejoined,) = server.table.joined
    assert rejoined.interface == host.interface("eth0").index


def test_stream_keeps_its_report_when_its_interface_disappears(testbed: Testbed) -> None:
    sending, other = testbed.add_hosts(2)
    testbed.connect(sending, other)
    running = sending.start(
        run_stream, GROUP, 5013, rate="2kpps", size=200, duration=2.0, interface="eth0"
    )
    time.sleep(0.5)
    sending.delete_interface("eth0")
    report = running.result(timeout=WAIT)
    assert report.sent > 0 and report.errors > 0
    assert report.sent + report.errors == report.as_dict()["sent"] + report.errors
    assert report.error is not None and "No such device" in report.error
    assert "send errors" in str(report) and "last send error" in str(report)


def test_stream_goes_on_once_its_interface_is_back(testbed: Testbed) -> None:
    sending, other = testbed.add_hosts(2)
    testbed.bridge(sending, other)  # the other host's interface stays as it is
    # Room for every frame of the run: they are read once it is over.
    with closing(other.call(Receiver, 5014, receive_buffer=4 << 20)) as receiver:
        other.call(receiver.join, GROUP, "eth0")
        running = sending.start(
            run_stream, GROUP, 5014, rate="500pps", size=100, duration=3.0, interface="eth0"
        )
        time.sleep(0.5)
        sending.delete_interface("eth0")
        time.sleep(0.3)
        sending.create_interface("eth0")
        report = running.result(timeout=WAIT)
        after: set[int] = set()
        while batch := receiver.receive_batch(1024, timeout=0.2):
            after.update(int.from_bytes(d.payload[16:24], "big") for d in batch)
    made = report.sent + report.errors  # sequence numbers 0 to made - 1
    assert report.errors > 0
    assert max(after) >= made - 50, "the last frames, sent after the interface came back, arrived"


def test_monitor_interval_lines_show_the_kernels_drops() -> None:
    """Under overload the live lines said 'lost 0' while the kernel dropped datagrams: each
    line now shows the drops of its interval."""
    port = free_port()
    lines: list[IntervalReport] = []
    frames = [encode_frame(7, n, bytes(200)) for n in range(5000)]
    with Monitor([GROUP], port, receive_buffer=4096) as monitor, Sender() as out:
        running = threading.Thread(
            target=monitor.run,
            kwargs={"duration": 0.6, "interval": 0.1, "on_interval": lines.append},
        )
        running.start()
        time.sleep(0.15)
        send_many(out.sock, frames, GROUP, port)  # far more at once than the buffer holds
        running.join(WAIT)
        total = monitor.drops
    assert total > 0
    assert sum(line.drops for line in lines) == total  # every drop is in some line...
    assert sum(line.drops > 0 for line in lines) >= 1  # ...as soon as its interval ends
    dropping = next(line for line in lines if line.drops)
    assert f"drops {dropping.drops:4d}" in str(dropping)


@pytest.mark.parametrize("run", range(3))
def test_stream_counts_exactly_what_it_sent_when_interrupted_at_full_speed(run: int) -> None:
    """Ctrl-C between a send and its count lost whole batches from ``sent``: the report must
    match what arrived plus what the kernel dropped, to the datagram."""
    port = free_port()
    with Monitor([GROUP], port) as monitor:
        streaming = subprocess.Popen(
            command(f"stream {GROUP} --port {port} --rate max --size 64 --duration 20 --json"),
            stdout=-1,
            stderr=-1,
            text=True,
        )
        arrived = time.time_ns()
        deadline = time.monotonic() + WAIT
        while monitor.tally.datagrams < 20_000 + 5_000 * run:
            assert time.monotonic() < deadline, "the stream never got going"
            for datagram in monitor.ready(0.05):
                monitor.tally.account(datagram, arrived)
        streaming.send_signal(signal.SIGINT)
        code, out, err = finish(streaming)
        while ready := monitor.ready(0.2):  # what is still queued
            for datagram in ready:
                monitor.tally.account(datagram, arrived)
        received, drops = monitor.tally.datagrams, monitor.drops
    report = json.loads(out)
    assert report["sent"] == received + drops
    assert report["interrupted"] and report["errors"] == 0
    assert (code, err) == (130, "")
