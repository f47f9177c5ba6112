"""How RECV prints what it received (issue 12): one datagram, one line, nothing a terminal acts
on, and nothing lost: the line reads back to the very bytes."""

from __future__ import annotations

import codecs
import re

from hypothesis import given
from hypothesis import strategies as st

from multicast.recv import printable_line

_ESCAPE = re.compile(r"\\(\\|n|r|t|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")
_SIMPLE = {"\\": b"\\", "n": b"\n", "r": b"\r", "t": b"\t"}


def read_back(line: str) -> bytes:
    """The bytes a printed line stands for: the escapes undone, the rest UTF-8."""
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(line):
        out += line[position : match.start()].encode()
        escape = match.group(1)
        if escape in _SIMPLE:
            out += _SIMPLE[escape]
        elif escape[0] == "x":  # a byte: below 0x80 a character too, above a stray byte
            out += bytes([int(escape[1:], 16)])
        else:  # a character
            out += chr(int(escape[1:], 16)).encode("utf-8", "surrogatepass")
        position = match.end()
    out += line[position:].encode()
    return bytes(out)


@given(st.binary(max_size=300))
def test_any_payload_is_one_line_of_printable_characters(payload: bytes) -> None:
    line = printable_line(payload)
    assert line.isprintable()  # no ESC, BEL, CR, LF, NUL, no bidi override, no line separator
    assert "\n" not in line and "\r" not in line and "\x1b" not in line


@given(st.binary(max_size=300))
def test_the_line_reads_back_to_the_very_bytes(payload: bytes) -> None:
    assert read_back(printable_line(payload)) == payload


@given(st.text(max_size=200))
def test_printable_text_is_shown_as_it_is(text: str) -> None:
    if text.isprintable() and "\\" not in text:
        assert printable_line(text.encode()) == text


def test_terminal_escapes_and_forged_log_lines_are_shown_not_acted_on() -> None:
    title = b"\x1b]0;owned\x07"  # sets a terminal's title
    clipboard = b"\x1b]52;c;ZXZpbA==\x07"  # writes a terminal's clipboard
    forged = b"ok\r\nmulticast: STOP from 10.0.0.1"
    assert printable_line(title) == "\\x1b]0;owned\\x07"
    assert printable_line(clipboard) == "\\x1b]52;c;ZXZpbA==\\x07"
    assert printable_line(forged) == "ok\\r\\nmulticast: STOP from 10.0.0.1"
    assert printable_line("\u202eevil".encode()) == "\\u202eevil"
    assert printable_line(b"\xc2\x9b31m") == "\\u009b31m"  # the 8-bit CSI, a character
    assert printable_line(b"\x9b31m") == "\\x9b31m"  # the byte alone is no UTF-8


def test_bytes_that_are_not_utf8_and_backslashes_stay_apart() -> None:
    assert printable_line(b"caf\xc3\xa9 \xff") == "café \\xff"
    assert printable_line(b"\\xff") == "\\\\xff"  # the four characters, not the byte
    assert codecs.decode(printable_line(b"a\\b"), "unicode_escape") == "a\\b"
    assert printable_line("\u00a0".encode()) == "\\u00a0"  # a character, not the byte A0
