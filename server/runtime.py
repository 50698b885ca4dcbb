"""A CharLSTM's weights laid out for inference: bulk reading and single (or small-batch) steps.

Measured on the 2-core development CPU (torch 2.13, one thread each; figures
in server/README-lsp.md, bench/lsp_latency.py for the end-to-end view):

- Reading text in bulk (prefill) is fastest through ``nn.LSTM`` with oneDNN
  enabled: it projects all inputs at once and runs the recurrence in C++.
- A step at batch 1 is fastest as a hand-written cell in NumPy: for a 2x256
  model one step (both layers and the head) takes about 0.2 ms, against 0.3 ms
  for the same cell in torch ops (``addmm`` and friends) and 0.6 ms or more for
  ``nn.LSTM`` (which pays a oneDNN primitive setup per call). At this size the
  per-operation overhead, not the arithmetic, is the cost, and NumPy's is
  smaller than torch's. At batch 5 (the completion beam) the torch cell wins
  (0.5 ms against 1.2: OpenBLAS is slow for matrices of a few rows), so steps
  of more than one row run in torch. Layer 0's input projection is a row
  lookup in a table (embedding @ W_ih + biases) and the gates are reordered to
  (i, f, o, g) so one sigmoid covers three of them.
- bf16 reading was not faster on this CPU (no AMX / AVX512-BF16), so
  everything runs in fp32, and the fast paths agree with ``CharLSTM.forward``
  to float rounding (tests/server/test_runtime.py: log-probabilities within 1e-4).

On CUDA every step runs as torch ops on the device and logits come back to the
CPU. States are ``(h, c)`` torch tensors of shape (layers, batch, hidden) and
are never modified in place, so a snapshot can be shared by the cache and a
decoder. Logits are NumPy arrays (batch, vocab) on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from charcode.training.model import CharLSTM
from charcode.training.symbols import BOUNDARY

State = tuple[torch.Tensor, torch.Tensor]
# Reads up to this many bytes go step by step: nn.LSTM's fixed cost per call is worth
# 10 to 50 steps on this CPU (a keystroke usually reads one byte).
STEP_READ_MAX = 8


def single_threaded_blas() -> bool:
    """Make NumPy's OpenBLAS use one thread, even when NumPy is already loaded.

    Its worker threads spin-wait between the small products of a step: with the
    default thread count a 2x256 step costs ten times the CPU and twice the time.
    ``OPENBLAS_NUM_THREADS=1`` only works before NumPy loads (``charcode serve``
    imports it earlier), so this calls OpenBLAS's own setter. True if it found one.
    """
    import ctypes
    from pathlib import Path

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


def _reorder_gates(w: torch.Tensor, hidden: int) -> torch.Tensor:
    """PyTorch's gate order (i, f, g, o) -> (i, f, o, g) along dim 0."""
    i, f, g, o = w.split(hidden, dim=0)
    return torch.cat([i, f, o, g], dim=0)


