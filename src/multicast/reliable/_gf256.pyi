"""Types of the C helper (``_gf256.c``): GF(2^8) multiply-and-add of byte regions."""

from collections.abc import Sequence

Buffer = bytes | bytearray | memoryview

def combine(out: Buffer, sources: Sequence[Buffer], coefficients: bytes) -> None: ...
def kernel() -> str: ...
