"""The parity code's C helper (``multicast.reliable._gf256``): its one primitive, ``combine``,
against a plain-Python GF(2^8) product, on both of its kernels (AVX2 where the CPU has it, and
the portable table), with every length that ends a vector early; and refused misuse."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

gf256 = pytest.importorskip("multicast.reliable._gf256", reason="the C helper is not built")


def _product(a: int, b: int) -> int:
    """a * b in GF(2^8), polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D), bit by bit."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11D
        b >>= 1
    return product


def _combined(size: int, sources: list[bytes], coefficients: bytes) -> bytes:
    out = bytearray(size)
    for source, factor in zip(sources, coefficients, strict=True):
        for at in range(size):
            out[at] ^= _product(factor, source[at])
    return bytes(out)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 100), st.data())
def test_combine_is_the_sum_of_products(size: int, data: st.DataObject) -> None:
    count = data.draw(st.integers(0, 6))
    sources = [data.draw(st.binary(min_size=size, max_size=size)) for _ in range(count)]
    coefficients = data.draw(st.binary(min_size=count, max_size=count))
    out = bytearray(os.urandom(size))  # overwritten, not added to
    gf256.combine(out, sources, coefficients)
    assert bytes(out) == _combined(size, sources, coefficients)


def test_every_product_of_the_field() -> None:
    values = bytes(range(256))
    for factor in range(256):
        out = bytearray(256)
        gf256.combine(memoryview(out), [values], bytes([factor]))
        assert list(out) == [_product(factor, x) for x in range(256)], factor


def test_the_portable_kernel_gives_the_same_bytes() -> None:
    """The table kernel (MULTICAST_GF256=table) against this CPU's, in a fresh interpreter."""
    script = (
        "import os; from multicast.reliable import _gf256 as g\n"
        "rng = __import__('random').Random(5)\n"
        "out = []\n"
        "for size in (0, 1, 31, 32, 33, 1422):\n"
        "    src = [rng.randbytes(size) for _ in range(5)]\n"
        "    o = bytearray(size); g.combine(o, src, bytes([0, 1, 2, 0x8e, 255])); out.append(o.hex())\n"
        "print(g.kernel(), *out)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "MULTICAST_GF256": kernel},
        ).stdout.split()
        for kernel in ("table", "")
    ]
    assert runs[0][0] == "table"
    assert runs[0][1:] == runs[1][1:]


@pytest.mark.parametrize(
    ("out", "sources", "coefficients", "message"),
    [
        (bytearray(4), [b"abcd", b"abc"], b"\1\1", "as long as out"),
        (bytearray(4), [b"abcd"], b"\1\1", "one coefficient per source"),
        (bytearray(1), [b"a"] * 257, b"\1" * 257, "at most 256"),
    ],
)
def test_misuse_is_refused(
    out: bytearray, sources: list[bytes], coefficients: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        gf256.combine(out, sources, coefficients)


def test_out_must_be_writable_and_sources_a_sequence() -> None:
    with pytest.raises(BufferError):
        gf256.combine(b"read-only", [b"read-only"], b"\1")
    with pytest.raises(TypeError):
        gf256.combine(bytearray(2), 5, b"")
    with pytest.raises(TypeError):
        gf256.combine(bytearray(2), ["no"], b"\1")