class Runtime:
    """Inference on one model; used from one thread at a time (the inference worker)."""

    def __init__(self, model: CharLSTM, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device, torch.float32).eval()
        cfg = model.config
        self.layers, self.hidden, self.vocab = cfg.layers, cfg.hidden, cfg.vocab
        lstm, H = self.model.lstm, cfg.hidden
        with torch.no_grad():
            w = [
                (
                    _reorder_gates(getattr(lstm, f"weight_ih_l{k}"), H),
                    _reorder_gates(getattr(lstm, f"weight_hh_l{k}"), H),
                    _reorder_gates(
                        getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}"), H
                    ),
                )
                for k in range(cfg.layers)
            ]
            # Layer 0 reads a symbol: its input projection is one row of this table.
            self.table0 = (self.model.embed.weight @ w[0][0].T + w[0][2]).contiguous()
            self.w_hh0_t = w[0][1].T.contiguous()
            # Layers above read [x, h]: one product with the stacked weights.
            self.w_cat_t = [None] + [
                torch.cat([wi, wh], dim=1).T.contiguous() for wi, wh, _ in w[1:]
            ]
            self.bias = [b.contiguous() for _, _, b in w]
            self.head_w_t = self.model.head.weight.T.contiguous()
            self.head_b = self.model.head.bias.detach().clone()
            zeros = self.model.initial_state(1, device=self.device)
            _, start = self.model(torch.tensor([[BOUNDARY]], device=self.device), zeros)
            self.start: State = (start[0].detach(), start[1].detach())
        self._cell = _NumpyCell(self) if self.device.type == "cpu" else None
        if self._cell is not None:
            single_threaded_blas()  # every user of the cell: server, eval, charcode hallucinate

    @property
    def state_bytes(self) -> int:
        """Bytes of one batch-1 state."""
        return 2 * self.layers * self.hidden * 4

    @torch.inference_mode()
    def read(self, state: State, data: bytes) -> State:
        """The state after reading data: a few bytes by steps, more in bulk (nn.LSTM, oneDNN on)."""
        if not data:
            return state
        if len(data) <= STEP_READ_MAX and self._cell is not None:
            return self._cell.read(data, state)
        x = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(self.device, torch.long)
        with _mkldnn(True):
            _, (h, c) = self.model.lstm(self.model.embed(x.unsqueeze(0)), state)
        return h, c

    @torch.inference_mode()
    def logits(self, state: State) -> np.ndarray:
        """Next-symbol logits (batch, vocab) from a state's top layer."""
        if self._cell is not None:
            return self._cell.head(state[0][-1].numpy())
        return torch.addmm(self.head_b, state[0][-1], self.head_w_t).cpu().numpy()

    @torch.inference_mode()
    def step(self, symbols: Sequence[int], state: State) -> tuple[np.ndarray, State]:
        """Read one symbol per batch row: logits (batch, vocab) after it, and the new state."""
        if self._cell is not None and len(symbols) == 1:
            return self._cell.step(symbols, state)
        return self._torch_step(symbols, state)

    def _torch_step(self, symbols: Sequence[int], state: State) -> tuple[np.ndarray, State]:
        H = self.hidden
        h0, c0 = state
        sym = torch.tensor(list(symbols), dtype=torch.long, device=self.device)
        hs, cs = [], []
        x = None
        for k in range(self.layers):
            if k == 0:
                gates = torch.addmm(self.table0.index_select(0, sym), h0[0], self.w_hh0_t)
            else:
                gates = torch.addmm(self.bias[k], torch.cat([x, h0[k]], dim=1), self.w_cat_t[k])
            sig = gates[:, : 3 * H].sigmoid()
            c = torch.addcmul(sig[:, H : 2 * H] * c0[k], sig[:, :H], gates[:, 3 * H :].tanh())
            x = sig[:, 2 * H :] * c.tanh()
            hs.append(x)
            cs.append(c)
        logits = torch.addmm(self.head_b, x, self.head_w_t)
        return logits.cpu().numpy(), (torch.stack(hs), torch.stack(cs))

    def select(self, state: State, rows: Sequence[int]) -> State:
        """The states of the given batch rows (a row may repeat)."""
        idx = torch.tensor(list(rows), dtype=torch.long, device=self.device)
        return state[0].index_select(1, idx), state[1].index_select(1, idx)


class _NumpyCell:
    """The LSTM step in NumPy on views of the runtime's (CPU) weights."""

    def __init__(self, rt: Runtime):
        self.H, self.L = rt.hidden, rt.layers
        self.table0 = rt.table0.numpy()
        self.w_hh0 = rt.w_hh0_t.numpy()
        self.w_cat = [None] + [w.numpy() for w in rt.w_cat_t[1:]]
        self.bias = [b.numpy() for b in rt.bias]
        self.head_w = rt.head_w_t.numpy()
        self.head_b = rt.head_b.numpy()

    def head(self, h: np.ndarray) -> np.ndarray:
        return h @ self.head_w + self.head_b

    def read(self, data: bytes, state: State) -> State:
        for b in data:
            state = self._advance([b], state)[1]
        return state

    def step(self, symbols: Sequence[int], state: State) -> tuple[np.ndarray, State]:
        x, new = self._advance(symbols, state)
        return self.head(x), new

    def _advance(self, symbols: Sequence[int], state: State) -> tuple[np.ndarray, State]:
        """The top layer's output and the new state after one symbol per row."""
        H = self.H
        h0, c0 = state[0].numpy(), state[1].numpy()
        hs, cs = np.empty_like(h0), np.empty_like(c0)
        x = None
        for k in range(self.L):
            if k == 0:
                g = self.table0[symbols] + h0[0] @ self.w_hh0
            else:
                g = np.concatenate([x, h0[k]], axis=1) @ self.w_cat[k]
                g += self.bias[k]
            s = g[:, : 3 * H]
            s *= 0.5
            np.tanh(s, out=s)
            s *= 0.5
            s += 0.5  # sigmoid(v) == tanh(v / 2) / 2 + 1/2, with no overflow
            c, h = cs[k], hs[k]
            np.multiply(s[:, H : 2 * H], c0[k], out=c)
            c += s[:, :H] * np.tanh(g[:, 3 * H :])
            np.tanh(c, out=h)
            h *= s[:, 2 * H :]
            x = h
        return x, (torch.from_numpy(hs), torch.from_numpy(cs))


class _mkldnn:
    """Switch oneDNN on or off for a block (a process-wide flag; only the worker runs models)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.saved = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = self.enabled

    def __exit__(self, *exc):
        torch.backends.mkldnn.enabled = self.saved
