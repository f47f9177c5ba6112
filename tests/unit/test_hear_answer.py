"""HEAR's answer, a pure function of the payload, its source and where it was heard."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from multicast.hear import _answer, fit
from multicast.recv import decode_payload

SOURCE = ("198.18.0.1", 5000)


def answer_from_text(payload: bytes, here: str) -> bytes:
    """The answer as the module describes it: the decoded words, stripped and in capitals,
    after ``HEAR [ `` and cut to the payload's size without splitting a character."""
    words = decode_payload(payload).rstrip().upper()
    return fit(f"HEAR [ {words} SAID {SOURCE} ] from {here}", len(payload))


def test_an_answer_is_the_words_in_capitals_cut_to_the_question() -> None:
    assert _answer(b"hello there, anyone?", SOURCE, "239.1.2.3") == b"HEAR [ HELLO THERE, "
    assert _answer(b"hi \x1c\n", SOURCE, "239.1.2.3") == b"HEAR "  # never longer
    # 10 bytes: HEAR [ (7), one É (2), and not the first byte of the next
    assert _answer("é".encode() * 5, SOURCE, "ff02::1") == "HEAR [ É".encode()
    assert _answer(b"", SOURCE, "239.1.2.3") == b""


@given(st.binary(max_size=300), st.sampled_from(["239.1.2.3", "ff02::1"]))
def test_the_ascii_fast_path_answers_as_the_text_path(payload: bytes, here: str) -> None:
    assert _answer(payload, SOURCE, here) == answer_from_text(payload, here)


@given(
    st.text(alphabet=st.characters(max_codepoint=127), max_size=300),
    st.sampled_from(["239.1.2.3", "ff02::1"]),
)
def test_ascii_text_with_any_whitespace_answers_as_the_text_path(text: str, here: str) -> None:
    payload = text.encode() + b" \t\x1c\x1f\x0b" * (len(text) % 3)
    assert _answer(payload, SOURCE, here) == answer_from_text(payload, here)
