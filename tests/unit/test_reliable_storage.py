"""Received files: safe names, links never followed, resume records, the digest check."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from multicast.reliable.blocks import Catalogue, FileEntry, Layout
from multicast.reliable.storage import FileStore, StorageError, unsafe_name

LAYOUT = Layout(symbol_size=16, block_symbols=4)  # 64-byte blocks


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "../escape",
        "/etc/passwd",
        "a/b",
        "a\\b",
        "nul\0byte",
        "tab\there",
        "NUL",
        "con.txt",
        "COM1.log",
        "lpt9",
        " leading",
        "trailing.",
        ".secret.mcpart",
        ".x.mcstate",
        "x" * 256,
        "right-to-left\u202eoverride",
    ],
)
def test_unsafe_names_are_refused(name: str) -> None:
    assert unsafe_name(name) is not None


@pytest.mark.parametrize("name", ["image.iso", ".hidden", "données.tar.gz", "a b c", "..x"])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert unsafe_name(name) is None


def _entry(content: bytes, name: str = "f.bin") -> FileEntry:
    (entry,) = Catalogue.build(
        LAYOUT, [(name, len(content), hashlib.sha256(content).digest())]
    ).files
    return entry


def test_a_file_is_renamed_into_place_only_once_its_digest_matches(tmp_path: Path) -> None:
    content = os.urandom(150)
    entry = _entry(content)
    store = FileStore(tmp_path)
    prepared = store.prepare(entry, LAYOUT)
    assert prepared.refused is None and list(prepared.done) == [0, 0, 0]
    store.write(0, 0, b"\0" * 150)
    assert not store.finish(0, hashlib.sha256(b"\0" * 150).digest())  # stays partial
    assert not (tmp_path / "f.bin").exists()
    store.write(0, 0, content)
    assert store.finish(0, hashlib.sha256(content).digest())
    assert (tmp_path / "f.bin").read_bytes() == content
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]
    store.close()


def test_a_link_in_place_of_the_file_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep me")
    output = tmp_path / "out"
    output.mkdir()
    (output / "f.bin").symlink_to(outside)
    content = b"new content"
    store = FileStore(output)
    store.prepare(_entry(content), LAYOUT)
    store.write(0, 0, content)
    assert store.finish(0, hashlib.sha256(content).digest())
    store.close()
    assert outside.read_bytes() == b"keep me"
    assert not (output / "f.bin").is_symlink()
    assert (output / "f.bin").read_bytes() == content


def test_a_link_as_the_partial_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"")
    (tmp_path / ".f.bin.mcpart").symlink_to(tmp_path / "target")
    store = FileStore(tmp_path)
    with pytest.raises(StorageError, match="mcpart"):
        store.prepare(_entry(b"abc"), LAYOUT)
    store.close()


def test_an_unsafe_name_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    output = tmp_path / "out"
    store = FileStore(output)
    prepared = store.prepare(_entry(b"abc", name="../escape"), LAYOUT)
    assert prepared.refused == "a path, not one file name"
    store.close()
    assert os.listdir(output) == []
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_partial_file_resumes_from_its_record(tmp_path: Path) -> None:
    content = os.urandom(150)
    entry = _entry(content)
    store = FileStore(tmp_path)
    store.prepare(entry, LAYOUT)
    store.write(0, 64, content[64:128])
    store.block_done(0, 1)
    store.close()  # writes the record
    again = FileStore(tmp_path)
    assert list(again.prepare(entry, LAYOUT).done) == [0, 1, 0]
    again.close()
    other_layout = Layout(symbol_size=32, block_symbols=2)
    third = FileStore(tmp_path)
    assert list(third.prepare(entry, other_layout).done) == [0, 0, 0]  # another layout
    third.close()


def test_a_complete_copy_already_in_place_is_kept(tmp_path: Path) -> None:
    content = os.urandom(100)
    (tmp_path / "f.bin").write_bytes(content)
    store = FileStore(tmp_path)
    prepared = store.prepare(_entry(content), LAYOUT)
    assert prepared.complete and list(prepared.done) == [1, 1]
    store.close()


def test_an_unusable_output_directory_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError, match="cannot use output directory"):
        FileStore(tmp_path / "file" / "below")
