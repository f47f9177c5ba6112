"""Builds the optional C extensions (everything else is in pyproject.toml).

Both are optional: where they cannot be compiled (no C compiler, no Python headers, not Linux)
the package installs without them. ``multicast.core._fastio`` is the batched datagram path
(without it: ctypes, ``multicast.core.IO_BACKEND``); ``multicast.reliable._gf256`` is the
parity code's arithmetic (without it: zfec alone, ``multicast.reliable.fec.KERNEL``).
"""

import sys

from setuptools import Extension, setup

# Hidden symbols: the two files of the extension share theirs, only PyInit__fastio is exported.
FLAGS = ["-O2", "-std=c11", "-D_GNU_SOURCE", "-fvisibility=hidden"]
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Wconversion", "-Wsign-conversion"]

setup(
    ext_modules=[
        Extension(
            "multicast.core._fastio",
            sources=["src/multicast/core/_fastio.c", "src/multicast/core/_fastio_send.c"],
            depends=["src/multicast/core/_fastio.h"],
            extra_compile_args=[*FLAGS, *WARNINGS],
            optional=True,
        ),
        Extension(
            "multicast.reliable._gf256",
            sources=["src/multicast/reliable/_gf256.c"],
            extra_compile_args=["-O2", "-std=c11", *WARNINGS],
            optional=True,
        ),
    ]
    if sys.platform.startswith("linux")
    else [],
)
