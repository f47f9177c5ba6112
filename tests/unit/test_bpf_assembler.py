"""The classic BPF assembler of :mod:`multicast.core.raw`: its limits are the kernel's, a
jump over at most 255 instructions and a program of at most 4096 (pure: no socket)."""

from __future__ import annotations

import struct

import pytest

from multicast.core.raw import BPF_JEQ, BPF_MAXINSNS, BPF_RET, Step, assemble

KEEP: Step = (BPF_RET, 0xFFFF, None, None)


def _jumping(over: int, total: int) -> list[tuple[str | None, Step]]:
    """``total`` instructions: a jump to the last, over ``over`` instructions, then returns."""
    between: list[tuple[str | None, Step]] = [(None, KEEP)] * over
    tail: list[tuple[str | None, Step]] = [(None, KEEP)] * (total - over - 2)
    return [(None, (BPF_JEQ, 1, "end", None)), *between, ("end", KEEP), *tail]


def test_a_program_may_be_longer_than_255_instructions() -> None:
    code = assemble(_jumping(255, BPF_MAXINSNS))
    assert len(code) == 8 * BPF_MAXINSNS
    assert struct.unpack_from("=HBBI", code) == (BPF_JEQ, 255, 0, 1)


def test_a_program_longer_than_the_kernel_takes_is_refused() -> None:
    with pytest.raises(ValueError, match="4097 instructions: the kernel takes 4096 at most"):
        assemble(_jumping(1, BPF_MAXINSNS + 1))


def test_a_jump_over_more_than_255_instructions_is_refused() -> None:
    with pytest.raises(ValueError, match="instruction 0 jumps back or past 255"):
        assemble(_jumping(256, 300))


def test_a_jump_back_is_refused() -> None:
    with pytest.raises(ValueError, match="instruction 1 jumps back"):
        assemble([("start", KEEP), (None, (BPF_JEQ, 1, "start", None))])
