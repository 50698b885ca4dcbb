"""Declares the compiled extension; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "charcode.server.core._adaptive",
            sources=["server/core/_adaptive.c"],
            # Plain C99 for any x86-64/arm64: no -march=native. No FP contraction, so a
            # build gives the same bits whether or not the target has FMA.
            extra_compile_args=["-std=c99", "-O3", "-ffp-contract=off"],
        ),
        Extension(
            "charcode.server.core._lstm",
            sources=["server/core/_lstm.c"],
            # Plain C99, no -march=native: the kernels are compiled for the baseline and, on
            # x86, for AVX2+FMA through a target attribute, chosen at import. -O3 and no
            # trapping math let the compiler vectorise the loops (the activations' clamps);
            # FP contraction lets the AVX2 build use FMA.
            extra_compile_args=["-std=c99", "-O3", "-ffp-contract=fast", "-fno-trapping-math"],
        ),
    ],
)
