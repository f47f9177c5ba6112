"""Reliable file transfer across test-bed hosts: loss, late join, a killed receiver, forged
packets, an escaping file name, resume, IPv6 and keys."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from multicast.__main__ import main
from multicast.core import Sender
from multicast.reliable import (
    ReceiverConfig,
    SenderConfig,
    receive_files,
    receive_files_async,
    send_files,
    send_files_async,
)
from multicast.reliable.protection import make_protector
from multicast.reliable.receiver_state import ReceiverState
from multicast.reliable.wire import Phase, Stamper, encode_file, encode_session
from multicast.testing import Host, Testbed

GROUP = "239.7.7.7"
PORT = 4446
KEY = b"the test bed's shared key, 32 B"
CLI = [sys.executable, "-m", "multicast"]


def drop_share(host: Host, per_mille: int) -> None:
    """Drop ``per_mille`` of the datagrams arriving for the data port, at random (nftables)."""
    rules = (
        "table inet loss {\n chain input {\n  type filter hook input priority 0;\n"
        f"  udp dport {PORT} numgen random mod 1000 < {per_mille} drop\n }}\n}}\n"
    )
    host.run(["nft", "-f", "-"], input=rules)


def make_file(directory: Path, name: str, size: int) -> Path:
    path = directory / name
    path.write_bytes(os.urandom(size))
    return path


def receive(host: Host, output: Path, name: str, **options: object):  # type: ignore[no-untyped-def]
    config = ReceiverConfig(name=name, wait=10.0, idle=3.0)
    return host.start(
        receive_files, GROUP, PORT, output, config=config, interface="eth0", **options
    )


def test_lossy_receivers_get_identical_copies(testbed: Testbed, tmp_path: Path) -> None:
    sender, *receivers = testbed.add_hosts(3)
    testbed.bridge(sender, *receivers)
    for host in receivers:
        drop_share(host, 50)
    files = [make_file(tmp_path, "one.bin", 400_000), make_file(tmp_path, "two.bin", 3000)]
    futures = [receive(host, tmp_path / f"out{n}", f"r{n}") for n, host in enumerate(receivers)]
    config = SenderConfig(receivers=2, wait=10.0)
    report = sender.call(
        send_files, files, GROUP, PORT, rate=200e6, config=config, interface="eth0"
    )
    assert report.outcome == "complete"
    sent = report.data["datagrams"]
    assert isinstance(sent, dict) and sent["repair"] > 0
    for n, future in enumerate(futures):
        result = future.result(timeout=10)
        assert result.outcome == "complete"
        for path in files:
            assert (tmp_path / f"out{n}" / path.name).read_bytes() == path.read_bytes()
        assert not [p for p in os.listdir(tmp_path / f"out{n}") if p.startswith(".")]


def test_a_late_joiner_completes_on_the_carousel(testbed: Testbed, tmp_path: Path) -> None:
    sender, early, late = testbed.add_hosts(3)
    testbed.bridge(sender, early, late)
    path = make_file(tmp_path, "image.bin", 1_000_000)
    first = receive(early, tmp_path / "early", "early")
    config = SenderConfig(repeat=3)
    sending = sender.start(
        send_files, [path], GROUP, PORT, rate=16e6, config=config, interface="eth0"
    )
    time.sleep(0.3)  # a pass takes 0.5 s: the second receiver joins a third of the way in
    second = receive(late, tmp_path / "late", "late")
    report = sending.result(timeout=20)
    assert first.result(timeout=10).outcome == "complete"
    assert second.result(timeout=10).outcome == "complete"
    assert (tmp_path / "late" / "image.bin").read_bytes() == path.read_bytes()
    assert report.outcome == "complete"


def _cli(host: Host, *args: str) -> subprocess.Popen[str]:
    return host.popen([*CLI, *args, "--port", str(PORT), "--iface", "eth0", "--json"])


def test_a_killed_receiver_is_dropped_and_named(testbed: Testbed, tmp_path: Path) -> None:
    sender, steady, doomed = testbed.add_hosts(3)
    testbed.bridge(sender, steady, doomed)
    path = make_file(tmp_path, "big.bin", 3_000_000)  # 2.4 s at 10 Mbit/s
    receivers = [
        _cli(host, "receive-file", GROUP, "--output", str(tmp_path / name), "--name", name)
        for host, name in ((steady, "steady"), (doomed, "doomed"))
    ]
    time.sleep(0.5)
    sending = _cli(sender, "send-file", str(path), GROUP, "--receivers", "2", "--rate", "10M")
    time.sleep(1.0)
    os.kill(receivers[1].pid, signal.SIGKILL)
    out, err = sending.communicate(timeout=20)
    assert sending.returncode == 1, err  # incomplete: one receiver was dropped
    report = json.loads(out)
    assert report["schema"] == "multicast.send-file/1"
    assert report["outcome"] == "incomplete"
    assert [r["name"] for r in report["receivers"] if r["status"] == "dropped"] == ["doomed"]
    assert report["dropped"] == [r["label"] for r in report["receivers"] if r["name"] == "doomed"]
    (done,) = [r for r in report["receivers"] if r["name"] == "steady"]
    assert done["status"] == "done"
    # The dead receiver cost the others at most 2 s: the session ended soon after they finished.
    assert report["seconds"] - done["seconds_to_done"] <= 2.0
    out, _ = receivers[0].communicate(timeout=10)
    assert receivers[0].returncode == 0
    assert json.loads(out)["outcome"] == "complete"
    assert (tmp_path / "steady" / "big.bin").read_bytes() == path.read_bytes()


def _fake_sender(host: Host, name: str, stop: threading.Event, key: bytes | None = None) -> None:
    """A hostile sender: announces a one-block file named ``name`` until ``stop``."""

    def body() -> None:
        stamper = Stamper(0x5EED, make_protector(key))
        with Sender(interface="eth0") as out:
            while not stop.wait(0.05):
                for packet in (
                    encode_session(
                        stamper,
                        symbol_size=100,
                        block_symbols=4,
                        files=1,
                        phase=Phase.SENDING,
                        closed=False,
                        pass_number=0,
                        passes=1,
                        blocks=1,
                        rate=0,
                    ),
                    encode_file(
                        stamper, index=0, first_block=0, size=10, digest=bytes(32), name=name
                    ),
                    stamper.data(0, 0, 0, 0, b"pwned".ljust(100, b"\0"), False),
                ):
                    out.send(packet, GROUP, PORT)

    host.start(body)


def test_a_path_escaping_name_is_refused(testbed: Testbed, tmp_path: Path) -> None:
    attacker, victim = testbed.add_hosts(2)
    testbed.connect(attacker, victim)
    stop = threading.Event()
    _fake_sender(attacker, "../escaped", stop)
    output = tmp_path / "inbox"
    try:
        receiving = _cli(victim, "receive-file", GROUP, "--output", str(output), "--idle", "1")
        out, err = receiving.communicate(timeout=15)
    finally:
        stop.set()
    assert receiving.returncode == 4, err
    (refused,) = json.loads(out)["files"]
    assert refused["name"] == "../escaped" and refused["refused"] == "a path, not one file name"
    assert os.listdir(output) == []
    assert sorted(os.listdir(tmp_path)) == ["inbox"]


def test_forged_and_unauthenticated_packets_are_counted_and_dropped(
    testbed: Testbed, tmp_path: Path
) -> None:
    sender, receiver, attacker = testbed.add_hosts(3)
    testbed.bridge(sender, receiver, attacker)
    path = make_file(tmp_path, "signed.bin", 200_000)
    result = receive(receiver, tmp_path / "out", "r", key=KEY)
    stop = threading.Event()
    _fake_sender(attacker, "signed.bin", stop)  # no tag at all
    _fake_sender(attacker, "signed.bin", stop, key=b"not the key, but as long as it")
    time.sleep(0.3)
    config = SenderConfig(receivers=1, wait=10.0)
    try:
        report = sender.call(
            send_files, [path], GROUP, PORT, rate=100e6, config=config, interface="eth0", key=KEY
        )
    finally:
        stop.set()
    received = result.result(timeout=10)
    assert report.outcome == received.outcome == "complete"
    assert report.data["protection"] == "gmac"
    rejected = received.data["rejected"]
    assert isinstance(rejected, dict)
    assert rejected["forged"] > 0 and rejected["unauthenticated"] > 0
    assert (tmp_path / "out" / "signed.bin").read_bytes() == path.read_bytes()


def test_encrypted_over_ipv6_and_no_key_gets_nothing(testbed: Testbed, tmp_path: Path) -> None:
    sender, friend, stranger = testbed.add_hosts(3)
    testbed.bridge(sender, friend, stranger)
    group = "ff15::7:7"
    path = make_file(tmp_path, "secret.bin", 150_000)
    config = ReceiverConfig(name="friend", wait=10.0, idle=3.0)
    friendly = friend.start(
        receive_files, group, PORT, tmp_path / "friend", config=config, interface="eth0", key=KEY
    )
    blind = ReceiverConfig(name="stranger", wait=1.5)
    shut_out = stranger.start(
        receive_files, group, PORT, tmp_path / "stranger", config=blind, interface="eth0"
    )
    report = sender.call(
        send_files,
        [path],
        group,
        PORT,
        rate=100e6,
        config=SenderConfig(receivers=1, wait=10.0),
        interface="eth0",
        key=KEY,
        encrypt=True,
    )
    assert report.outcome == "complete" and report.data["protection"] == "encrypted"
    assert friendly.result(timeout=10).outcome == "complete"
    assert (tmp_path / "friend" / "secret.bin").read_bytes() == path.read_bytes()
    outsider = shut_out.result(timeout=10)
    assert outsider.outcome == "no-session"
    rejected = outsider.data["rejected"]
    assert isinstance(rejected, dict) and rejected["needs-key"] > 0


def test_a_partial_file_resumes(testbed: Testbed, tmp_path: Path) -> None:
    sender, receiver = testbed.add_hosts(2)
    testbed.connect(sender, receiver)
    path = make_file(tmp_path, "resume.bin", 1_500_000)
    output = tmp_path / "out"
    stop = threading.Event()

    def halfway(state: ReceiverState, seconds: float) -> None:
        if state.session is not None and state.blocks_done * 2 >= state.session.blocks:
            stop.set()

    first = receive(receiver, output, "r", progress=halfway, stop=stop)
    open_session = SenderConfig(repeat=1, linger=0.3)
    sender.call(send_files, [path], GROUP, PORT, rate=40e6, config=open_session, interface="eth0")
    assert first.result(timeout=10).outcome == "interrupted"
    assert not (output / "resume.bin").exists()
    assert (output / ".resume.bin.mcstate").exists()
    second = receive(receiver, output, "r")
    closed = SenderConfig(receivers=1, wait=10.0)
    sender.call(send_files, [path], GROUP, PORT, rate=40e6, config=closed, interface="eth0")
    resumed = second.result(timeout=10)
    assert resumed.outcome == "complete"
    files = resumed.data["files"]
    assert isinstance(files, list) and files[0]["resumed_blocks"] > 0
    assert (output / "resume.bin").read_bytes() == path.read_bytes()
    assert sorted(os.listdir(output)) == ["resume.bin"]


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["send-file", "/nonexistent/x", GROUP], "is not a regular file"),
        (["send-file", "f", GROUP, "--rate", "10kpps"], "bits or bytes per second"),
        (["send-file", "f", GROUP, "--receivers", "2", "--duration", "5"], "open sessions"),
        (["send-file", "f", GROUP, "--drop-after", "5"], "0.2-2 seconds"),
        (["send-file", "f", GROUP, "--encrypt"], "needs a key"),
        (["receive-file", GROUP], "--output"),
        (["receive-file", GROUP, "--output", "o", "--session", "xyz"], "hexadecimal"),
    ],
)
def test_bad_input_is_one_line_and_a_usage_code(
    argv: list[str],
    complaint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "f").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    code, _ = main(argv)
    assert code == 64
    lines = capsys.readouterr().err.strip().splitlines()
    assert complaint in lines[-1] and "Traceback" not in "".join(lines)


def test_the_asyncio_api_transfers_and_cancels(testbed: Testbed, tmp_path: Path) -> None:
    sender, receiver = testbed.add_hosts(2)
    testbed.connect(sender, receiver)
    path = make_file(tmp_path, "async.bin", 300_000)

    async def receive_then_cancel() -> tuple[str, bool]:
        config = ReceiverConfig(name="aio", wait=10.0, idle=3.0)
        report = await receive_files_async(
            GROUP, PORT, tmp_path / "out", config=config, interface="eth0"
        )
        idle = asyncio.create_task(
            receive_files_async(GROUP, PORT + 2, tmp_path / "none", interface="eth0")
        )
        await asyncio.sleep(0.2)
        idle.cancel()
        try:
            await idle
        except asyncio.CancelledError:
            return report.outcome, True
        return report.outcome, False

    async def send() -> str:
        config = SenderConfig(receivers=1, wait=10.0)
        report = await send_files_async(
            [path], GROUP, PORT, rate=100e6, config=config, interface="eth0"
        )
        return report.outcome

    receiving = receiver.start(asyncio.run, receive_then_cancel())
    assert sender.call(asyncio.run, send()) == "complete"
    assert receiving.result(timeout=10) == ("complete", True)
    assert (tmp_path / "out" / "async.bin").read_bytes() == path.read_bytes()
