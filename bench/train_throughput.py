"""Training throughput in characters/s: charcode's trainer against two baselines of the same size.

- naive: an LSTMCell stack stepped in a Python loop over time (how popular PyTorch char-rnn ports train)
- plain: a straightforward fp32 nn.LSTM training loop (one process, default threads),
  and the same loop under bf16 autocast (not on a CPU without AVX512, where torch's bf16
  LSTM cannot run: printed as n/a)
- charcode: the real `charcode train` command on the installed standard library, its own
  device choices (on CPU: one single-threaded process per core, bf16 autocast where the CPU
  has native bf16 (AVX512-BF16, AMX), else fp32; on CUDA: cuDNN, bf16, fused AdamW)

All use the same batch and sequence length, measured in this one run; ratios are printed.
On CUDA it also prints model FLOP utilisation against the device's bf16 dense peak.

On CPU it also measures a ceiling for data-parallel processes: one single-threaded
plain loop per core, each on its share of the batch, in the trainer's precision
(bf16 autocast on a CPU with native bf16, else fp32), all at once and exchanging
nothing (no gradient all-reduce, no synchronisation). A trainer whose processes
must agree on the weights cannot beat it.

A shared machine's speed drifts by tens of percent from minute to minute, so every
measurement is repeated --rounds times, interleaved, and the medians are printed.

    python bench/train_throughput.py [--sizes small medium] [--seconds 20] [--rounds 3] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from charcode.training.model import SIZES, CharLSTM, ModelConfig
from charcode.training.symbols import VOCAB_SIZE
from charcode.training.trainer import cpu_runs_bf16_lstm, pick_precision

BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}


def flops_per_char(cfg: ModelConfig) -> float:
    """Forward + backward matrix FLOPs per character (2 per multiply-add, backward = 2x forward)."""
    lstm = 0
    for layer in range(cfg.layers):
        inp = cfg.embedding if layer == 0 else cfg.hidden
        lstm += 4 * cfg.hidden * (inp + cfg.hidden)
    head = cfg.hidden * VOCAB_SIZE
    return 3 * 2 * (lstm + head)


class NaiveCharRNN(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(VOCAB_SIZE, cfg.embedding)
        sizes = [cfg.embedding] + [cfg.hidden] * cfg.layers
        self.cells = nn.ModuleList(nn.LSTMCell(sizes[i], cfg.hidden) for i in range(cfg.layers))
        self.head = nn.Linear(cfg.hidden, VOCAB_SIZE)

    def forward(self, x):
        B, T = x.shape
        states = [None] * len(self.cells)
        outs = []
        e = self.embed(x)
        for t in range(T):
            h = e[:, t]
            for i, cell in enumerate(self.cells):
                states[i] = cell(h, states[i])
                h = states[i][0]
            outs.append(self.head(h))
        return torch.stack(outs, 1)


def loop_rate(
    model: nn.Module, batch: int, seq_len: int, seconds: float, device, bf16: bool = False
) -> float:
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (batch, seq_len), device=device)
    y = torch.randint(0, 256, (batch, seq_len), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm up
    if device.type == "cuda":
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
        if device.type == "cuda" and n % 10 == 0:
            torch.cuda.synchronize()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n * batch * seq_len / (time.perf_counter() - t0)


def trainer_rate(
    size: str, batch: int, seq_len: int, seconds: float, device: str, repo: Path
) -> float:
    """Run the real CLI for `seconds` and read its steady-state characters/s from the metrics."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.safetensors"
        cmd = [
            sys.executable, "-m", "charcode.training", "train", "--language", "python", "--repo", str(repo),
            "--size", size, "--batch-size", str(batch), "--seq-len", str(seq_len), "--device", device,
            "--minutes", str(seconds / 60), "--eval-every", "1000000", "--val-chars", "20000",
            "--output", str(out), "--progress-json",
        ]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        records = [json.loads(x) for x in out.with_name("m.metrics.jsonl").read_text().splitlines()]
        rates = [r["chars_per_sec"] for r in records if "train_bits_per_char" in r]
        steady = rates[len(rates) // 3 :] or rates  # skip the start-up
        return sum(steady) / len(steady)


def ceiling_rate(size: str, batch: int, seq_len: int, seconds: float) -> float:
    """Characters/s of one single-threaded plain loop per core, all at once, exchanging nothing."""
    procs = max(1, min(os.cpu_count() or 1, batch))
    cmd = [
        sys.executable,
        __file__,
        "--_worker",
        size,
        str(batch // procs),
        str(seq_len),
        str(seconds),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(procs)
    ]
    return sum(float(w.communicate()[0].split()[-1]) for w in workers)


def _worker(size: str, batch: str, seq_len: str, seconds: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rate = loop_rate(
        CharLSTM(ModelConfig.named(size)),
        int(batch),
        int(seq_len),
        float(seconds),
        torch.device("cpu"),
        bf16=_trainer_uses_bf16(torch.device("cpu")),
    )
    print(rate)


def _trainer_uses_bf16(device: torch.device) -> bool:
    """The trainer's own choice (--precision auto) on this device."""
    return pick_precision("auto", device) == torch.bfloat16


def main() -> None:
    if sys.argv[1:2] == ["--_worker"]:
        _worker(*sys.argv[2:6])
        return
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", nargs="+", default=["small", "medium"], choices=list(SIZES))
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repeats; medians printed")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--repo", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    args = ap.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else args.device.replace("auto", "cpu")
    )
    batch = args.batch_size or (256 if device.type == "cuda" else 32)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {name}; batch {batch} x seq {args.seq_len}; {args.seconds:.0f} s per measurement; torch {torch.__version__}"
    )
    print(
        f"charcode's precision here (--precision auto): {'bf16' if _trainer_uses_bf16(device) else 'fp32'}"
    )
    cpu = device.type == "cpu"
    plain_bf16 = not cpu or cpu_runs_bf16_lstm()
    if not plain_bf16:
        print("plain bf16: n/a, this CPU cannot run torch's bf16 LSTM (oneDNN needs AVX512)")
    print(
        f"{'size':8} {'naive cell loop':>16} {'plain nn.LSTM':>14} {'plain bf16':>11} {'charcode':>12}"
        + (f" {'ceiling':>9}" if cpu else "")
        + f" {'vs naive':>9} {'vs plain':>9}"
        + ("  plain/ceiling ours/ceiling" if cpu else "  MFU")
    )
    for size in args.sizes:
        cfg = ModelConfig.named(size)
        runs: dict[str, list[float]] = {
            "naive": [],
            "plain": [],
            "bf16": [],
            "ours": [],
            "ceiling": [],
        }
        for _ in range(args.rounds):
            torch.manual_seed(0)
            if not args.skip_naive:
                runs["naive"].append(
                    loop_rate(NaiveCharRNN(cfg), batch, args.seq_len, args.seconds, device)
                )
            runs["plain"].append(
                loop_rate(CharLSTM(cfg), batch, args.seq_len, args.seconds, device)
            )
            if plain_bf16:
                runs["bf16"].append(
                    loop_rate(CharLSTM(cfg), batch, args.seq_len, args.seconds, device, bf16=True)
                )
            runs["ours"].append(
                trainer_rate(size, batch, args.seq_len, args.seconds, device.type, args.repo)
            )
            if cpu:
                runs["ceiling"].append(ceiling_rate(size, batch, args.seq_len, args.seconds))
        med = {k: statistics.median(v) if v else float("nan") for k, v in runs.items()}
        ratios = [o / p for o, p in zip(runs["ours"], runs["plain"], strict=True)]
        bf16_text = f"{med['bf16']:>11,.0f}" if runs["bf16"] else f"{'n/a':>11}"
        line = (
            f"{size:8} {med['naive']:>16,.0f} {med['plain']:>14,.0f} {bf16_text} "
            f"{med['ours']:>12,.0f}"
            + (f" {med['ceiling']:>9,.0f}" if cpu else "")
            + f" {med['ours'] / med['naive']:>8.2f}x {med['ours'] / med['plain']:>8.2f}x"
        )
        if cpu:
            line += (
                f"  {med['plain'] / med['ceiling']:>13.2f} {med['ours'] / med['ceiling']:>12.2f}"
            )
        else:
            peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
            if peak:
                line += f"  {med['ours'] * flops_per_char(cfg) / (peak * 1e12):.1%} of {peak:.0f} TFLOP/s"
        print(line, flush=True)
        print(
            f"{'':8} charcode/plain per round: {', '.join(f'{r:.2f}x' for r in ratios)}", flush=True
        )


if __name__ == "__main__":
    main()
