"""The character-level model: byte embedding, multi-layer LSTM, linear head."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .symbols import VOCAB_SIZE

# name: (layers, hidden, embedding)
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (1, 32, 16),
    "small": (2, 256, 64),
    "medium": (3, 512, 128),
    "large": (3, 1024, 256),
}

State = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ModelConfig:
    layers: int = 2
    hidden: int = 256
    embedding: int = 64
    dropout: float = 0.0
    vocab: int = VOCAB_SIZE

    @classmethod
    def named(
        cls, size: str, dropout: float = 0.0, layers: int | None = None, hidden: int | None = None
    ) -> ModelConfig:
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
        n_layers, n_hidden, n_embed = SIZES[size]
        return cls(
            layers=layers or n_layers,
            hidden=hidden or n_hidden,
            embedding=n_embed,
            dropout=dropout,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        fields = {k: d[k] for k in ("layers", "hidden", "embedding", "dropout", "vocab") if k in d}
        cfg = cls(**fields)
        if cfg.vocab != VOCAB_SIZE:
            raise ValueError(
                f"vocabulary of {cfg.vocab} symbols; charcode models have {VOCAB_SIZE}"
            )
        if not (1 <= cfg.layers <= 16 and 1 <= cfg.hidden <= 8192 and 1 <= cfg.embedding <= 8192):
            raise ValueError(f"implausible model shape {cfg}")
        return cfg


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
