"""Bits per character: the model's cross-entropy on text it did not train on, in bits per byte."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from .model import CharLSTM
from .symbols import BOUNDARY


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
