"""Where models are found, in DESIGN.md's order: explicit path, workspace, user folder, bundled."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .checkpoint import CheckpointError, read_metadata

SOURCES = ("explicit", "workspace", "user", "bundled")


def user_models_dir() -> Path:
    env = os.environ.get("CHARCODE_MODELS_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir("charcode")) / "models"


def bundled_models_dir() -> Path:
    return Path(__file__).parent / "models"


def workspace_models_dir(workspace: Path) -> Path:
    return Path(workspace) / ".charcode" / "models"


@dataclass
class ModelEntry:
    language: str
    path: Path
    source: str  # one of SOURCES
    meta: dict | None = None
    error: str | None = None


def search_dirs(
    workspace: Path | None = None, models_dir: Path | None = None
) -> list[tuple[str, Path]]:
    dirs = []
    if workspace is not None:
        dirs.append(("workspace", workspace_models_dir(workspace)))
    dirs.append(("user", Path(models_dir) if models_dir else user_models_dir()))
    dirs.append(("bundled", bundled_models_dir()))
    return dirs


def find_model(
    language: str,
    explicit: Path | None = None,
    workspace: Path | None = None,
    models_dir: Path | None = None,
) -> ModelEntry | None:
    """The first checkpoint for a language, or None. An explicit path wins even if missing."""
    if explicit:
        return ModelEntry(language, Path(explicit).expanduser(), "explicit")
    for source, folder in search_dirs(workspace, models_dir):
        path = folder / f"{language}.safetensors"
        if path.is_file():
            return ModelEntry(language, path, source)
    return None


def list_models(workspace: Path | None = None, models_dir: Path | None = None) -> list[ModelEntry]:
    """Every checkpoint in the search folders, with metadata (or the reason it is unusable)."""
    entries = []
    for source, folder in search_dirs(workspace, models_dir):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.safetensors")):
            if path.name.endswith(".last.safetensors"):
                continue  # a training run's last state, not a model to use
            entry = ModelEntry(path.name.removesuffix(".safetensors"), path, source)
            try:
                entry.meta = read_metadata(path)
            except CheckpointError as e:
                entry.error = str(e)
            entries.append(entry)
    return entries
