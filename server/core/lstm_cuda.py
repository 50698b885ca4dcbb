"""The LSTM on a CUDA GPU through torch, for ``device: cuda`` (torch is imported only here).

The same interface as lstm.NumpyLSTM: bulk reading through ``nn.LSTM``
(cuDNN), steps as torch ops on the device; states are ``(h, c)`` tensors on the
device, logits come back to the CPU as NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from charcode.training.model import CharLSTM, ModelConfig
from charcode.training.symbols import BOUNDARY

State = tuple[torch.Tensor, torch.Tensor]


def _reorder_gates(w: torch.Tensor, hidden: int) -> torch.Tensor:
    """PyTorch's gate order (i, f, g, o) -> (i, f, o, g) along dim 0."""
    i, f, g, o = w.split(hidden, dim=0)
    return torch.cat([i, f, o, g], dim=0)


class CudaLSTM:
    device = "cuda"

    def __init__(self, config: ModelConfig, weights: Mapping[str, np.ndarray]):
        self.config = config
        self.layers, self.hidden, self.vocab = config.layers, config.hidden, config.vocab
        dev = torch.device("cuda")
        self.model = CharLSTM(config)
        self.model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
        self.model = self.model.to(dev, torch.float32).eval()
        lstm, H = self.model.lstm, self.hidden
        with torch.no_grad():
            w = [
                (
                    _reorder_gates(getattr(lstm, f"weight_ih_l{k}"), H),
                    _reorder_gates(getattr(lstm, f"weight_hh_l{k}"), H),
                    _reorder_gates(
                        getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}"), H
                    ),
                )
                for k in range(self.layers)
            ]
            self.table0 = (self.model.embed.weight @ w[0][0].T + w[0][2]).contiguous()
            self.w_hh0_t = w[0][1].T.contiguous()
            self.w_cat_t = [None] + [
                torch.cat([wi, wh], dim=1).T.contiguous() for wi, wh, _ in w[1:]
            ]
            self.bias = [b.contiguous() for _, _, b in w]
            self.head_w_t = self.model.head.weight.T.contiguous()
            self.head_b = self.model.head.bias.detach().clone()
            zeros = self.model.initial_state(1, device=dev)
            _, start = self.model(torch.tensor([[BOUNDARY]], device=dev), zeros)
            self.start: State = (start[0].detach(), start[1].detach())

    @property
    def state_bytes(self) -> int:
        return 2 * self.layers * self.hidden * 4

    @staticmethod
    def nbytes(state: State) -> int:
        return sum(t.numel() * t.element_size() for t in state)

    @torch.inference_mode()
    def read(self, state: State, data: bytes) -> State:
        if not data:
            return state
        x = torch.frombuffer(bytearray(data), dtype=torch.uint8).to("cuda", torch.long)
        _, (h, c) = self.model.lstm(self.model.embed(x.unsqueeze(0)), state)
        return h, c

    @torch.inference_mode()
    def logits(self, state: State) -> np.ndarray:
        return torch.addmm(self.head_b, state[0][-1], self.head_w_t).cpu().numpy()

    @torch.inference_mode()
    def step(self, symbols: Sequence[int], state: State) -> tuple[np.ndarray, State]:
        H = self.hidden
        h0, c0 = state
        sym = torch.tensor(list(symbols), dtype=torch.long, device="cuda")
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
        idx = torch.tensor(list(rows), dtype=torch.long, device="cuda")
        return state[0].index_select(1, idx), state[1].index_select(1, idx)

    @torch.inference_mode()
    def log_probs(self, state: State, symbols: Sequence[int]) -> tuple[np.ndarray, State]:
        x = torch.tensor([list(symbols)], dtype=torch.long, device="cuda")
        out, final = self.model.lstm(self.model.embed(x), state)
        tops = torch.cat([state[0][-1:].transpose(0, 1), out], dim=1)[0]
        lp = torch.log_softmax(self.model.head(tops).float(), dim=-1)
        return lp.cpu().numpy(), final
