"""Builds the optional C extension ``multicast.core._fastio`` (everything else is in pyproject.toml).

It is optional: where it cannot be compiled (no C compiler, no Python headers, not Linux) the
package installs without it and uses its ctypes path (``multicast.core.IO_BACKEND``).
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
        )
    ]
    if sys.platform.startswith("linux")
    else [],
)
