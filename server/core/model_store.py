"""The model for each language: found in DESIGN.md's order, loaded once, reloaded when it changes.

Loading needs no torch: weights come through safetensors' NumPy loader into
lstm.NumpyLSTM. Only ``device: cuda`` imports torch (lstm_cuda.CudaLSTM);
``auto`` serves from the CPU, where a batch-1 step of these models is faster
than a GPU kernel launch round trip.

``get(language)`` runs on the inference thread. At most every ``rescan``
seconds per language it looks again (registry.find_model and a stat), so a
checkpoint that training writes or replaces is picked up without a restart.
A language without a model, and a checkpoint that cannot be used, are each
reported once through ``notify``; other languages keep working.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from charcode.training.checkpoint import CheckpointError, load_arrays
from charcode.training.languages import LANGUAGES
from charcode.training.model_config import ModelConfig
from charcode.training.registry import find_model, list_models

from .lstm import NumpyLSTM, single_threaded_blas
from .once import Once
from .predictor import Predictor
from .settings import Settings

RESCAN_SECONDS = 2.0
INFO, WARNING, ERROR = "info", "warning", "error"
Notify = Callable[[str, str], None]  # (message, INFO | WARNING | ERROR)


@dataclass
class LoadedModel:
    language: str
    path: Path
    source: str
    meta: dict
    size_bytes: int
    runtime: Predictor


@dataclass
class _Slot:
    checked: float = -1e9
    key: tuple | None = None  # (path, mtime_ns, size) of what was loaded or rejected
    model: LoadedModel | None = None
    error: str | None = None


@dataclass
class Where:
    """Where to look: the settings and the first workspace folder."""

    settings: Settings = field(default_factory=Settings)
    workspace: Path | None = None

    def explicit(self, language: str) -> Path | None:
        path = self.settings.models.get(language)
        if not path:
            return None
        p = Path(path).expanduser()
        if not p.is_absolute() and self.workspace is not None:
            p = self.workspace / p
        return p

    @property
    def models_dir(self) -> Path | None:
        return Path(self.settings.models_dir).expanduser() if self.settings.models_dir else None


def inference_device(setting: str, notify: Notify | None = None) -> str:
    """Where models run: "cuda" only when asked for and usable (torch with CUDA), else "cpu".

    Unlike training's device choice, ``auto`` means the CPU: serving never loads torch
    unless told to."""
    if setting != "cuda":
        return "cpu"
    try:
        import torch

        usable = torch.cuda.is_available()
    except ImportError:
        usable = False
    if not usable and notify:
        notify(
            "charcode.device is 'cuda' but no CUDA device (or no torch with CUDA) is available; "
            "using the CPU",
            WARNING,
        )
    return "cuda" if usable else "cpu"


def load_runtime(path: Path, device: str = "cpu") -> tuple[dict, Predictor]:
    """A checkpoint's metadata, and its model ready for inference on the device ("cpu" or
    "cuda"); CheckpointError (saying what to do) for a file that cannot be used."""
    meta, weights = load_arrays(path)
    config = ModelConfig.from_dict(meta["model"])
    if device == "cuda":
        from .lstm_cuda import CudaLSTM

        return meta, CudaLSTM(config, weights)
    # OpenBLAS's worker threads spin between the small products of a step: one thread
    # is ten times less CPU per step (every user: server, eval, charcode hallucinate).
    single_threaded_blas()
    return meta, NumpyLSTM(config, weights)


class ModelStore:
    def __init__(self, notify: Notify, rescan: float = RESCAN_SECONDS):
        self.notify = notify
        self.rescan = rescan
        self.where = Where()
        self.device = "cpu"
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._told = Once()

    def configure(self, where: Where) -> None:
        """New settings or workspace: look again for every language on next use."""
        device = inference_device(where.settings.device, self.notify)
        with self._lock:
            self.where = where
            if device != self.device:
                self._slots.clear()
            self.device = device
            for slot in self._slots.values():
                slot.checked = -1e9

    def refresh(self, language: str) -> None:
        """Look again for this language's model on next use (after training wrote one)."""
        with self._lock:
            if language in self._slots:
                self._slots[language].checked = -1e9

    def loaded(self) -> dict[str, LoadedModel]:
        with self._lock:
            return {lang: s.model for lang, s in self._slots.items() if s.model is not None}

    def get(self, language: str, quiet: bool = False) -> LoadedModel | None:
        """The usable model for a language, or None (reported once unless quiet). Inference thread."""
        with self._lock:
            slot = self._slots.setdefault(language, _Slot())
            where, device = self.where, self.device
        now = time.monotonic()
        if now - slot.checked < self.rescan:
            return slot.model
        slot.checked = now
        entry = find_model(
            language,
            explicit=where.explicit(language),
            workspace=where.workspace,
            models_dir=where.models_dir,
        )
        if entry is None:
            slot.key, slot.model, slot.error = None, None, f"no model for language {language!r}"
            if not quiet:
                self._tell_once(("missing", language), self._missing_message(language), INFO)
            return None
        try:
            st = entry.path.stat()
            key = (str(entry.path), st.st_mtime_ns, st.st_size)
        except OSError:
            key = (str(entry.path), 0, 0)
        if key == slot.key:
            return slot.model
        slot.key = key
        try:
            if key[2] == 0 and not entry.path.is_file():
                raise CheckpointError(
                    f"{entry.path}: no such checkpoint (from the charcode.models setting)"
                )
            meta, runtime = load_runtime(entry.path, device)
        except CheckpointError as e:
            return self._reject(slot, key, language, str(e))
        except Exception as e:  # a damaged file can make safetensors or NumPy fail in many ways
            return self._reject(slot, key, language, f"{entry.path}: {type(e).__name__}: {e}")
        slot.model = LoadedModel(language, entry.path, entry.source, meta, key[2], runtime)
        slot.error = None
        return slot.model

    def _reject(self, slot: _Slot, key: tuple, language: str, error: str) -> None:
        slot.model, slot.error = None, error
        self._tell_once(
            ("error", key),
            f"charcode: cannot use the {language} model: {error}. Other languages are unaffected.",
            ERROR,
        )
        return None

    def _missing_message(self, language: str) -> str:
        hint = (
            f"train one with `charcode train --language {language} --repo PATH --minutes 10` "
            f"or the charcode.train command"
            if language in LANGUAGES
            else "charcode has no language table entry for it"
        )
        return f"charcode: no model for {language!r} files, so no completions for them; {hint}."

    def _tell_once(self, key, message: str, kind: str) -> None:
        if self._told.first(key):
            self.notify(message, kind)

    def describe(self, language: str) -> dict:
        """charcode.modelInfo's entry for a language (loads it if needed). Inference thread."""
        model = self.get(language, quiet=True)
        if model is None:
            with self._lock:
                error = self._slots[language].error
            return {"error": error or f"no model for language {language!r}"}
        training = model.meta.get("training") or {}
        lang = LANGUAGES.get(language)
        return {
            "name": lang.name if lang else language,
            "path": str(model.path),
            "source": model.source,
            "layers": model.runtime.layers,
            "hidden": model.runtime.hidden,
            "val_bits_per_char": training.get("val_bits_per_char"),
            "corpus": training.get("corpus"),
            "size_bytes": model.size_bytes,
        }

    def languages_with_checkpoints(self) -> list[str]:
        """Languages that have a checkpoint in a search folder or in the settings."""
        where = self.where
        # The trainer's "<language>.last.safetensors" files hold no language of their own.
        found = {
            e.language
            for e in list_models(where.workspace, where.models_dir)
            if "." not in e.language
        }
        return sorted(found | set(where.settings.models))
