"""A training run's settings and the trainer's error, without torch (the command line
declares its options from these before torch is imported, or where it is missing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")


class TrainingError(Exception):
    """Training cannot start or continue; the message says what to do."""


@dataclass
class TrainConfig:
    language: str
    output: Path
    size: str = "small"
    layers: int | None = None
    hidden: int | None = None
    dropout: float = 0.1
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    warmup: int = 100
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 (autocast); see pick_precision
    eval_every: int = 0  # steps; 0: about ten evaluations over the budget
    val_chars: int = 300_000
    resume: bool = False
    init_from: Path | None = None
    extensions: list[str] = field(default_factory=list)
