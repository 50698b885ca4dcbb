"""A CharLSTM's weights laid out for inference: bulk reading and single (or small-batch) steps.

Measured on the 2-core development CPU (torch 2.13, one thread; see
server/README-lsp.md for the figures and bench/lsp_latency.py):

- Reading text in bulk (prefill) is fastest through ``nn.LSTM`` with oneDNN
  enabled: it projects all inputs at once and runs the recurrence in C++.
- A single step is fastest through a hand-written cell: layer 0's input
  projection is a row lookup in a table (embedding @ W_ih + biases), the gates
  are reordered to (i, f, o, g) so one sigmoid and one tanh cover them, and a
  step is one ``addmm`` per layer plus the head. ``nn.LSTM`` with oneDNN pays
  a primitive setup per call that costs several times the arithmetic at batch 1.
- bf16 reading was not faster on this CPU (no AMX / AVX512-BF16), so
  everything runs in fp32 and the fast paths agree with ``CharLSTM.forward``
  to float rounding (tests/server/test_runtime.py states the tolerance).

States are ``(h, c)`` tensors of shape (layers, batch, hidden) and are never
modified in place, so a snapshot can be shared by the cache and a decoder.
"""

from __future__ import annotations

import torch

from charcode.training.model import CharLSTM
from charcode.training.symbols import BOUNDARY

State = tuple[torch.Tensor, torch.Tensor]


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
        self.layers, self.hidden = cfg.layers, cfg.hidden
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
            self.w_hh_t = [wh.T.contiguous() for _, wh, _ in w]
            self.w_ih_t = [wi.T.contiguous() for wi, _, _ in w]
            self.bias = [b.contiguous() for _, _, b in w]
            self.head_w_t = self.model.head.weight.T.contiguous()
            self.head_b = self.model.head.bias.detach().clone()
            zeros = self.model.initial_state(1, device=self.device)
            _, start = self.model(torch.tensor([[BOUNDARY]], device=self.device), zeros)
            self.start: State = (start[0].detach(), start[1].detach())

    @property
    def state_bytes(self) -> int:
        return 2 * self.layers * self.hidden * 4

    @torch.inference_mode()
    def read(self, state: State, data: bytes) -> State:
        """The state after reading data (bulk path: nn.LSTM with oneDNN on)."""
        if not data:
            return state
        x = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(self.device, torch.long)
        with _mkldnn(True):
            _, (h, c) = self.model.lstm(self.model.embed(x.unsqueeze(0)), state)
        return h, c

    @torch.inference_mode()
    def logits(self, state: State) -> torch.Tensor:
        """Next-symbol logits (batch, vocab) from a state's top layer."""
        return torch.addmm(self.head_b, state[0][-1], self.head_w_t)

    @torch.inference_mode()
    def step(self, symbols: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Read one symbol per batch row: (batch,) int64 -> logits (batch, vocab), new state."""
        H = self.hidden
        h0, c0 = state
        hs, cs = [], []
        x = None
        for k in range(self.layers):
            if k == 0:
                gates = torch.addmm(self.table0.index_select(0, symbols), h0[0], self.w_hh_t[0])
            else:
                gates = torch.addmm(self.bias[k], x, self.w_ih_t[k]).addmm_(h0[k], self.w_hh_t[k])
            sig = gates[:, : 3 * H].sigmoid()
            c = torch.addcmul(sig[:, H : 2 * H] * c0[k], sig[:, :H], gates[:, 3 * H :].tanh())
            x = sig[:, 2 * H :] * c.tanh()
            hs.append(x)
            cs.append(c)
        logits = torch.addmm(self.head_b, x, self.head_w_t)
        return logits, (torch.stack(hs), torch.stack(cs))

    def symbols(self, values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=self.device)


class _mkldnn:
    """Switch oneDNN on or off for a block (a process-wide flag; only the worker runs models)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.saved = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = self.enabled

    def __exit__(self, *exc):
        torch.backends.mkldnn.enabled = self.saved


def stack_states(states: list[State]) -> State:
    return torch.cat([s[0] for s in states], dim=1), torch.cat([s[1] for s in states], dim=1)


def select_states(state: State, rows: torch.Tensor) -> State:
    return state[0].index_select(1, rows), state[1].index_select(1, rows)
