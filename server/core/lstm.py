"""A CharLSTM's weights laid out for inference in NumPy: bulk reading and single or batched steps.

No torch: the weights come from the checkpoint through safetensors' NumPy loader,
so serving, sampling and evaluation install and start without it.

- The recurrence runs in C (the ``_lstm`` extension, _lstm.c) where it is built,
  else in NumPy. Layer 0's input projection is a row lookup in a table
  (embedding @ W_ih + biases), and the gates are reordered to (i, f, o, g) so
  one sigmoid covers three of them. For the bundled 2x256 model on the 2-core
  development CPU (AMD EPYC, AVX2; CPU time, bench/lstm_kernels.py): a step at
  batch 1 takes 0.06 ms (NumPy 0.14), at batch 5 0.12 ms (NumPy 0.6), and
  reading 2,048 bytes 87 ms (NumPy 177 ms, torch's oneDNN nn.LSTM 108 ms).
- A step (every layer, and the head for ``step``) is one call into the
  extension, for one row or a few (the completion beam). In NumPy it is a
  hand-written cell of ~8 operations per layer, whose per-call overhead, not the
  arithmetic, is most of its ~0.2 ms for a 2x256 model.
- Reading text in bulk goes layer by layer, as cuDNN does: a layer's input
  projections for every position are one matrix product (BLAS), and only the
  recurrent product is left inside the loop over positions, which is
  ``Cell.layer`` in the extension, or in NumPy a Python loop.

States are ``(h, c)`` arrays of shape (layers, batch, hidden), float32, never
modified in place, so a snapshot can be shared by the cache and a decoder.
Logits are arrays (batch, vocab).
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

try:
    from . import _lstm
except ImportError:  # not built (a source checkout without the extension): the NumPy code
    _lstm = None

from charcode.training.model_config import ModelConfig
from charcode.training.symbols import BOUNDARY

State = tuple[np.ndarray, np.ndarray]


def single_threaded_blas() -> bool:
    """Make NumPy's OpenBLAS use one thread, even when NumPy is already loaded.

    Its worker threads spin-wait between the small products of a step: with the
    default thread count a 2x256 step costs ten times the CPU and twice the time.
    ``OPENBLAS_NUM_THREADS=1`` only works before NumPy loads (``charcode serve``
    sets it earlier), so this calls OpenBLAS's own setter. True if it found one.
    """
    base = Path(np.__file__).parent
    for lib in [*base.parent.glob("numpy.libs/*openblas*"), *base.glob(".dylibs/*openblas*")]:
        try:
            handle = ctypes.CDLL(str(lib))
        except OSError:
            continue
        for name in (
            "scipy_openblas_set_num_threads64_",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            setter = getattr(handle, name, None)
            if setter is not None:
                setter(ctypes.c_int(1))
                return True
    return False


def _reorder_gates(w: np.ndarray, hidden: int) -> np.ndarray:
    """PyTorch's gate order (i, f, g, o) -> (i, f, o, g) along axis 0."""
    i, f, g, o = np.split(w, 4, axis=0)
    assert g.shape[0] == hidden
    return np.concatenate([i, f, o, g], axis=0)


def _sigmoid_(x: np.ndarray) -> None:
    """In place; sigmoid(v) == tanh(v / 2) / 2 + 1/2, with no overflow."""
    x *= 0.5
    np.tanh(x, out=x)
    x *= 0.5
    x += 0.5


