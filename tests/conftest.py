"""Shared fixtures: small repositories of generated code, and tiny trained models."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

# Two cores shared by the test process and the servers it starts: one thread each avoids
# oversubscription, which on this machine slows torch by 10x or more.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _python_function(rng: random.Random, i: int) -> str:
    name = rng.choice(["parse", "load", "count", "merge", "split", "render"]) + f"_{i}"
    arg = rng.choice(["items", "text", "path", "values"])
    body = rng.choice(
        [
            f"    result = []\n    for item in {arg}:\n        if item:\n            result.append(item)\n    return result\n",
            f"    if not {arg}:\n        return None\n    return len({arg})\n",
            f"    total = 0\n    for x in {arg}:\n        total += x\n    return total\n",
        ]
    )
    return f'def {name}({arg}):\n    """Return something about {arg}."""\n{body}\n\n'


def make_python_repo(root: Path, files: int = 12, functions: int = 30, seed: int = 0) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        text = "import os\nimport sys\n\n\n" + "".join(
            _python_function(rng, f * 100 + i) for i in range(functions)
        )
        (root / f"module_{f}.py").write_text(text)
    return root


@pytest.fixture(scope="session")
def python_repo(tmp_path_factory) -> Path:
    return make_python_repo(tmp_path_factory.mktemp("repo") / "project")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_python_model(python_repo, cache_dir, tmp_path_factory) -> Path:
    """A tiny model trained for a few seconds on the generated repository (shared by tests)."""
    from charcode.training.cli import main  # `charcode train` is the training package's command

    out = tmp_path_factory.mktemp("models") / "python.safetensors"
    code = main(
        [
            "train",
            "--language",
            "python",
            "--repo",
            str(python_repo),
            "--size",
            "tiny",
            "--steps",
            "60",
            "--batch-size",
            "8",
            "--seq-len",
            "64",
            "--lr",
            "0.01",
            "--cache-dir",
            str(cache_dir),
            "--output",
            str(out),
            "--eval-every",
            "30",
        ]
    )
    assert code == 0
    return out
