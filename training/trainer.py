"""The training loop: stateful truncated BPTT, AdamW, clipping, warmup then cosine decay,
periodic validation, best/last checkpoints, exact resume, DDP across processes."""

from __future__ import annotations

import functools
import json
import math
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .batches import StreamBatcher
from .checkpoint import (
    load_checkpoint,
    load_resume_state,
    save_checkpoint,
    save_resume_state,
    state_path,
)
from .cpu_parallel import world_size
from .evaluate import cross_entropy_sum
from .model import CharLSTM, ModelConfig, detach_state
from .symbols import BOUNDARY
from .train_config import PRECISIONS, TrainConfig, TrainingError

__all__ = ["PRECISIONS", "Progress", "TrainConfig", "Trainer", "TrainingError"]


@dataclass
class Progress:
    step: int
    total_steps: int | None
    percent: float
    chars_per_sec: float
    loss: float
    val_bits_per_char: float | None
    eta_s: float | None


def last_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".safetensors") + ".last.safetensors")


def metrics_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".safetensors") + ".metrics.jsonl")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError(
            "--device cuda was asked for but torch sees no CUDA device; use --device cpu"
        )
    if name not in ("cpu", "cuda"):
        raise TrainingError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where bf16
    autocast trains faster than fp32. Elsewhere oneDNN emulates it, and it is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
        supported = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (OSError, AttributeError, RuntimeError):
        return False
    return bool(supported) and re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


