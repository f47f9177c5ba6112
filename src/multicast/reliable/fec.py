"""The parity code: systematic Reed-Solomon over GF(2^8), from the ``zfec`` library.

A block of ``k`` data symbols (equal-length byte strings) has parity symbols with ids
``k..255``; any ``k`` distinct symbols of a block rebuild it, so a repair is "n more symbols",
whichever n a receiver lost.

Why ``zfec``: a well-kept C implementation (Tahoe-LAFS's), with wheels for CPython 3.11 on
x86_64 (on aarch64 it builds from its small C source). A pure-Python Cauchy code written for
this package (one ``bytes.translate`` per coefficient, XOR of Python integers) measured half
its speed on send-file's blocks (64 symbols of 1422 bytes: 71 against 36 microseconds per
parity symbol, best of 50), so it was not kept; ``raptorq`` has no aarch64 wheel either, and
a fountain code buys nothing when repairs name their block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from multicast.exceptions import UnsupportedError

__all__ = ["MAX_SYMBOLS", "FecUnavailableError", "ParityCode"]

MAX_SYMBOLS = 256  # symbol ids of a block: data and parity together (zfec's n)

Symbol = bytes | bytearray | memoryview


class FecUnavailableError(UnsupportedError):
    """The ``zfec`` package (the parity code) is not installed."""


class ParityCode:
    """Parity symbols and recovery for blocks of 1 to 255 data symbols."""

    def __init__(self) -> None:
        try:
            import zfec  # noqa: PLC0415 (the files extra: one clear line without it)
        except ImportError:
            raise FecUnavailableError(
                "send-file and receive-file need the zfec package: pip install 'multicast[files]'"
            ) from None
        self._zfec: Any = zfec
        self._encoders: dict[int, Any] = {}
        self._decoders: dict[int, Any] = {}

    def parity(self, data: Sequence[Symbol], ids: Sequence[int]) -> list[bytes]:
        """Parity symbols ``ids`` (each in ``len(data)..255``) of equal-size ``data``."""
        k = len(data)
        for symbol in ids:
            if not k <= symbol < MAX_SYMBOLS:
                raise ValueError(f"parity id {symbol} outside {k}..{MAX_SYMBOLS - 1}")
        encoder = self._encoders.get(k)
        if encoder is None:
            encoder = self._encoders[k] = self._zfec.Encoder(k, MAX_SYMBOLS)
        produced: list[bytes] = encoder.encode(tuple(data), tuple(ids))
        return produced

    def recover(self, k: int, symbols: Mapping[int, Symbol]) -> list[bytes]:
        """The ``k`` data symbols of a block, from ``k`` of its distinct symbols."""
        parity = sorted(i for i in symbols if i >= k)
        missing = [i for i in range(k) if i not in symbols]
        if len(parity) < len(missing):
            raise ValueError(f"{k - len(missing) + len(parity)} symbols of a {k}-symbol block")
        decoder = self._decoders.get(k)
        if decoder is None:
            decoder = self._decoders[k] = self._zfec.Decoder(k, MAX_SYMBOLS)
        # zfec wants each data symbol at its own position; parity fills the gaps.
        spare = iter(parity)
        ids = tuple(i if i in symbols else next(spare) for i in range(k))
        recovered: list[bytes] = decoder.decode(tuple(symbols[i] for i in ids), ids)
        return recovered
