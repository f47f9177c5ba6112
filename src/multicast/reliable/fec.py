"""A systematic Reed-Solomon erasure code over GF(2^8) (Cauchy), in pure Python. Pure code.

A block of ``k`` data symbols (equal-length byte strings) has parity symbols with ids
``k..255``; any ``k`` distinct symbols of a block rebuild it. Parity ``p`` is
``sum_j c(p, j) * d_j`` with the normalised Cauchy coefficients::

    c(p, j) = (k + j) / (p + j)        (+ is XOR in GF(2^8); p >= k > j)

Every square sub-matrix of a Cauchy matrix is invertible, and scaling its columns keeps that
true, so the code is MDS; the scaling makes the first parity (``p = k``) the plain XOR of the
data, the cheapest to make and to use (most blocks lose one symbol).

Why not a C library: multiplying a whole symbol by a constant is one ``bytes.translate``
with that constant's 256-byte table and adding is an XOR of Python integers, both in C;
measured here (``benchmarks/bench_fec.py``) this is about twice as fast as ``zfec`` for the
block sizes used, and it needs no compiler or wheel on any platform.

Decoding solves for the ``e`` missing data symbols with the closed-form inverse of the
``e x e`` Cauchy sub-matrix (O(e^2) coefficients, no elimination).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

__all__ = ["MAX_SYMBOLS", "ParityCode"]

MAX_SYMBOLS = 256  # symbol ids of a block: data and parity together
_POLYNOMIAL = 0x11D  # x^8 + x^4 + x^3 + x^2 + 1; 2 generates its multiplicative group


def _tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        value <<= 1
        if value & 0x100:
            value ^= _POLYNOMIAL
    for power in range(255, 512):
        exp[power] = exp[power - 255]
    return exp, log


_EXP, _LOG = _tables()


def _mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _EXP[_LOG[a] + _LOG[b]]


def _div(a: int, b: int) -> int:
    return 0 if a == 0 else _EXP[_LOG[a] + 255 - _LOG[b]]


Symbol = bytes | bytearray | memoryview


class ParityCode:
    """Parity symbols and recovery for blocks of 1 to 255 data symbols."""

    def __init__(self) -> None:
        self._translations: dict[int, bytes] = {}
        self._rows: dict[tuple[int, int], list[bytes | None]] = {}

    def _table(self, factor: int) -> bytes | None:
        """The 256-byte table that multiplies a byte by ``factor`` (None for 1)."""
        if factor == 1:
            return None
        table = self._translations.get(factor)
        if table is None:
            table = self._translations[factor] = bytes(_mul(factor, x) for x in range(256))
        return table

    def _row(self, k: int, parity: int) -> list[bytes | None]:
        """The tables of parity ``parity``'s coefficients over a block of ``k``."""
        row = self._rows.get((k, parity))
        if row is None:
            if len(self._rows) > 4096:
                self._rows.clear()
            row = self._rows[(k, parity)] = [
                self._table(self.coefficient(k, parity, j)) for j in range(k)
            ]
        return row

    @staticmethod
    def _combine(terms: Iterable[tuple[bytes | None, bytes | bytearray]]) -> int:
        """``sum factor * symbol`` (each factor given by its table) as a little-endian int."""
        total = 0
        from_bytes = int.from_bytes
        for table, symbol in terms:
            total ^= from_bytes(symbol if table is None else symbol.translate(table), "little")
        return total

    @staticmethod
    def coefficient(k: int, parity: int, data: int) -> int:
        """``c(parity, data)`` of a block of ``k`` data symbols."""
        return _div(k ^ data, parity ^ data)

    def parity(self, data: Sequence[Symbol], ids: Sequence[int]) -> list[bytes]:
        """Parity symbols ``ids`` (each in ``len(data)..255``) of equal-size ``data``."""
        k = len(data)
        size = len(data[0])
        raw = [bytes(symbol) if isinstance(symbol, memoryview) else symbol for symbol in data]
        out: list[bytes] = []
        for p in ids:
            if not k <= p < MAX_SYMBOLS:
                raise ValueError(f"parity id {p} outside {k}..{MAX_SYMBOLS - 1}")
            total = self._combine(zip(self._row(k, p), raw, strict=True))
            out.append(total.to_bytes(size, "little"))
        return out

    def recover(self, k: int, symbols: Mapping[int, Symbol]) -> list[bytes]:
        """The ``k`` data symbols of a block, from ``k`` of its distinct symbols."""
        present = sorted(j for j in symbols if j < k)
        missing = [j for j in range(k) if j not in symbols]
        parities = sorted(p for p in symbols if p >= k)[: len(missing)]
        if len(parities) < len(missing):
            raise ValueError(f"{len(present) + len(parities)} symbols of a {k}-symbol block")
        size = len(next(iter(symbols.values())))
        known = {j: bytes(symbols[j]) for j in present}
        # r_p = s_p - sum over present data of c(p, j) d_j = sum over missing of c(p, m) d_m
        residues: list[bytes] = []
        for p in parities:
            row = self._row(k, p)
            total = int.from_bytes(symbols[p], "little") ^ self._combine(
                (row[j], known[j]) for j in present
            )
            residues.append(total.to_bytes(size, "little"))
        # A[i][m] = c(p_i, m) = (k + m) / (p_i + m): a Cauchy matrix B[i][m] = 1 / (x_i + y_m)
        # (x_i = p_i, y_m = m) times diag(k + m); its inverse is diag(1 / (k + m)) B^-1.
        xs, ys = parities, missing
        a = [_product(x ^ y for y in ys) for x in xs]  # prod_m (x_i + y_m)
        b = [_product(x ^ y for x in xs) for y in ys]  # prod_i (x_i + y_m)
        e = [_product(x ^ z for z in xs if z != x) for x in xs]
        f = [_product(y ^ z for z in ys if z != y) for y in ys]
        rebuilt = known
        for col, y in enumerate(ys):
            terms = []
            for row_index, x in enumerate(xs):
                inverse = _div(_mul(a[row_index], b[col]), _mul(_mul(x ^ y, e[row_index]), f[col]))
                terms.append((self._table(_div(inverse, k ^ y)), residues[row_index]))
            rebuilt[y] = self._combine(terms).to_bytes(size, "little")
        return [rebuilt[j] for j in range(k)]


def _product(values: Iterable[int]) -> int:
    result = 1
    for value in values:
        result = _mul(result, value)
    return result