@functools.cache
def cpu_runs_bf16_lstm() -> bool:
    """Whether torch can train the LSTM under bf16 autocast on this CPU, tried on a tiny one.

    oneDNN's bf16 LSTM needs AVX512 (native with AVX512-BF16 or AMX, emulated on plain
    AVX512); on an AVX2-only CPU torch still picks it and fails to create the primitive.
    The other way round (oneDNN off, so the LSTM runs as bf16 matrix products) works
    there but measured 30x slower than fp32 (354 against 10,493 characters/s, small
    model, one thread, AMD EPYC with AVX2), so charcode does not offer it."""
    try:
        lstm = torch.nn.LSTM(4, 4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(torch.zeros(2, 1, 4, requires_grad=True))
        out.float().sum().backward()
    except RuntimeError:
        return False
    return True


BF16_CPU_ERROR = (
    "--precision bf16 cannot run on this CPU: its LSTM library (oneDNN) has bf16 only on "
    "CPUs with AVX512; use --precision fp32 (or auto, which picks fp32 here)"
)


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None: fp32). auto: bf16 on CUDA and on CPUs with native bf16,
    measured faster there (bench/train_throughput.py) at the same loss; fp32 elsewhere.
    bf16 on a CPU that cannot run a bf16 LSTM is a TrainingError (one line, before training)."""
    if name not in PRECISIONS:
        raise TrainingError(f"unknown precision {name!r}; use {', '.join(PRECISIONS)}")
    if name == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16
    if name == "bf16":
        if not cpu_runs_bf16_lstm():
            raise TrainingError(BF16_CPU_ERROR)
        return torch.bfloat16
    return torch.bfloat16 if cpu_has_native_bf16() and cpu_runs_bf16_lstm() else None


class Distributed:
    """Rank and world size from torchrun's environment; a no-op for one process."""

    def __init__(self, device: torch.device):
        self.world = world_size()
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def max(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return float(t)

    def sum(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t)

    def gather_cat(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        torch.distributed.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    def gather_list(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        if not self.enabled:
            return [tensor]
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        torch.distributed.all_gather(parts, tensor)
        return parts

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def lr_factor(step: int, fraction: float, warmup: int) -> float:
    """Linear warmup over `warmup` steps, then cosine decay to 10% as the budget runs out."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction)))


def _rng_state() -> dict:
    # Stored as tensors so the state file loads with torch.load(weights_only=True).
    state = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(list(json.dumps(random.getstate()).encode()), dtype=torch.uint8),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    py = json.loads(bytes(state["python"].tolist()).decode())
    random.setstate((py[0], tuple(py[1]), py[2]))


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        train_data: np.ndarray,
        val_data: np.ndarray,
        corpus_summary: dict,
        on_progress: Callable[[Progress], None] | None = None,
        log: Callable[[str], None] = print,
        dist: Distributed | None = None,
    ):
        if config.steps is None and config.minutes is None:
            raise TrainingError("give a budget: --steps N or --minutes M")
        self.cfg = config
        self.device = pick_device(config.device)
        self.dist = dist or Distributed(self.device)
        self.on_progress = on_progress
        self.log = log if self.dist.is_main else (lambda _msg: None)
        if len(val_data) < 2:
            # One file cannot be split; validate on training text and say so in the metadata.
            self.log(
                "note: no validation files (the corpus has one file); validating on training text"
            )
            val_data = train_data
            corpus_summary = {**corpus_summary, "validation": "training text"}
        self.corpus_summary = corpus_summary
        self.val_data = val_data
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)
        if self.device.type == "cuda":
            torch.cuda.set_device(
                self.dist.local_rank if self.dist.enabled else torch.cuda.current_device()
            )
            self.device = torch.device("cuda", torch.cuda.current_device())
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        try:
            self.batcher = StreamBatcher(
                train_data, config.batch_size, config.seq_len, self.dist.rank, self.dist.world
            )
        except ValueError as e:
            raise TrainingError(str(e)) from None
        self.model = self._build_model()
        # Same initial weights everywhere (DDP also broadcasts them); different dropout masks per rank.
        torch.manual_seed(config.seed + 1000 * self.dist.rank)
        self.ddp = (
            torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if self.dist.enabled
            else self.model
        )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            weight_decay=config.weight_decay,
            betas=(0.9, 0.99),
            fused=self.device.type == "cuda",
        )
        self.autocast_dtype = pick_precision(config.precision, self.device)
        self.step = 0
        self.elapsed = 0.0  # training seconds, carried across resumes
        self.chars_seen = 0
        self.best_val = math.inf
        self.last_val: float | None = None
        self.state = None
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if config.resume:
            self._resume()

    # -- setup -------------------------------------------------------------

    def _build_model(self) -> CharLSTM:
        cfg = self.cfg
        if cfg.init_from:
            ckpt = load_checkpoint(cfg.init_from)  # CheckpointError reaches the CLI as one line
            base = ckpt.model.config
            model = CharLSTM(ModelConfig(base.layers, base.hidden, base.embedding, cfg.dropout))
            model.load_state_dict(ckpt.model.state_dict())
            self.init_meta = ckpt.meta
            self.log(f"fine-tuning {cfg.init_from} ({base.layers}x{base.hidden})")
        else:
            try:
                mc = ModelConfig.named(cfg.size, cfg.dropout, cfg.layers, cfg.hidden)
            except ValueError as e:
                raise TrainingError(str(e)) from None
            model = CharLSTM(mc)
            self.init_meta = None
        return model.to(self.device)

    def _resume(self) -> None:
        path = last_path(self.cfg.output)
        if not path.exists():
            raise TrainingError(
                f"nothing to resume: {path} does not exist; train without --resume first"
            )
        ckpt = load_checkpoint(path)
        if (
            ckpt.model.config.layers != self.model.config.layers
            or ckpt.model.config.hidden != self.model.config.hidden
        ):
            raise TrainingError(
                f"{path} is a {ckpt.model.config.layers}x{ckpt.model.config.hidden} model; resume with the same size"
            )
        self.model.load_state_dict(ckpt.model.state_dict())
        st = load_resume_state(state_path(path))
        if self.cfg.precision == "auto" and st.get("precision") in PRECISIONS:
            # continue exactly: the run's own precision, even on another machine, unless
            # this machine cannot run it (a bf16 run resumed on an AVX2-only CPU)
            try:
                self.autocast_dtype = pick_precision(st["precision"], self.device)
            except TrainingError:
                self.autocast_dtype = None
                self.log(
                    f"note: this run trained in {st['precision']}, which this CPU cannot run; "
                    "continuing in fp32"
                )
        self.optimizer.load_state_dict(st["optimizer"])
        self.step = int(st["step"])
        self.elapsed = float(st["elapsed"])
        self.chars_seen = int(st["chars_seen"])
        self.best_val = float(st["best_val"])
        self.started = st.get("started", self.started)
        lstm = st.get("lstm_state")
        if lstm is not None and lstm[0].shape[1] == self.cfg.batch_size:
            # The saved state covers every stream of the global batch; take this rank's share.
            per = self.cfg.batch_size // self.dist.world
            rows = slice(self.dist.rank * per, (self.dist.rank + 1) * per)
            self.state = tuple(t[:, rows].contiguous().to(self.device) for t in lstm)
        _set_rng_state(st["rng"])
        per_rank = st.get("torch_rng_per_rank")
        if per_rank is not None and len(per_rank) == self.dist.world:
            torch.set_rng_state(per_rank[self.dist.rank])
        self.log(f"resumed at step {self.step:,} ({self.chars_seen:,} characters seen)")

    @property
    def precision_name(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    # -- budget ------------------------------------------------------------

    def fraction_done(self, elapsed: float) -> float:
        parts = []
        if self.cfg.steps:
            parts.append(self.step / self.cfg.steps)
        if self.cfg.minutes:
            parts.append(elapsed / (self.cfg.minutes * 60))
        return self.dist.max(max(parts))

    # -- checkpoints -------------------------------------------------------

    def metadata(self, val: float | None, finished: bool) -> dict:
        s = self.corpus_summary
        meta = {
            "name": self.cfg.output.name.removesuffix(".safetensors"),
            "language": self.cfg.language,
            "extensions": list(self.cfg.extensions),
            "model": {**self.model.config.to_dict(), "parameters": self.model.num_parameters()},
            "training": {
                "steps": self.step,
                "chars_seen": self.chars_seen,
                "val_bits_per_char": None if val is None or math.isinf(val) else round(val, 4),
                "corpus": {
                    k: s.get(k)
                    for k in (
                        "files",
                        "bytes",
                        "sha256",
                        "train_files",
                        "val_files",
                        "roots",
                        "split",
                    )
                },
                "started": self.started,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")
                if finished
                else None,
                "device": torch.cuda.get_device_name(self.device)
                if self.device.type == "cuda"
                else "cpu",
                "precision": self.precision_name,
                "processes": self.dist.world,
                "seconds": round(self.elapsed, 1),
                "batch_size": self.cfg.batch_size,
                "seq_len": self.cfg.seq_len,
                "lr": self.cfg.lr,
                "seed": self.cfg.seed,
            },
        }
        if self.init_meta is not None:
            meta["training"]["init_from"] = {
                "path": str(self.cfg.init_from),
                "name": self.init_meta.get("name"),
                "training": self.init_meta.get("training"),
            }
        return meta

    def save(self, val: float | None, finished: bool = False) -> None:
        # Every rank takes part in gathering its streams' LSTM state and RNG; rank 0 writes.
        lstm_state = None
        if self.state is not None:
            lstm_state = tuple(self.dist.gather_cat(t, dim=1).cpu() for t in self.state)
        rng_per_rank = self.dist.gather_list(torch.get_rng_state())
        if not self.dist.is_main:
            return
        meta = self.metadata(val, finished)
        last = last_path(self.cfg.output)
        save_checkpoint(last, self.model, meta)
        state = {
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "chars_seen": self.chars_seen,
            "best_val": self.best_val,
            "started": self.started,
            "rng": _rng_state(),
            "precision": self.precision_name,
            "lstm_state": lstm_state,
            "torch_rng_per_rank": rng_per_rank,
        }
        save_resume_state(state_path(last), state)
        if val is not None and val <= self.best_val:
            save_checkpoint(self.cfg.output, self.model, meta)

    def write_metrics(self, record: dict) -> None:
        if self.dist.is_main:
            with open(metrics_path(self.cfg.output), "a") as f:
                f.write(json.dumps(record) + "\n")

    # -- loop --------------------------------------------------------------

    def validate(self) -> float:
        """Validation bits/char; the processes split the streams and add up nats and characters."""
        nats, chars = cross_entropy_sum(
            self.model,
            self.val_data,
            self.device,
            max_chars=self.cfg.val_chars,
            autocast_dtype=self.autocast_dtype,
            part=(self.dist.rank, self.dist.world),
        )
        nats, chars = self.dist.sum(nats), self.dist.sum(chars)
        val = nats / max(1, chars) / math.log(2)
        self.last_val = val
        return val

    def train_step(self) -> float:
        window = self.batcher.window(self.step)
        if window.reset:
            self.state = None
        x, y = (
            window.x.to(self.device, non_blocking=True),
            window.y.to(self.device, non_blocking=True),
        )
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            logits, state = self.ddp(x, self.state)
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=BOUNDARY
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.optimizer.step()
        self.state = detach_state(state)
        return loss.detach()

    def run(self) -> dict:
        cfg = self.cfg
        cfg.output.parent.mkdir(parents=True, exist_ok=True)
        warmup = min(cfg.warmup, max(1, (cfg.steps or 10**9) // 20))
        eval_every_steps = cfg.eval_every or (max(1, cfg.steps // 10) if cfg.steps else 0)
        eval_every_s = (cfg.minutes * 60 / 8) if (cfg.minutes and not cfg.eval_every) else None
        self.model.train()
        t_start = time.perf_counter() - self.elapsed
        last_eval_t = time.perf_counter()
        rate_t, rate_chars = time.perf_counter(), 0
        loss_sum, loss_n = None, 0
        rate = 0.0
        global_chars_per_step = self.batcher.chars_per_step * self.dist.world
        while True:
            self.elapsed = time.perf_counter() - t_start
            fraction = self.fraction_done(self.elapsed)
            if fraction >= 1.0:
                break
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(self.step, fraction, warmup)
            loss = self.train_step()
            loss_sum = loss if loss_sum is None else loss_sum + loss
            loss_n += 1
            self.step += 1
            self.chars_seen += global_chars_per_step
            rate_chars += global_chars_per_step
            now = time.perf_counter()
            due = (eval_every_steps and self.step % eval_every_steps == 0) or (
                eval_every_s is not None and now - last_eval_t >= eval_every_s
            )
            if self.dist.enabled:  # every rank must take part, or the collective hangs
                due = self.dist.max(1.0 if due else 0.0) > 0
            if now - rate_t >= 1.0 or due:
                rate = rate_chars / (now - rate_t)
                rate_t, rate_chars = now, 0
                mean_loss = float(loss_sum) / loss_n / math.log(2)
                loss_sum, loss_n = None, 0
                self._report(fraction, rate, mean_loss)
            if due:
                self._evaluate_and_save(rate)
                last_eval_t = time.perf_counter()
        self.elapsed = time.perf_counter() - t_start
        val = self._evaluate_and_save(rate, finished=True)
        self.dist.barrier()
        return {
            "path": str(cfg.output),
            "val_bits_per_char": round(val, 4),
            "steps": self.step,
            "chars_seen": self.chars_seen,
        }

    def _evaluate_and_save(self, rate: float, finished: bool = False) -> float:
        val = self.validate()
        improved = val <= self.best_val
        if improved:
            self.best_val = val
        self.save(val, finished=finished)
        self.write_metrics(
            {
                "step": self.step,
                "chars_seen": self.chars_seen,
                "seconds": round(self.elapsed, 1),
                "val_bits_per_char": round(val, 4),
                "chars_per_sec": round(rate),
            }
        )
        self.dist.barrier()
        return self.best_val if finished else val

    def _report(self, fraction: float, rate: float, loss_bits: float) -> None:
        self.write_metrics(
            {
                "step": self.step,
                "chars_seen": self.chars_seen,
                "seconds": round(self.elapsed, 1),
                "train_bits_per_char": round(loss_bits, 4),
                "chars_per_sec": round(rate),
            }
        )
        if self.on_progress is None or not self.dist.is_main:
            return
        eta = self.elapsed * (1 - fraction) / fraction if fraction > 0 else None
        self.on_progress(
            Progress(
                step=self.step,
                total_steps=self.cfg.steps,
                percent=round(100 * min(1.0, fraction), 1),
                chars_per_sec=round(rate),
                loss=round(loss_bits, 4),
                val_bits_per_char=None if self.last_val is None else round(self.last_val, 4),
                eta_s=None if eta is None else round(eta, 1),
            )
        )


def progress_dict(p: Progress) -> dict:
    return asdict(p)
