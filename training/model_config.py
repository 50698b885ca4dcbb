"""The model's shape, without torch: named sizes, the config dataclass, the weights' names
and shapes, and the parameter count. The torch module (model.CharLSTM) and the NumPy
readers of a checkpoint both follow what is written here."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .symbols import VOCAB_SIZE

# name: (layers, hidden, embedding)
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (1, 32, 16),
    "small": (2, 256, 64),
    "medium": (3, 512, 128),
    "large": (3, 1024, 256),
}


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


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The checkpoint's tensors by name (model.CharLSTM's state_dict), with their shapes."""
    c = config
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (c.vocab, c.embedding)}
    for k in range(c.layers):
        inputs = c.embedding if k == 0 else c.hidden
        shapes[f"lstm.weight_ih_l{k}"] = (4 * c.hidden, inputs)
        shapes[f"lstm.weight_hh_l{k}"] = (4 * c.hidden, c.hidden)
        shapes[f"lstm.bias_ih_l{k}"] = (4 * c.hidden,)
        shapes[f"lstm.bias_hh_l{k}"] = (4 * c.hidden,)
    shapes["head.weight"] = (c.vocab, c.hidden)
    shapes["head.bias"] = (c.vocab,)
    return shapes


def parameter_count(config: ModelConfig) -> int:
    """How many numbers a model of this shape holds (weights and biases)."""
    return sum(math.prod(shape) for shape in weight_shapes(config).values())
