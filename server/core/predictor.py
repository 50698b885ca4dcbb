"""The one interface every decoder asks for the next-symbol distribution.

A predictor reads text into a state and scores the next symbol from it. The
LSTM runtime (lstm.py, or lstm_cuda.py on a GPU) is the static predictor; the
adaptive predictor (the LSTM mixed with what the engine learned from the
user's workspace) has the same shape, so ghost text, completion items and
hallucinated functions come from whichever one the session uses.

States are opaque to decoders: they pass them back, never look inside, and
never modify them (a snapshot is shared by the cache and several decoders).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

State = Any  # a predictor's own state type: (h, c) arrays for the LSTM


class Predictor(Protocol):
    vocab: int
    start: State  # the state after the document boundary

    def read(self, state: State, data: bytes) -> State:
        """The state after reading data (batch 1)."""

    def logits(self, state: State) -> np.ndarray:
        """Next-symbol scores (batch, vocab): log-probabilities up to a constant per row."""

    def step(self, symbols: Sequence[int], state: State) -> tuple[np.ndarray, State]:
        """Read one symbol per batch row: the scores after it (batch, vocab), and the new state."""

    def select(self, state: State, rows: Sequence[int]) -> State:
        """The states of the given batch rows (a row may repeat)."""

    def nbytes(self, state: State) -> int:
        """Memory a state holds (for the snapshot cache's cap)."""