class NumpyLSTM:
    """Inference on one model; used from one thread at a time (the inference worker).

    ``native=False`` keeps to the NumPy code even where the extension is built (for
    comparisons); ``native`` then says which is in use.
    """

    device = "cpu"

    def __init__(
        self, config: ModelConfig, weights: Mapping[str, np.ndarray], *, native: bool = True
    ):
        self.config = config
        self.layers, self.hidden, self.vocab = config.layers, config.hidden, config.vocab
        H = self.hidden

        def w(name: str) -> np.ndarray:
            return np.asarray(weights[name], dtype=np.float32)

        ih = [_reorder_gates(w(f"lstm.weight_ih_l{k}"), H) for k in range(self.layers)]
        hh = [_reorder_gates(w(f"lstm.weight_hh_l{k}"), H) for k in range(self.layers)]
        bias = [
            _reorder_gates(w(f"lstm.bias_ih_l{k}") + w(f"lstm.bias_hh_l{k}"), H)
            for k in range(self.layers)
        ]
        # Layer 0 reads a symbol: its input projection is one row of this table.
        self.table0 = np.ascontiguousarray(w("embed.weight") @ ih[0].T + bias[0])
        self.w_ih_t = [None] + [np.ascontiguousarray(m.T) for m in ih[1:]]
        self.w_hh_t = [np.ascontiguousarray(m.T) for m in hh]
        self.bias = bias
        self.head_w_t = np.ascontiguousarray(w("head.weight").T)
        self.head_b = w("head.bias")
        self._cell = None
        if native and _lstm is not None:
            self._cell = _lstm.Cell(
                self.table0, self.w_hh_t, self.w_ih_t[1:], bias[1:], self.head_w_t, self.head_b
            )
        self.native = self._cell is not None
        # NumPy steps: layers above read [x, h], one product with the stacked weights.
        self.w_cat_t = [None]
        if not self.native:
            self.w_cat_t += [
                np.ascontiguousarray(np.concatenate([a, b], axis=1).T)
                for a, b in zip(ih[1:], hh[1:], strict=True)
            ]
        zeros = np.zeros((self.layers, 1, H), dtype=np.float32)
        self.start: State = self._advance([BOUNDARY], (zeros, zeros))[1]

    @property
    def state_bytes(self) -> int:
        """Bytes of one batch-1 state."""
        return 2 * self.layers * self.hidden * 4

    @staticmethod
    def nbytes(state: State) -> int:
        return state[0].nbytes + state[1].nbytes

    def read(self, state: State, data: bytes) -> State:
        """The state after reading data (batch 1)."""
        if not data:
            return state
        if len(data) <= 4:
            for b in data:
                state = self._advance([b], state)[1]
            return state
        return self._read_bulk(state, np.frombuffer(data, dtype=np.uint8))

    def read_symbols(self, state: State, symbols: Sequence[int]) -> State:
        """Like read, for symbols that may include the boundary."""
        if not len(symbols):
            return state
        return self._read_bulk(state, np.asarray(symbols, dtype=np.int64))

    def logits(self, state: State) -> np.ndarray:
        """Next-symbol logits (batch, vocab) from a state's top layer."""
        return state[0][-1] @ self.head_w_t + self.head_b

    def step(self, symbols: Sequence[int], state: State) -> tuple[np.ndarray, State]:
        """Read one symbol per batch row: logits (batch, vocab) after it, and the new state."""
        if self._cell is not None:
            h0, c0 = state
            hs, cs = np.empty(h0.shape, np.float32), np.empty(c0.shape, np.float32)
            logits = np.empty((len(symbols), self.vocab), dtype=np.float32)
            self._native_step(symbols, h0, c0, hs, cs, logits)
            return logits, (hs, cs)
        x, new = self._advance(symbols, state)
        return x @ self.head_w_t + self.head_b, new

    def select(self, state: State, rows: Sequence[int]) -> State:
        """The states of the given batch rows (a row may repeat)."""
        idx = list(rows)
        # take, unlike state[0][:, idx], gives C-contiguous arrays, as the kernels need
        return state[0].take(idx, axis=1), state[1].take(idx, axis=1)

    def log_probs(self, state: State, symbols: Sequence[int]) -> tuple[np.ndarray, State]:
        """Natural-log next-symbol probabilities before each symbol and after the last
        (len + 1, vocab), reading the symbols from state (batch 1); and the final state."""
        tops, final = self._run_layers(state, np.asarray(symbols, dtype=np.int64))
        h_before = np.concatenate([state[0][-1], tops], axis=0)
        logits = h_before @ self.head_w_t + self.head_b
        m = logits.max(axis=1, keepdims=True)
        logits -= m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        return logits, final

    # ---- the cell

    def _advance(self, symbols: Sequence[int], state: State) -> tuple[np.ndarray, State]:
        """The top layer's output and the new state after one symbol per row."""
        H = self.hidden
        h0, c0 = state
        if self._cell is not None:
            hs, cs = np.empty(h0.shape, np.float32), np.empty(c0.shape, np.float32)
            self._native_step(symbols, h0, c0, hs, cs, None)
            return hs[-1], (hs, cs)
        hs, cs = np.empty_like(h0), np.empty_like(c0)
        x = None
        for k in range(self.layers):
            if k == 0:
                g = self.table0[symbols] + h0[0] @ self.w_hh_t[0]
            else:
                g = np.concatenate([x, h0[k]], axis=1) @ self.w_cat_t[k]
                g += self.bias[k]
            s = g[:, : 3 * H]
            _sigmoid_(s)
            c, h = cs[k], hs[k]
            np.multiply(s[:, H : 2 * H], c0[k], out=c)
            c += s[:, :H] * np.tanh(g[:, 3 * H :])
            np.tanh(c, out=h)
            h *= s[:, 2 * H :]
            x = h
        return x, (hs, cs)

    def _native_step(self, symbols, h0, c0, hs, cs, logits) -> None:
        try:
            self._cell.step(symbols, h0, c0, hs, cs, logits)
        except ValueError:
            if h0.flags.c_contiguous and c0.flags.c_contiguous:
                raise
            # a state that is a view (a slice of a batch): the kernel reads contiguous arrays
            h0, c0 = np.ascontiguousarray(h0), np.ascontiguousarray(c0)
            self._cell.step(symbols, h0, c0, hs, cs, logits)

    def _read_bulk(self, state: State, symbols: np.ndarray) -> State:
        return self._run_layers(state, symbols)[1]

    def _run_layers(self, state: State, symbols: np.ndarray) -> tuple[np.ndarray, State]:
        """Layer by layer over a sequence (batch 1): the top layer's outputs (T, H) and the
        final state."""
        H, T = self.hidden, len(symbols)
        h_in, c_in = state
        hs, cs = np.empty(h_in.shape, np.float32), np.empty(c_in.shape, np.float32)
        seq = None
        for k in range(self.layers):
            if T == 0:
                hs[k], cs[k] = h_in[k], c_in[k]
                continue
            if k == 0:
                proj = self.table0[symbols]
            else:
                proj = seq @ self.w_ih_t[k]
                proj += self.bias[k]
            w_hh = self.w_hh_t[k]
            out = np.empty((T, H), dtype=np.float32)
            if self._cell is not None:
                h, c = hs[k, 0], cs[k, 0]
                h[...], c[...] = h_in[k, 0], c_in[k, 0]
                self._cell.layer(k, proj, h, c, out)  # _lstm.layer with packed weights
                seq = out
                continue
            h, c = h_in[k, 0], c_in[k, 0].copy()
            g = np.empty(4 * H, dtype=np.float32)
            tg = np.empty(H, dtype=np.float32)
            for t in range(T):
                np.dot(h, w_hh, out=g)
                g += proj[t]
                s = g[: 3 * H]
                _sigmoid_(s)
                c *= s[H : 2 * H]
                np.tanh(g[3 * H :], out=tg)
                tg *= s[:H]
                c += tg
                h = out[t]
                np.tanh(c, out=h)
                h *= s[2 * H :]
            hs[k, 0], cs[k, 0] = h, c
            seq = out
        return (seq if seq is not None else np.empty((0, H), np.float32)), (hs, cs)
