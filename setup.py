"""Builds the optional C extension ``multicast.core._fastio`` (everything else is in pyproject.toml).

It is optional: where it cannot be compiled (no C compiler, no Python headers, not Linux) the
package installs without it and uses its ctypes path (``multicast.core.IO_BACKEND``).
"""

import sys

from setuptools import Extension, setup

WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Wconversion", "-Wsign-conversion"]

setup(
    ext_modules=[
        Extension(
            "multicast.core._fastio",
            sources=["src/multicast/core/_fastio.c"],
            extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", *WARNINGS],
            optional=True,
        )
    ]
    if sys.platform.startswith("linux")
    else [],
)
