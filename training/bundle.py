"""Copy trained checkpoints into the package's bundled models, as fp16 (half the size).

python -m charcode.training.bundle runs/bundled/python.safetensors [...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .registry import bundled_models_dir


def bundle(src: Path, dest_dir: Path | None = None) -> Path:
    ckpt = load_checkpoint(src)
    dest = (dest_dir or bundled_models_dir()) / f"{ckpt.language}.safetensors"
    meta = {**ckpt.meta, "name": f"{ckpt.language}-default", "weights_dtype": "float16"}
    save_checkpoint(dest, ckpt.model, meta, dtype=torch.float16)
    return dest


def main(argv: list[str]) -> int:
    for src in argv:
        dest = bundle(Path(src))
        print(f"{src} -> {dest} ({dest.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
