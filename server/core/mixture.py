"""The LSTM mixed with what the engine learned from the user's code, as a Predictor.

``MixedPredictor`` wraps the LSTM runtime and an ``adaptive.AdaptiveModel``: its
state is the LSTM's state plus the last ``CONTEXT_BYTES`` bytes read, and its
scores are the log of the mixture the adaptive model computes from them. The
decoders (ghost text, beam, sampler) see the same interface as the LSTM's, so
every prediction the user sees comes from the mixture. Predicting never
teaches: decoders explore hypothetical paths; only real text is learned, by
``learn`` (the text of a document before the cursor) and the workspace reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .adaptive import CONTEXT_BYTES, AdaptiveModel
from .predictor import Predictor


def _tail(tail: bytes, symbol: int) -> bytes:
    """The last CONTEXT_BYTES bytes after reading symbol (the boundary starts afresh)."""
    return (tail + bytes([symbol]))[-CONTEXT_BYTES:] if symbol < 256 else b""


@dataclass(frozen=True)
class MixedState:
    lstm: object  # the LSTM's state (batch rows)
    tails: tuple[bytes, ...]  # per batch row: the last CONTEXT_BYTES bytes read


class MixedPredictor:
    def __init__(self, lstm: Predictor, model: AdaptiveModel):
        self.lstm = lstm
        self.model = model
        self.vocab = lstm.vocab
        self.layers, self.hidden = lstm.layers, lstm.hidden
        self.start = MixedState(lstm.start, (b"",))

    def read(self, state: MixedState, data: bytes) -> MixedState:
        if not data:
            return state
        return MixedState(
            self.lstm.read(state.lstm, data), ((state.tails[0] + data)[-CONTEXT_BYTES:],)
        )

    def logits(self, state: MixedState) -> np.ndarray:
        return self._mix(self.lstm.logits(state.lstm), state.tails)

    def step(self, symbols: Sequence[int], state: MixedState) -> tuple[np.ndarray, MixedState]:
        logits, lstm_state = self.lstm.step(symbols, state.lstm)
        tails = tuple(_tail(t, s) for t, s in zip(state.tails, symbols, strict=True))
        return self._mix(logits, tails), MixedState(lstm_state, tails)

    # Greedy decoding asks only for the best symbol: the LSTM's logits travel beside the
    # state, and the engine finds the best symbol without the whole mixture.

    def advance(self, symbol: int, state: MixedState) -> tuple[np.ndarray, MixedState]:
        """The state after one symbol (batch 1), with the LSTM's logits (257) there."""
        logits, lstm_state = self.lstm.step([symbol], state.lstm)
        return logits[0], MixedState(lstm_state, (_tail(state.tails[0], symbol),))

    def best(
        self, state: MixedState, lstm_logits: np.ndarray, mask: np.ndarray
    ) -> tuple[int, float]:
        """argmax(logits(state)[0] + mask) and its probability, given the LSTM's logits at
        the state."""
        return self.model.best(state.tails[0], lstm_logits, mask)

    def learn(self, state: MixedState, data: bytes) -> MixedState:
        """Score ``data`` (real text read from ``state``), each byte before the engine learns
        it; the state after it."""
        logprobs, lstm_state = self.lstm.log_probs(state.lstm, np.frombuffer(data, np.uint8))
        self.model.score(data, logprobs[:-1], context=state.tails[0])
        return MixedState(lstm_state, ((state.tails[0] + data)[-CONTEXT_BYTES:],))

    def select(self, state: MixedState, rows: Sequence[int]) -> MixedState:
        return MixedState(self.lstm.select(state.lstm, rows), tuple(state.tails[r] for r in rows))

    def nbytes(self, state: MixedState) -> int:
        return self.lstm.nbytes(state.lstm) + sum(len(t) for t in state.tails)

    def _mix(self, lstm_logits: np.ndarray, tails: tuple[bytes, ...]) -> np.ndarray:
        out = np.empty((len(tails), self.vocab), dtype=np.float32)
        self.model.predict_logs(tails, lstm_logits, out)
        return out
