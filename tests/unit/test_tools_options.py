"""The tools' shared options: the key a run names (:func:`multicast.tools.options.load_key`)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pytest

from multicast.exceptions import AuthKeyError
from multicast.tools.options import MAX_KEY_FILE, add_key, key_of, load_key

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
