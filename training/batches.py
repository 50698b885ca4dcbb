"""Batches of parallel streams for stateful truncated backpropagation through time.

The corpus is cut into `batch` equal streams; step k reads the k-th window of
`seq_len` symbols from every stream, so the LSTM state at the end of one step
is the right starting state for the next. The data position is a pure
function of the step number, which makes resuming exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Window:
    x: torch.Tensor  # (streams, seq_len) inputs
    y: torch.Tensor  # (streams, seq_len) targets
    reset: bool  # True at the start of a pass over the data: the state must be zeroed


class StreamBatcher:
    def __init__(self, data: np.ndarray, batch: int, seq_len: int, rank: int = 0, world: int = 1):
        if batch % world:
            raise ValueError(f"batch size {batch} is not divisible by the {world} processes")
        self.data = data
        self.seq_len = seq_len
        self.stream_len = (len(data) - 1) // batch
        if self.stream_len < seq_len:
            need = batch * seq_len + 1
            raise ValueError(
                f"the training data ({len(data):,} symbols) is too small for batch {batch} x seq-len "
                f"{seq_len} (needs {need:,}); use a smaller --batch-size or --seq-len, or more files"
            )
        per_rank = batch // world
        self.starts = np.arange(rank * per_rank, (rank + 1) * per_rank) * self.stream_len
        self.windows_per_pass = self.stream_len // seq_len

    @property
    def chars_per_step(self) -> int:
        return len(self.starts) * self.seq_len

    def window(self, step: int) -> Window:
        k = step % self.windows_per_pass
        offsets = self.starts[:, None] + k * self.seq_len + np.arange(self.seq_len + 1)[None, :]
        chunk = torch.from_numpy(self.data[offsets].astype(np.int64))
        return Window(chunk[:, :-1], chunk[:, 1:], reset=(k == 0))
