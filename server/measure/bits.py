"""`charcode eval` (task bits): bits per character of a model on files, each read whole.

Each file is one stream from its start (the boundary symbol, then its bytes),
as the editor reads an open document: position p is predicted from the p bytes
before it and nothing else. (Cutting the text into parallel streams that start
from a zero state mid-file overstates bits per character.)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from charcode.training.symbols import utf8_complete_prefix

from ..core.predictor import Predictor

LN2 = math.log(2)


def read_head(path: Path, max_bytes: int | None = None) -> bytes:
    """A file's bytes, or its first max_bytes cut back to a character boundary."""
    if max_bytes is None:
        return Path(path).read_bytes()
    with open(path, "rb") as f:
        return utf8_complete_prefix(f.read(max_bytes))


def file_bits(runtime: Predictor, data: bytes) -> np.ndarray:
    """Bits the model spends on each byte of a document read from its start."""
    if not data:
        return np.zeros(0)
    symbols = np.frombuffer(data, dtype=np.uint8)
    logprobs, _ = runtime.log_probs(runtime.start, symbols)
    return -logprobs[np.arange(len(symbols)), symbols].astype(np.float64) / LN2


def position_bins(length: int) -> list[tuple[int, int]]:
    """Log-spaced [start, end) ranges of positions in a file: 0, 1-2, 3-6, 7-14, ..."""
    bins, k = [], 0
    while (1 << k) - 1 < length:
        bins.append(((1 << k) - 1, min(length, (1 << (k + 1)) - 1)))
        k += 1
    return bins


def bits_by_position(per_file: list[np.ndarray]) -> list[dict]:
    """Bits per character by position in the file, in log-spaced bins:
    ``[{"start", "end", "chars", "bits_per_char"}]`` for the bins with text."""
    longest = max((len(b) for b in per_file), default=0)
    out = []
    for a, b in position_bins(longest):
        parts = [bits[a:b] for bits in per_file if len(bits) > a]
        n = sum(len(p) for p in parts)
        if n:
            total = float(sum(p.sum() for p in parts))
            out.append({"start": a, "end": b, "chars": n, "bits_per_char": round(total / n, 4)})
    return out


def adaptive_bits(
    runtime: Predictor, docs: list[bytes], memory_mb: int = 64, progress=None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Static and adaptive bits per byte of each document, read in the order given as one
    project: each byte is predicted by the mixture before the adaptive model learns from it
    (as a compressor would), each document from its start."""
    from ..core.adaptive import AdaptiveModel

    model = AdaptiveModel(memory_mb << 20)
    static, adaptive = [], []
    for data in docs:
        if not data:
            static.append(np.zeros(0))
            adaptive.append(np.zeros(0))
            continue
        symbols = np.frombuffer(data, dtype=np.uint8)
        logprobs, _ = runtime.log_probs(runtime.start, symbols)
        static.append(-logprobs[np.arange(len(symbols)), symbols].astype(np.float64) / LN2)
        adaptive.append(model.score(data, logprobs[:-1]))
        if progress is not None:
            progress(len(data))
    return static, adaptive
