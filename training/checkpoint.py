"""Self-describing checkpoints: one .safetensors file, metadata under the key "charcode".

Loading never unpickles anything. Writes are atomic (temporary file, fsync,
rename), so a crash during a save leaves the previous checkpoint in place.

Reading needs no torch: read_metadata (the header) and load_arrays (the weights as
NumPy arrays, validated) are what inference uses. load_checkpoint (a CharLSTM),
save_checkpoint and the resume state are training's, and import torch when called.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .model_config import ModelConfig, parameter_count, weight_shapes

FORMAT_VERSION = 1
METADATA_KEY = "charcode"
MAX_HEADER_BYTES = 16 * 1024 * 1024


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why and what to do."""


@dataclass
class Checkpoint:
    path: Path
    model: Any  # a model.CharLSTM: torch is imported only by the functions that need it
    meta: dict

    @property
    def language(self) -> str:
        return self.meta.get("language", "")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, fsync it, then rename over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a model is an ordinary file
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, model: Any, meta: dict, dtype: Any = None) -> None:
    """Write a CharLSTM's weights (float32, or the torch dtype given) and meta to path, atomically."""
    import torch
    from safetensors.torch import save

    dtype = dtype or torch.float32

    meta = dict(meta)
    meta["format_version"] = FORMAT_VERSION
    meta["model"] = {**meta.get("model", {}), **model.config.to_dict()}
    raw = model.module if hasattr(model, "module") else model
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in raw.state_dict().items()}
    # Serialise in memory and write with Python's I/O, so a full disk raises OSError (ENOSPC).
    data = save(tensors, metadata={METADATA_KEY: json.dumps(meta)})
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def read_metadata(path: Path) -> dict:
    """The charcode metadata of a checkpoint, read from its header alone."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"{path}: no such checkpoint; check the path or run `charcode models`"
        )
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a .safetensors checkpoint")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path} is empty or truncated; retrain it or restore a copy")
            (n,) = struct.unpack("<Q", head)
            size = path.stat().st_size
            if n <= 0 or n > MAX_HEADER_BYTES or 8 + n > size:
                raise CheckpointError(
                    f"{path} is not a charcode .safetensors checkpoint (bad header; a pickle or truncated file?)"
                )
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path} is not a readable .safetensors checkpoint ({e})") from None
    raw = (header.get("__metadata__") or {}).get(METADATA_KEY) if isinstance(header, dict) else None
    if raw is None:
        raise CheckpointError(
            f"{path} is a safetensors file but not a charcode checkpoint (no charcode metadata)"
        )
    try:
        meta = json.loads(raw)
    except ValueError:
        raise CheckpointError(f"{path}: its charcode metadata is not valid JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"{path}: its charcode metadata lacks the model description")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {meta.get('format_version')}; upgrade charcode to load it"
        )
    return meta


def load_arrays(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and the weights as float32 NumPy arrays, by name; no torch.

    CheckpointError (the message says what to do) for a missing, truncated or damaged file,
    a file that is not a charcode checkpoint, one whose header describes a model the file
    is too small to hold (refused before reading the weights), and tensors that do not
    match the described model or hold non-finite values."""
    from safetensors.numpy import load_file

    path = Path(path)
    meta = read_metadata(path)
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    # A hostile header could describe a huge model: check the file can hold it (fp16 at
    # least) before allocating anything.
    n_params = parameter_count(config)
    if 2 * n_params > path.stat().st_size:
        raise CheckpointError(
            f"{path}: its header describes a {config.layers}x{config.hidden} model "
            f"({n_params:,} parameters) that the file is too small to hold"
        )
    try:
        arrays = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise CheckpointError(
            f"{path} is corrupt or truncated ({e}); retrain it or restore a copy"
        ) from None
    expected = weight_shapes(config)
    if set(arrays) != set(expected):
        raise CheckpointError(
            f"{path}: its tensors do not match a {config.layers}x{config.hidden} charcode model"
        )
    weights = {}
    for name, array in arrays.items():
        if array.shape != expected[name]:
            raise CheckpointError(
                f"{path}: tensor {name} has shape {tuple(array.shape)}, expected {expected[name]}"
            )
        if array.dtype.kind != "f" or not np.isfinite(array).all():
            raise CheckpointError(f"{path}: tensor {name} holds non-finite or non-float values")
        weights[name] = np.ascontiguousarray(array, dtype=np.float32)
    return meta, weights


def load_checkpoint(path: Path, device: Any = "cpu", dtype: Any = None) -> Checkpoint:
    """The checkpoint as a torch CharLSTM (eval mode) on device (a name or torch.device), in
    dtype (a torch dtype, default float32), validated as load_arrays does."""
    import torch

    from .model import CharLSTM

    path = Path(path)
    meta, weights = load_arrays(path)
    model = CharLSTM(ModelConfig.from_dict(meta["model"]))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    model.to(device=device, dtype=dtype or torch.float32).eval()
    return Checkpoint(path=path, model=model, meta=meta)


def state_path(checkpoint_path: Path) -> Path:
    """Where the resume state (optimizer, data position, RNG) of a checkpoint lives."""
    p = Path(checkpoint_path)
    return p.with_name(p.name.removesuffix(".safetensors") + ".state.pt")


def save_resume_state(path: Path, state: dict) -> None:
    import torch

    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_resume_state(path: Path) -> dict:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: no resume state; train without --resume to start over"
        ) from None
    except Exception as e:  # torch raises many kinds for a damaged file
        raise CheckpointError(
            f"{path}: resume state unreadable ({type(e).__name__}); start over without --resume"
        ) from None
