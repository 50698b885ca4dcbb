"""Fixtures for the language server tests (helpers live in lsp_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_helpers import tiny_model, write_checkpoint


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A tiny Python model trained for 150 steps (built once per session)."""
    path = tmp_path_factory.mktemp("ckpt") / "python.safetensors"
    return write_checkpoint(path, tiny_model(seed=0, steps=150))
