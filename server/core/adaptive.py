"""Adaptive prediction: context models of the user's text mixed online with the LSTM.

The LSTM is the prior; this engine learns, online, from the text the user works
on (workspace files through :meth:`AdaptiveModel.learn`, typed documents through
:meth:`AdaptiveModel.score`) and mixes its own predictions with the LSTM's
distribution. The work is done by a compiled core (``_adaptive.c``, plain C99,
built by ``pip install``): bit-level logistic mixing, as in the lpaq/paq family.
A byte is 8 binary decisions; for each, the inputs are

- 14 hashed context models (orders 0-6, 8, 12, 16, 24; the identifier being typed;
  the previous identifier with it; the layout: byte above, last byte, indentation),
  each a 64-byte slot per context and nibble holding a slow and a fast adaptive
  counter per node and the byte that followed the context last time (with its run);
- a match model (the byte after the latest earlier occurrence of the last 12, else
  5, bytes, with its verified length);
- the LSTM's probability of the bit (subtree sums of its 257-way distribution), raw
  and calibrated on the text by an APM;

three mixers whose weight sets are chosen by the partial byte, by (highest context
order seen, match length, bit position, LSTM confidence) and by the last byte, a
final mixer over them, and three APM/SSE stages after it.

A prediction depends only on the learned state, the last :data:`CONTEXT_BYTES`
bytes of the document and the LSTM's distribution: :meth:`predict` reads and
never writes, so ghost-text paths can be scored without teaching the engine, and
:meth:`score` gives exactly the probabilities :meth:`predict` would, then learns.

Threads: :meth:`predict` and :attr:`stats` only read, and may run in any thread
while no writer runs. Writers (:meth:`learn`, :meth:`score`, :meth:`save`) are
serialized by an internal lock. The core releases the GIL while it computes.
Reading while a writer runs is memory-safe (no table is ever reallocated) but
may see a half-updated state.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from . import _adaptive

CONTEXT_BYTES: int = _adaptive.CONTEXT_BYTES
"""How many bytes before the position a prediction looks at (pass at least these)."""

VOCAB_SIZE = 257
BOUNDARY = 256
DEFAULT_MEMORY = 64 << 20
MIN_MEMORY: int = _adaptive.MIN_MEMORY


class AdaptiveStateError(Exception):
    """A saved adaptive state that cannot be used: truncated, corrupt, stale or not ours."""


_adaptive.set_error(AdaptiveStateError)


def _log_probs(x: np.ndarray) -> np.ndarray:
    """Logits (float64, 257) from logits, log-probabilities or probabilities.

    A non-negative vector summing to 1 is taken as probabilities; anything else as
    logits (log-probabilities are logits). The core normalises.
    """
    v = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    if v.shape[0] != VOCAB_SIZE:
        raise ValueError(f"expected {VOCAB_SIZE} values, got {v.shape[0]}")
    if v.min() >= 0.0 and abs(float(v.sum()) - 1.0) < 1e-3:
        with np.errstate(divide="ignore"):
            return np.log(v)
    if np.isfinite(v.max()):
        return v
    # NaN or +inf somewhere: NaN counts as impossible, +inf as certain
    v = np.where(np.isnan(v), -np.inf, v)
    if np.isposinf(v).any():
        return np.where(np.isposinf(v), 0.0, -np.inf)
    if not np.isfinite(v.max()):
        return np.zeros(VOCAB_SIZE)
    return v


class AdaptiveModel:
    """Online context mixing over the LSTM; state capped at ``memory_bytes``.

    The default 64 MiB holds a 4 MiB history for the match model (2 MiB of match
    tables), ~806k context slots (15 counters each, 49 MiB) and the mixers and APMs
    (~9 MiB, fixed): about a workspace of 1-2 MB of one language before contexts
    start to replace each other (on 0.2-0.75 MB projects 256 MiB gains only ~0.6%
    in bits/char); bigger workspaces still learn, replacing the least-seen contexts.
    The minimum is :data:`MIN_MEMORY` (16 MiB).
    """

    def __init__(self, memory_bytes: int = DEFAULT_MEMORY, **tuning: float) -> None:
        self._core = _adaptive.Core(int(memory_bytes), **tuning)
        self._lock = threading.Lock()

    @classmethod
    def _wrap(cls, core) -> AdaptiveModel:
        self = cls.__new__(cls)
        self._core = core
        self._lock = threading.Lock()
        return self

    # ---------------------------------------------------------------- learning

    def learn(self, data: bytes) -> None:
        """Learn the context statistics of one file (read from its start); no LSTM needed."""
        with self._lock:
            self._core.learn(bytes(data))

    def score(
        self, data: bytes, lstm_logprobs: np.ndarray | None, context: bytes = b""
    ) -> np.ndarray:
        """Bits (-log2 p) of each byte of ``data`` under the mixture, learning after each byte.

        ``lstm_logprobs[i]`` is the LSTM's natural-log distribution (257) of the symbol
        before ``data[i]``; ``context`` is the document's text before ``data`` (empty at
        the start of a document). Context statistics and mixer weights both learn.
        ``None`` for the LSTM scores with the context models alone (a flat prior).
        """
        data = bytes(data)
        n = len(data)
        lp = None
        if lstm_logprobs is not None:
            lp = np.ascontiguousarray(lstm_logprobs, dtype=np.float64)
            if lp.shape != (n, VOCAB_SIZE):
                raise ValueError(
                    f"lstm_logprobs must have shape ({n}, {VOCAB_SIZE}), not {lp.shape}"
                )
            if n and np.isnan(lp).any() | (lp == np.inf).any():
                raise ValueError("lstm_logprobs holds NaN or +inf")
        ctx = bytes(context)[-CONTEXT_BYTES:]
        out = np.empty(n, dtype=np.float64)
        with self._lock:
            self._core.score(ctx + data, len(ctx), lp, out)
        return out

    # -------------------------------------------------------------- prediction

    def predict(self, context: bytes, lstm_logits_or_probs: np.ndarray) -> np.ndarray:
        """The mixed distribution (257, float64) of the next symbol after ``context``.

        Reads only. ``context`` is the document's text before the position (only the
        last :data:`CONTEXT_BYTES` bytes matter); the LSTM's distribution there comes as
        logits, log-probabilities or probabilities. Sums to 1; every symbol > 0.
        """
        lp = _log_probs(lstm_logits_or_probs)
        out = np.empty(VOCAB_SIZE, dtype=np.float64)
        self._core.predict(bytes(context[-CONTEXT_BYTES:]), lp, out)
        out /= out.sum()
        return out

    def predict_logs(self, contexts: tuple[bytes, ...], lstm_logits: np.ndarray, out: np.ndarray):
        """The decoders' fast path: into ``out`` (k, 257, float32), the natural log of the
        mixed distribution after each of k contexts, given the LSTM's logits (k, 257,
        float32) there. Reads only; the same distributions as :meth:`predict`."""
        self._core.predict_logs(contexts, np.ascontiguousarray(lstm_logits, np.float32), out)

    def best(self, context: bytes, lstm_logits: np.ndarray, mask: np.ndarray) -> tuple[int, float]:
        """The most likely next symbol of the mixture among those ``mask`` allows (an additive
        float32 mask: 0 allowed, -inf not) and its probability, (-1, 0.0) if none: the argmax
        of :meth:`predict` plus the mask, found without the whole distribution (greedy
        decoding's hot path). Reads only."""
        return self._core.best(context, lstm_logits, mask)

    # ------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the whole state atomically (temporary file, fsync, rename)."""
        path = Path(path)
        with self._lock:
            blob = self._core.dumps()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        try:
            fd = os.open(path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    @classmethod
    def load(cls, path: str | os.PathLike) -> AdaptiveModel:
        """Read a saved state; raises :class:`AdaptiveStateError` on anything but a good file."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > (17 << 30):
                raise AdaptiveStateError(f"{path}: {size} bytes is too large for a state file")
            data = path.read_bytes()
        except OSError as e:
            raise AdaptiveStateError(f"{path}: cannot read ({e.strerror or e})") from None
        try:
            core = _adaptive.loads(data)
        except AdaptiveStateError as e:
            raise AdaptiveStateError(f"{path}: {e}") from None
        except MemoryError:
            raise AdaptiveStateError(f"{path}: not enough memory to load it") from None
        return cls._wrap(core)

    # ------------------------------------------------------------------ stats

    @property
    def stats(self) -> dict:
        """bytes_learned, files_learned, bytes_scored, documents_scored, memory_bytes (used),
        memory_cap, history_bytes, context_slots."""
        return self._core.stats()
