"""The monitor on real sockets (issue 14): thousands of groups, any payload, machine-readable
output, join latency, alarms and logs; stream to many groups; ping beside unicast.

Every run is bounded in datagrams and seconds; counts are compared with what was sent.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from multicast.cli import main
from multicast.core import Datagram, Sender, parse_channels
from multicast.tools import Monitor, Pong, run_stream
from multicast.tools.framing import encode_frame
from multicast.tools.monitor_report import CSV_FIELDS, SCHEMA
from multicast.tools.payloads import Kind

from support.tools import LIMIT, command, finish, wait_joined


def test_one_monitor_counts_2048_groups_exactly() -> None:
    """mcjoin's maximum: 2048 groups joined by one monitor (over a hundred sockets at 20
    groups each), each fed three frames by one stream sending to each group in turn."""
    channels = parse_channels("239.20.0.0+2048")
    with Monitor(channels, 6400) as monitor, ThreadPoolExecutor(1) as pool:
        assert len(monitor.receiver.memberships) == 2048
        counting: Future[object] = pool.submit(monitor.run, duration=LIMIT, count=3 * 2048)
        sent = run_stream([c.group for c in channels], 6400, rate="20kpps", size=64, count=3 * 2048)
        report = counting.result(timeout=LIMIT + 5)
    assert (sent.sent, sent.errors) == (3 * 2048, 0)
    assert report.drops == 0 and len(report.senders) == 2048
    per_group = {flow.group: (flow.received, flow.lost, flow.duplicates) for flow in report.senders}
    assert per_group == {str(c.group): (3, 0, 0) for c in channels}
    assert all(channel.join_ms is not None for channel in report.channels)
    assert len(report.channels) == 2048


def rtp_packet(sequence: int, ssrc: int = 0xC0FFEE) -> bytes:
    return struct.pack("!BBHII", 0x80, 33, sequence, sequence * 1800, ssrc) + bytes(100)


def ts_datagram(number: int) -> bytes:
    return b"".join(
        bytes([0x47, 0x01, 0x00, 0x10 | (7 * number + k) % 16]) + bytes(184) for k in range(7)
    )


def monitor_process(*words: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(" ".join(words)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_json_lines_detect_rtp_and_mpegts_with_their_losses() -> None:
    """RTP to one group (sequence 3 lost), MPEG-TS to another (one datagram: 7 packets of
    PID 256 lost), read by payload detection; one JSON object per interval, then a final."""
    monitor = monitor_process(
        "monitor 239.6.5.1 239.6.5.2 --port 6401 --duration 2 --interval 0.5 --json-lines"
    )
    wait_joined("239.6.5.2", monitor)
    with Sender() as out:
        for n in (0, 1, 2, 4, 5, 6):
            out.send(rtp_packet(n), "239.6.5.1", 6401)
        for n in (0, 1, 3, 4):
            out.send(ts_datagram(n), "239.6.5.2", 6401)
    code, out_text, err = finish(monitor)
    assert (code, err) == (0, "")
    objects = [json.loads(line) for line in out_text.splitlines()]
    assert all(o["schema"] == SCHEMA for o in objects)
    assert [o["type"] for o in objects][-1] == "final"
    assert {o["type"] for o in objects[:-1]} == {"interval"} and len(objects) >= 4
    assert sum(o["datagrams"] for o in objects[:-1]) == 10
    final = objects[-1]
    flows = {flow["payload"]: flow for flow in final["senders"]}
    assert flows["rtp"]["stream"] == "00c0ffee"
    assert (flows["rtp"]["received"], flows["rtp"]["lost"]) == (6, 1)
    assert (flows["mpegts"]["received"], flows["mpegts"]["lost"]) == (28, 7)
    assert flows["mpegts"]["pids"] == {
        "256": {"packets": 28, "lost": 7, "duplicates": 0, "reordered": 0}
    }
    assert all(isinstance(o["at"], float) for o in objects)


def test_csv_rows_per_flow_and_interval() -> None:
    monitor = monitor_process("monitor 239.6.5.3 --port 6402 --duration 1.5 --interval 0.5 --csv")
    wait_joined("239.6.5.3", monitor)
    run_stream("239.6.5.3", 6402, rate="max", size=100, count=40)
    code, out_text, _ = finish(monitor)
    lines = out_text.splitlines()
    assert code == 0 and lines[0] == ",".join(CSV_FIELDS)
    rows = [dict(zip(CSV_FIELDS, line.split(","), strict=True)) for line in lines[1:]]
    assert sum(int(r["datagrams"]) for r in rows if r["type"] == "interval") == 40
    (final,) = [r for r in rows if r["type"] == "final"]
    assert (final["group"], final["payload"], final["datagrams"]) == ("239.6.5.3", "frames", "40")


def test_alarms_set_the_exit_status_and_go_to_the_log_and_syslog(tmp_path: Path) -> None:
    """A stream with a gap passes --alarm-loss; a group never fed passes --alarm-silence."""
    log = tmp_path / "monitor.log"
    syslog_path = tmp_path / "log.sock"
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslog.bind(str(syslog_path))
    syslog.settimeout(LIMIT)
    try:
        logged = monitor_process(
            "monitor 239.6.5.4 239.6.5.5 --port 6403 --duration 1.5 --interval 0.25",
            f"--alarm-loss 10 --alarm-silence 0.5 --log-file {log}",
        )
        syslogged = monitor_process(
            "monitor 239.6.5.4 --port 6403 --duration 1.5 --alarm-silence 0.5",
            f"--syslog {syslog_path}",
        )
        wait_joined("239.6.5.5", logged)
        with Sender() as out:
            for n in (0, 1, 2, 5, 6, 7):  # 3 and 4 lost: 25 % of the interval
                out.send(encode_frame(9, n), "239.6.5.4", 6403)
        code, out_text, _ = finish(logged)
        other_code, _, _ = finish(syslogged)
        messages = [syslog.recv(4096).decode()]
    finally:
        syslog.close()
    assert code == 3 and other_code == 3
    assert "ALARM" in out_text and "loss 25.00% over 10%" in out_text
    assert "239.6.5.5 silent for" in out_text
    text = log.read_text()
    assert "ALARM" in text and "239.6.5.5 silent for" in text and "datagrams" in text
    assert messages[0].startswith("<") and "multicast-monitor:" in messages[0]


def test_join_and_leave_times_are_reported() -> None:
    group, port = "239.6.5.6", 6404
    with Monitor([group], port) as monitor, ThreadPoolExecutor(1) as pool:
        sending = threading.Event()

        def stream() -> None:
            with Sender() as out:
                n = 0
                while not sending.is_set() and n < 2000:
                    out.send(b"tick %d" % n, group, port)
                    n += 1
                    sending.wait(0.002)

        feeding = pool.submit(stream)
        report = monitor.run(duration=0.4, leave_wait=0.2)
        sending.set()
        feeding.result(timeout=LIMIT)
    (channel,) = report.channels
    assert channel.join_ms is not None and 0 <= channel.join_ms < 400
    assert channel.left is not None and channel.left > channel.joined
    assert channel.as_dict()["channel"] == group


def test_stream_sends_to_a_range_and_monitor_reads_a_groups_file(tmp_path: Path) -> None:
    groups = tmp_path / "groups.txt"
    groups.write_text("# three groups\n239.6.6.0+2\n239.6.6.2\n")
    monitor = monitor_process(f"monitor --groups-file {groups} --port 6405 --count 30 --json")
    wait_joined("239.6.6.2", monitor)
    code, result = main(["stream", "239.6.6.0+3", "--port", "6405", "--count", "30", "--json"])
    assert code == 0 and result
    monitor_code, out_text, _ = finish(monitor)
    report = json.loads(out_text)
    assert monitor_code == 0
    counts = {flow["group"]: flow["received"] for flow in report["senders"]}
    assert counts == {"239.6.6.0": 10, "239.6.6.1": 10, "239.6.6.2": 10}


def test_histogram_of_one_way_delays(capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            main, ["monitor", "239.6.5.7", "--port", "6406", "--count", "50", "--histogram"]
        )
        threading.Event().wait(0.5)  # the monitor joins meanwhile
        run_stream("239.6.5.7", 6406, rate="1000pps", size=100, count=50)
        code, _ = running.result(timeout=LIMIT)
    text = capsys.readouterr().out
    assert code == 0
    assert "one-way delay (sender on this host: one clock), 50 datagrams:" in text
    assert " ms " in text and "#" in text


@pytest.mark.parametrize("probed", ["239.6.7.1", "239.6.7.2"], ids=["both", "no-multicast"])
def test_ping_beside_unicast_tells_a_broken_path_from_broken_multicast(
    probed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pong on one group: probing it answers both ways; probing a group it did not join
    answers by unicast only, and the verdict says multicast is what is broken."""
    with Pong(["239.6.7.1"], 6407) as pong, ThreadPoolExecutor(1) as pool:
        serving = pool.submit(pong.serve, duration=2.0)
        code, _ = main(
            [
                *("ping", probed, "--port", "6407", "--count", "3", "--interval", "0.05"),
                *("--wait", "0.5", "--unicast", "127.0.0.1", "--json"),
            ]
        )
        answered = serving.result(timeout=LIMIT)
    report = json.loads(capsys.readouterr().out)
    assert answered.unicast == 3 and report["unicast"]["received"] == 3
    if probed == "239.6.7.1":
        assert (code, answered.probes, report["received"]) == (0, 6, 3)
        assert report["verdict"] == "unicast and multicast both answered"
    else:
        assert (code, answered.probes, report["received"]) == (1, 3, 0)
        assert "multicast is broken" in report["verdict"]


