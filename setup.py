"""Declares the compiled extension; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "charcode.server.core._adaptive",
            sources=["server/core/_adaptive.c"],
            # Plain C99 for any x86-64/arm64: no -march=native. No FP contraction, so a
            # build gives the same bits whether or not the target has FMA.
            extra_compile_args=["-std=c99", "-O2", "-ffp-contract=off"],
        )
    ],
)
