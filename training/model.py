"""The character-level model: byte embedding, multi-layer LSTM, linear head (torch).

Its shape (ModelConfig, SIZES, parameter_count) lives in model_config, which needs no torch."""

from __future__ import annotations

import torch
from torch import nn

from .model_config import SIZES, ModelConfig, parameter_count

__all__ = ["SIZES", "CharLSTM", "ModelConfig", "State", "detach_state", "parameter_count"]

State = tuple[torch.Tensor, torch.Tensor]


class CharLSTM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab, config.embedding)
        self.lstm = nn.LSTM(
            config.embedding,
            config.hidden,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(config.hidden, config.vocab)

    def forward(
        self, symbols: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """symbols: (batch, time) int64 -> logits (batch, time, vocab), new state."""
        out, state = self.lstm(self.embed(symbols), state)
        return self.head(out), state

    def initial_state(self, batch: int, device=None, dtype=torch.float32) -> State:
        shape = (self.config.layers, batch, self.config.hidden)
        z = torch.zeros(shape, device=device, dtype=dtype)
        return z, z.clone()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def detach_state(state: State | None) -> State | None:
    if state is None:
        return None
    return state[0].detach(), state[1].detach()