def test_the_payload_can_be_told() -> None:
    """--payload raw counts datagrams and rates only: no sequence, no loss."""
    with Monitor(["239.6.5.8"], 6408, payload=Kind.RAW) as monitor:
        run_stream("239.6.5.8", 6408, rate="max", size=100, count=20)
        report = monitor.run(duration=LIMIT, count=20)
    (flow,) = report.senders
    assert (flow.payload, flow.datagrams, flow.received, flow.lost) == ("raw", 20, 0, 0)


def test_ctrl_c_while_counting_waits_for_the_count() -> None:
    """Ctrl-C that comes while a batch read from the socket is being counted ends the run
    after the batch: the report misses nothing that was taken from the socket."""
    main_thread = threading.main_thread().ident
    assert main_thread == threading.get_ident()
    with Monitor(["239.6.5.9"], 6409, payload=Kind.RAW) as monitor, Sender() as out:
        for n in range(20):
            out.send(b"%d" % n, "239.6.5.9", 6409)
        account = monitor.tally.account

        def interrupted_at_the_first(datagram: Datagram, arrived: int) -> None:
            if monitor.tally.datagrams == 0:
                signal.pthread_kill(main_thread, signal.SIGINT)
            account(datagram, arrived)

        monitor.tally.account = interrupted_at_the_first  # type: ignore[method-assign]
        report = monitor.run(duration=LIMIT)
    assert report.interrupted and report.datagrams == 20
