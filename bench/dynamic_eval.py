"""What dynamic evaluation of the LSTM adds on top of the adaptive mixture, and what it costs.

    .venv/bin/python bench/dynamic_eval.py [--set eval|tuning] [--project NAME ...]
        [--max-bytes N] [--lr 1e-3] [--decay 0] [--segment 128] [--threads 1]

Needs torch (the `train` extra): the LSTM's gradient steps run in torch on the CPU.
The projects are bench/adaptive_bits.py's (whole Debian packages that no bundled corpus
contains; fetched into ~/.cache/charcode/adaptive-bench), read in sorted path order, the
first --max-bytes of each project. In one run, on the same bytes, four figures of
bits/char:

- LSTM static: the bundled model, each file one stream from its start;
- LSTM dynamic: the same, but after predicting each --segment bytes the model takes one
  gradient step on them (Krause et al. 2018): RMS-normalised (a running mean of squared
  gradients, as RMSprop), learning rate --lr, and --decay pulling the weights back toward
  the static ones each step; the weights carry over from file to file, as they would over
  a workspace;
- mixture static / mixture dynamic: charcode's adaptive engine
  (charcode.server.core.adaptive.AdaptiveModel.score, a fresh one per project) mixing its
  context models with the static or the dynamically evaluated LSTM's log-probabilities.

and the speed of the dynamic LSTM (characters per second: forward, backward and update)
beside the static forward. The defaults (--lr 1e-3, RMS-normalised, segments of 128) are
the values the adaptation issue's prototype reported, not tuned on these projects.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import adaptive_bits as ab  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BOUNDARY = 256


def stream_logprobs(model, data: bytes, seg: int, step) -> tuple[list[np.ndarray], float]:
    """The model's log-probabilities before each byte of data (a list of (n, 257) float64
    blocks, one per segment), calling step(loss) after each segment (None: static);
    and the seconds spent."""
    import torch

    symbols = torch.tensor([BOUNDARY, *data], dtype=torch.long)
    state = None
    out = []
    t = time.perf_counter()
    for a in range(0, len(data), seg):
        b = min(len(data), a + seg)
        x = symbols[a:b].unsqueeze(0)
        y = symbols[a + 1 : b + 1]
        with torch.set_grad_enabled(step is not None):
            logits, state = model(x, state)
            lp = torch.log_softmax(logits[0].float(), dim=-1)
            if step is not None:
                step(torch.nn.functional.nll_loss(lp, y))
        state = (state[0].detach(), state[1].detach())
        out.append(lp.detach().double().numpy())
    return out, time.perf_counter() - t


class DynamicEval:
    """One RMS-normalised gradient step per segment, decaying toward the static weights."""

    def __init__(self, model, lr: float, decay: float, beta: float = 0.99, eps: float = 1e-8):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.static = [p.detach().clone() for p in self.params]
        self.ms = [p.detach().clone().zero_() for p in self.params]
        self.lr, self.decay, self.beta, self.eps = lr, decay, beta, eps
        self.steps = 0

    def __call__(self, loss) -> None:
        import torch

        grads = torch.autograd.grad(loss, self.params)
        self.steps += 1
        bias = 1 - self.beta**self.steps
        with torch.no_grad():
            for p, g, ms, p0 in zip(self.params, grads, self.ms, self.static, strict=True):
                ms.mul_(self.beta).addcmul_(g, g, value=1 - self.beta)
                p.sub_(self.lr * g / ((ms / bias).sqrt() + self.eps))
                if self.decay:
                    p.add_(self.decay * (p0 - p))


def run_project(project, args, model_path: Path) -> dict:
    import torch

    from charcode.server.core.adaptive import AdaptiveModel
    from charcode.training.checkpoint import load_checkpoint

    tree, version = ab.fetch(project, args.cache)
    files, total = [], 0
    for p in ab.project_files(tree, project.language):
        d = p.read_bytes()
        if not d:
            continue
        d = d[: args.max_bytes - total]
        files.append(d)
        total += len(d)
        if total >= args.max_bytes:
            break
    row = {"project": project.name, "version": version, "files": len(files), "bytes": total}
    for variant in ("static", "dynamic"):
        model = load_checkpoint(model_path, dtype=torch.float32).model.float()
        model.eval()
        step = DynamicEval(model, args.lr, args.decay) if variant == "dynamic" else None
        mix = AdaptiveModel()
        lstm_bits = mix_bits = seconds = 0.0
        for d in files:
            blocks, dt = stream_logprobs(model, d, args.segment, step)
            seconds += dt
            lp = np.concatenate(blocks)
            lstm_bits += float(-lp[np.arange(len(d)), np.frombuffer(d, np.uint8)].sum()) / np.log(2)
            mix_bits += float(mix.score(d, lp).sum())
        row[f"lstm_{variant}"] = lstm_bits / total
        row[f"mix_{variant}"] = mix_bits / total
        row[f"{variant}_chars_per_s"] = total / seconds
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("eval", "tuning"), default="eval")
    ap.add_argument("--project", action="append", default=[])
    ap.add_argument("--max-bytes", type=int, default=300_000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--decay", type=float, default=0.0)
    ap.add_argument("--segment", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache/charcode/adaptive-bench")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("dynamic_eval: needs torch: pip install 'charcode[train]'", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    projects = ab.EVAL_PROJECTS if args.set == "eval" else ab.TUNING_PROJECTS
    if args.project:
        projects = [p for p in projects if p.name in args.project]
    print(
        f"dynamic evaluation: RMS-normalised step per {args.segment} bytes, lr {args.lr}, "
        f"decay {args.decay}; first {args.max_bytes:,} bytes of each project; "
        f"torch {torch.__version__}, {args.threads} thread(s)"
    )
    head = (
        f"{'project':24} {'bytes':>8} | {'LSTM static':>11} {'dynamic':>8} | "
        f"{'mix static':>10} {'dynamic':>8} {'gain':>6} | {'static c/s':>10} {'dyn c/s':>8}"
    )
    print(head)
    print("-" * len(head))
    for project in projects:
        model_path = ROOT / "training" / "models" / f"{project.language}.safetensors"
        r = run_project(project, args, model_path)
        print(
            f"{r['project']:24} {r['bytes']:8,} | {r['lstm_static']:11.3f} {r['lstm_dynamic']:8.3f}"
            f" | {r['mix_static']:10.3f} {r['mix_dynamic']:8.3f}"
            f" {r['mix_dynamic'] / r['mix_static'] - 1:+6.1%} |"
            f" {r['static_chars_per_s']:10,.0f} {r['dynamic_chars_per_s']:8,.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
