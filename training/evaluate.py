"""Bits per character: the model's cross-entropy on text it did not train on, in bits per byte."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .model import CharLSTM
from .symbols import BOUNDARY, utf8_complete_prefix


def bits_per_char(
    model: CharLSTM,
    data: np.ndarray,
    device: str | torch.device = "cpu",
    streams: int = 16,
    seq_len: int = 256,
    max_chars: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[float, int]:
    """Mean bits per predicted byte over `data` (symbols with document boundaries).

    The data is cut into parallel streams read statefully, as in training, so
    almost every prediction has a long context. Boundary symbols are inputs only.
    """
    nats, chars = cross_entropy_sum(
        model, data, device, streams, seq_len, max_chars, autocast_dtype
    )
    return nats / max(1, chars) / math.log(2), chars


@torch.inference_mode()
def cross_entropy_sum(
    model: CharLSTM,
    data: np.ndarray,
    device: str | torch.device = "cpu",
    streams: int = 16,
    seq_len: int = 256,
    max_chars: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    part: tuple[int, int] = (0, 1),
) -> tuple[float, int]:
    """Total nats and predicted characters; `part=(rank, world)` reads only that rank's share of
    the streams, so processes can split one evaluation and add up the same figure."""
    if max_chars is not None and len(data) > max_chars + 1:
        data = data[: max_chars + 1]
    n = len(data) - 1
    if n <= 0:
        raise ValueError("no validation text")
    streams = max(1, min(streams, n // max(1, seq_len)))
    stream_len = n // streams
    rank, world = part
    mine = np.array_split(np.arange(streams), world)[rank]
    if len(mine) == 0:
        return 0.0, 0
    was_training = model.training
    model.eval()
    total_nats, total_chars, state = 0.0, 0, None
    arr = np.asarray(data)
    for start in range(0, stream_len, seq_len):
        length = min(seq_len, stream_len - start)
        idx = mine[:, None] * stream_len + start + np.arange(length + 1)[None, :]
        chunk = torch.from_numpy(arr[idx].astype(np.int64)).to(device)
        x, y = chunk[:, :-1], chunk[:, 1:]
        with torch.autocast(
            torch.device(device).type, dtype=autocast_dtype, enabled=autocast_dtype is not None
        ):
            logits, state = model(x, state)
        mask = y != BOUNDARY
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none"
        )
        total_nats += float(loss[mask.reshape(-1)].sum())
        total_chars += int(mask.sum())
    model.train(was_training)
    return total_nats, total_chars


def file_symbols(paths: list[Path], max_bytes: int | None = None) -> tuple[np.ndarray, int]:
    """Concatenate files as documents: boundary, then bytes (at most max_bytes of each, cut
    between characters). Returns symbols and file count."""
    parts = []
    for p in paths:
        parts.append(np.array([BOUNDARY], dtype=np.uint16))
        parts.append(np.frombuffer(read_head(p, max_bytes), dtype=np.uint8).astype(np.uint16))
    if not parts:
        return np.zeros(0, dtype=np.uint16), 0
    return np.concatenate(parts), len(paths)


def read_head(path: Path, max_bytes: int | None = None) -> bytes:
    """A file's bytes, or its first max_bytes cut back to a character boundary."""
    if max_bytes is None:
        return Path(path).read_bytes()
    with open(path, "rb") as f:
        return utf8_complete_prefix(f.read(max_bytes))


def position_bins(length: int) -> list[tuple[int, int]]:
    """Log-spaced [start, end) ranges of positions in a file: 0, 1-2, 3-6, 7-14, ..."""
    bins, k = [], 0
    while (1 << k) - 1 < length:
        bins.append(((1 << k) - 1, min(length, (1 << (k + 1)) - 1)))
        k += 1
    return bins


@torch.inference_mode()
def bits_by_position(
    model: CharLSTM,
    docs: list[bytes],
    device: str | torch.device = "cpu",
    batch: int = 16,
    seq_len: int = 256,
) -> list[dict]:
    """Bits per character by position in the file, in log-spaced bins.

    Each document is read from its boundary symbol on (as the server reads an
    open file), so position p is predicted from the p bytes before it. Returns
    ``[{"start", "end", "chars", "bits_per_char"}]`` for the bins with text.
    """
    docs = [d for d in docs if d]
    if not docs:
        return []
    longest = max(map(len, docs))
    bin_of = np.zeros(longest, dtype=np.int64)
    ranges = position_bins(longest)
    for k, (a, b) in enumerate(ranges):
        bin_of[a:b] = k
    nats = np.zeros(len(ranges))
    counts = np.zeros(len(ranges), dtype=np.int64)
    was_training = model.training
    model.eval()
    order = sorted(docs, key=len, reverse=True)  # similar lengths share a batch: little padding
    for g in range(0, len(order), batch):
        group = order[g : g + batch]
        width = len(group[0])
        sym = np.full((len(group), width + 1), BOUNDARY, dtype=np.int64)
        valid = np.zeros((len(group), width), dtype=bool)
        for i, d in enumerate(group):
            sym[i, 1 : len(d) + 1] = np.frombuffer(d, dtype=np.uint8)
            valid[i, : len(d)] = True
        state = None
        for start in range(0, width, seq_len):
            end = min(width, start + seq_len)
            chunk = torch.from_numpy(sym[:, start : end + 1]).to(device)
            logits, state = model(chunk[:, :-1], state)
            loss = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]),
                chunk[:, 1:].reshape(-1),
                reduction="none",
            ).reshape(len(group), -1)
            loss = loss.cpu().numpy()
            mask = valid[:, start:end]
            bins = np.broadcast_to(bin_of[start:end], mask.shape)[mask]
            np.add.at(nats, bins, loss[mask])
            np.add.at(counts, bins, 1)
    model.train(was_training)
    return [
        {"start": a, "end": b, "chars": int(n), "bits_per_char": round(t / n / math.log(2), 4)}
        for (a, b), n, t in zip(ranges, counts, nats, strict=True)
        if n
    ]
