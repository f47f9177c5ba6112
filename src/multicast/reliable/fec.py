"""The parity code: systematic Reed-Solomon over GF(2^8), zfec's code, computed fast.

A block of ``k`` data symbols (equal-length byte strings) has parity symbols with ids
``k..255``; any ``k`` distinct symbols of a block rebuild it, so a repair is "n more symbols",
whichever n a receiver lost.

The code is ``zfec``'s (Tahoe-LAFS's, in C, with wheels for CPython 3.11 on x86_64; on
aarch64 it builds from its small C source): parity symbol ``p`` is the sum over ``i`` of
``G[p][i] * data[i]`` in GF(2^8), ``G`` its encoding matrix, read from zfec itself (the
parity of unit vectors). zfec multiplies a byte at a time through a table (about 40
microseconds per parity symbol of a 64-symbol block of 1422 bytes, and as much per symbol
rebuilt); where the package's C helper :mod:`multicast.reliable._gf256` is built, the same
sums are computed 32 bytes at a time (AVX2), several times faster, and a block is rebuilt
from its missing symbols alone: subtract the data symbols present from the parity symbols
received, then solve the small square system that is left (its matrix, a square part of
``G``, is invertible: the code is MDS). Both ways give the same bytes. (A pure-Python code
measured half zfec's speed; ``raptorq`` has no aarch64 wheel, and a fountain code buys
nothing when repairs name their block.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from multicast.exceptions import UnsupportedError

__all__ = ["KERNEL", "MAX_SYMBOLS", "FecUnavailableError", "ParityCode"]

MAX_SYMBOLS = 256  # symbol ids of a block: data and parity together (zfec's n)

Symbol = bytes | bytearray | memoryview
Combine = Callable[[Symbol, Sequence[Symbol], bytes], None]


def _extension() -> ModuleType | None:
    try:
        from multicast.reliable import _gf256  # noqa: PLC0415 (built where a compiler was)
    except ImportError:
        return None
    return _gf256


_gf256 = _extension()
KERNEL: str = "zfec" if _gf256 is None else f"gf256-{_gf256.kernel()}"
"""How parity is computed: ``gf256-avx2`` or ``gf256-table`` (the package's C helper), or
``zfec`` alone where the helper is not built."""


class FecUnavailableError(UnsupportedError):
    """The ``zfec`` package (the parity code) is not installed."""


def _reciprocals() -> bytes:
    """``table[x]``: the x' with x * x' = 1 in GF(2^8) (polynomial 0x11D), from the powers
    of the generator 2 (``table[0]`` is 0: zero has none)."""
    powers = [1]
    for _ in range(254):
        value = powers[-1] << 1
        powers.append(value ^ 0x11D if value & 0x100 else value)
    table = bytearray(256)
    for exponent, value in enumerate(powers):
        table[value] = powers[-exponent % 255]
    return bytes(table)


_RECIPROCAL = _reciprocals()


def _inverse(matrix: list[bytearray], combine: Combine) -> list[bytearray]:
    """The inverse of a square matrix over GF(2^8) (Gauss-Jordan; rows as byte strings, each
    row operation one ``combine``). The matrix must be invertible."""
    size = len(matrix)
    rows = [row + bytes(n == r for n in range(size)) for r, row in enumerate(matrix)]
    scratch = bytearray(2 * size)
    for column in range(size):
        pivot = next(r for r in range(column, size) if rows[r][column])
        rows[column], rows[pivot] = rows[pivot], rows[column]
        lead = rows[column]
        combine(scratch, [lead], bytes([_RECIPROCAL[lead[column]]]))
        lead[:] = scratch
        for r in range(size):
            factor = rows[r][column]
            if r != column and factor:
                combine(scratch, [rows[r], lead], bytes([1, factor]))
                rows[r][:] = scratch
    return [row[size:] for row in rows]


class ParityCode:
    """Parity symbols and recovery for blocks of 1 to 255 data symbols.

    ``accelerated=False`` uses zfec alone even where the C helper is built (for comparison).
    """

    def __init__(self, *, accelerated: bool = True) -> None:
        try:
            import zfec  # noqa: PLC0415 (the files extra: one clear line without it)
        except ImportError:
            raise FecUnavailableError(
                "send-file and receive-file need the zfec package: pip install 'multicast[files]'"
            ) from None
        self._zfec: Any = zfec
        self._combine: Combine | None = (
            _gf256.combine if accelerated and _gf256 is not None else None
        )
        self._encoders: dict[int, Any] = {}
        self._decoders: dict[int, Any] = {}
        self._matrices: dict[int, list[bytes]] = {}

    def _encoder(self, k: int) -> Any:
        encoder = self._encoders.get(k)
        if encoder is None:
            encoder = self._encoders[k] = self._zfec.Encoder(k, MAX_SYMBOLS)
        return encoder

    def _matrix(self, k: int) -> list[bytes]:
        """zfec's encoding matrix for ``k``: row ``p - k`` gives parity symbol ``p``."""
        matrix = self._matrices.get(k)
        if matrix is None:
            units = [bytes(n == i for n in range(k)) for i in range(k)]
            matrix = self._encoder(k).encode(units, tuple(range(k, MAX_SYMBOLS)))
            self._matrices[k] = matrix
        return matrix

    def parity(self, data: Sequence[Symbol], ids: Sequence[int]) -> list[bytes]:
        """Parity symbols ``ids`` (each in ``len(data)..255``) of equal-size ``data``."""
        outputs = [bytearray(len(data[0]) if data else 0) for _ in ids]
        self.parity_into(data, ids, outputs)
        return [bytes(output) for output in outputs]

    def parity_into(
        self, data: Sequence[Symbol], ids: Sequence[int], outputs: Sequence[Symbol]
    ) -> None:
        """Write parity symbols ``ids`` of ``data`` into ``outputs`` (writable, symbol-sized)."""
        k = len(data)
        for symbol in ids:
            if not k <= symbol < MAX_SYMBOLS:
                raise ValueError(f"parity id {symbol} outside {k}..{MAX_SYMBOLS - 1}")
        combine = self._combine
        if combine is None:
            produced = self._encoder(k).encode(tuple(data), tuple(ids))
            for output, value in zip(outputs, produced, strict=True):
                memoryview(output)[:] = value
            return
        matrix = self._matrix(k)
        for output, symbol in zip(outputs, ids, strict=True):
            combine(output, data, matrix[symbol - k])

    def recover(self, k: int, symbols: Mapping[int, Symbol]) -> list[bytes]:
        """The ``k`` data symbols of a block, from ``k`` of its distinct symbols."""
        size = len(next(iter(symbols.values()))) if symbols else 0
        missing = {i: bytearray(size) for i in range(k) if i not in symbols}
        self.recover_into(k, symbols, missing)
        return [bytes(symbols[i]) if i in symbols else bytes(missing[i]) for i in range(k)]

    def recover_into(
        self, k: int, symbols: Mapping[int, Symbol], missing: Mapping[int, Symbol]
    ) -> None:
        """Rebuild the data symbols of a block that ``symbols`` lacks into ``missing`` (id to
        a writable, symbol-sized buffer), from the data and parity symbols in ``symbols``."""
        parity = sorted(i for i in symbols if i >= k)
        lost = [i for i in range(k) if i not in symbols]
        if len(parity) < len(lost):
            raise ValueError(f"{k - len(lost) + len(parity)} symbols of a {k}-symbol block")
        if not lost:
            return
        combine = self._combine
        if combine is None:
            decoder = self._decoders.get(k)
            if decoder is None:
                decoder = self._decoders[k] = self._zfec.Decoder(k, MAX_SYMBOLS)
            # zfec wants each data symbol at its own position; parity fills the gaps.
            spare = iter(parity)
            ids = tuple(i if i in symbols else next(spare) for i in range(k))
            rebuilt = decoder.decode(tuple(symbols[i] for i in ids), ids)
            for i in lost:
                memoryview(missing[i])[:] = rebuilt[i]
            return
        matrix = self._matrix(k)
        used = parity[: len(lost)]
        present = [i for i in range(k) if i in symbols]
        known = [symbols[i] for i in present]
        # Each parity symbol less its present data symbols' share: the lost symbols' share.
        remainders = [bytearray(len(symbols[used[0]])) for _ in used]
        for remainder, p in zip(remainders, used, strict=True):
            row = matrix[p - k]
            combine(remainder, [symbols[p], *known], bytes([1, *(row[i] for i in present)]))
        inverse = _inverse([bytearray(matrix[p - k][i] for i in lost) for p in used], combine)
        for i, coefficients in zip(lost, inverse, strict=True):
            combine(missing[i], remainders, bytes(coefficients))
