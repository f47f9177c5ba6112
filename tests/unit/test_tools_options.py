"""The tools' shared options: the key a run names (:func:`multicast.tools.options.load_key`)."""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

import pytest

from multicast.cliargs import Parser
from multicast.exceptions import AuthKeyError, OptionError, UsageError
from multicast.tools.common import Progress
from multicast.tools.options import (
    MAX_GROUPS_FILE,
    MAX_KEY_FILE,
    add_key,
    add_receiving,
    add_sending,
    channels_of,
    key_of,
    load_key,
    sending_channels,
)

KEY = b"0123456789abcdef"


def test_load_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_key() is None
    path = tmp_path / "key"
    path.write_bytes(KEY + b"\n")
    assert load_key(path) == KEY
    path.write_bytes(KEY + b"\r\n")
    assert load_key(path) == KEY
    monkeypatch.setenv("MULTICAST_TEST_KEY", KEY.decode())
    assert load_key(env="MULTICAST_TEST_KEY") == KEY
    with pytest.raises(AuthKeyError, match="not both"):
        load_key(path, "MULTICAST_TEST_KEY")
    with pytest.raises(AuthKeyError, match="cannot read key file"):
        load_key(tmp_path / "missing")
    with pytest.raises(AuthKeyError, match="'MULTICAST_NO_SUCH_KEY'"):
        load_key(env="MULTICAST_NO_SUCH_KEY")
    path.write_bytes(b"short\n")
    with pytest.raises(AuthKeyError, match="holds 5 bytes; a key needs at least 16"):
        load_key(path)


def test_key_of_reads_what_the_options_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = argparse.ArgumentParser()
    add_key(parser)
    path = tmp_path / "key"
    path.write_bytes(KEY)
    monkeypatch.setenv("MULTICAST_TEST_KEY", "an environment key")
    assert key_of(parser.parse_args([])) is None
    assert key_of(parser.parse_args(["--key-file", str(path)])) == KEY
    assert key_of(parser.parse_args(["--key-env", "MULTICAST_TEST_KEY"])) == b"an environment key"


# --- a key file named by mistake (issue 12) ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"), [("/dev/zero", "a character device"), ("/", "a directory")]
)
def test_a_key_file_that_is_no_file_is_refused_in_one_line(path: str, kind: str) -> None:
    with pytest.raises(AuthKeyError, match=f"key file '{path}' is not a regular file \\({kind}\\)"):
        load_key(path)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "key"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(AuthKeyError, match=r"is not a regular file \(a FIFO\)"):
        load_key(fifo)
    assert time.monotonic() - started < 1.0


def test_a_key_file_is_read_up_to_a_bound(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"k" * MAX_KEY_FILE)
    assert load_key(path) == b"k" * MAX_KEY_FILE
    path.write_bytes(b"k" * (MAX_KEY_FILE + 1))
    with pytest.raises(AuthKeyError, match=f"holds more than {MAX_KEY_FILE} bytes"):
        load_key(path)


def test_progress_rewrites_one_line_at_most_every_interval() -> None:
    stream = io.StringIO()
    progress = Progress(stream, every=0.5)
    progress.show(10.0, lambda: "sent 100 datagrams")
    progress.show(10.2, lambda: "not shown: too soon")
    progress.show(10.6, lambda: "sent 9 datagrams")
    progress.done()
    assert stream.getvalue() == "\rsent 100 datagrams\rsent 9 datagrams  \n"
    quiet = Progress(None)
    quiet.show(0.0, lambda: "nowhere")
    quiet.done()


def receiving(*argv: str) -> argparse.Namespace:
    parser = Parser(prog="monitor")
    add_receiving(parser, ttl_help="hops")
    return parser.parse_args(list(argv))


def sending(*argv: str) -> argparse.Namespace:
    parser = Parser(prog="stream")
    add_sending(parser, receivers="receivers", groups_help="in turn")
    return parser.parse_args(list(argv))


def test_receivers_take_shorthand_and_a_groups_file(tmp_path: Path) -> None:
    listed = tmp_path / "groups"
    listed.write_text("239.1.1.1  # again: dropped\n192.0.2.1,232.1.1.1+2\n")
    channels = channels_of(receiving("239.1.1.0+2", "--groups-file", str(listed)))
    assert [str(c) for c in channels] == [
        "239.1.1.0",
        "239.1.1.1",
        "192.0.2.1,232.1.1.1",
        "192.0.2.1,232.1.1.2",
    ]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ((), "at least one GROUP"),
        (("239.1.1.1", "ff15::1"), "mix IPv4 and IPv6"),
        (("239.1.1.1", "--source", "2001:db8::1"), "is IPv6 but the groups are IPv4"),
    ],
)
def test_receivers_refuse_what_cannot_be_joined(argv: tuple[str, ...], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        channels_of(receiving(*argv))


def test_a_groups_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="cannot read groups file"):
        channels_of(receiving("--groups-file", "/nonexistent/groups"))
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(OptionError, match="not UTF-8 text"):
        channels_of(receiving("--groups-file", str(binary)))


@pytest.mark.parametrize(
    ("path", "kind"), [("/dev/zero", "a character device"), ("/", "a directory")]
)
def test_a_groups_file_that_is_no_file_is_refused_in_one_line(path: str, kind: str) -> None:
    """``/dev/zero`` was read until memory ran out (an internal MemoryError, exit 70)."""
    with pytest.raises(
        OptionError, match=f"groups file '{path}' is not a regular file \\({kind}\\)"
    ):
        channels_of(receiving("--groups-file", path))


def test_a_groups_file_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """A FIFO nobody writes to kept the monitor waiting, before it joined anything."""
    fifo = tmp_path / "groups"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(OptionError, match=r"is not a regular file \(a FIFO\)"):
        channels_of(receiving("--groups-file", str(fifo)))
    assert time.monotonic() - started < 1.0


def test_a_groups_file_is_read_up_to_a_bound(tmp_path: Path) -> None:
    path = tmp_path / "groups"
    listed = b"239.1.2.3 # a comment to fill the file: "
    path.write_bytes(listed + b"x" * (MAX_GROUPS_FILE - len(listed)))
    assert [str(c.group) for c in channels_of(receiving("--groups-file", str(path)))] == [
        "239.1.2.3"
    ]
    path.write_bytes(b"#" * (MAX_GROUPS_FILE + 1))
    with pytest.raises(OptionError, match=f"holds more than {MAX_GROUPS_FILE} bytes"):
        channels_of(receiving("--groups-file", str(path)))


def test_senders_send_from_the_source_of_their_pairs() -> None:
    groups, source = sending_channels(sending("192.0.2.1,239.1.1.1+2"))
    assert ([str(g) for g in groups], str(source)) == (["239.1.1.1", "239.1.1.2"], "192.0.2.1")
    groups, source = sending_channels(sending("239.1.1.1", "--source", "192.0.2.2"))
    assert str(source) == "192.0.2.2"
    with pytest.raises(UsageError, match=r"one source address, not 192\.0\.2\.1, 192\.0\.2\.2"):
        sending_channels(sending("192.0.2.1,239.1.1.1", "192.0.2.2,239.1.1.2"))
    with pytest.raises(UsageError, match="SOURCE,GROUP for every group"):
        sending_channels(sending("192.0.2.1,239.1.1.1", "239.1.1.2"))
