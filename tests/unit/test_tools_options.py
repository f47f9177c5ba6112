"""The tools' shared options: the key a run names (:func:`multicast.tools.options.load_key`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from multicast.exceptions import AuthKeyError
from multicast.tools.options import add_key, key_of, load_key

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
