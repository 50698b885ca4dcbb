"""Training's commands and `python -m charcode.training`.

add_train_command and add_corpus_command add `charcode train` and `charcode corpus` to a
command line (charcode.server assembles the whole `charcode` one); main() is
`python -m charcode.training [train] ...`, which torchrun and the CPU launcher run in each
process. The commands that run a model (sample, hallucinate, eval, models) are the
server's (charcode.server.cli_commands, cli_eval): they need no torch.
Nothing here imports torch until a command runs; `charcode train` without torch says how
to install it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .cli_common import (
    CliError,
    Subcommands,
    model_args,
    positive_float,
    positive_int,
    run,
)
from .cpu_parallel import WORKER_ENV
from .languages import LANGUAGES, get_language
from .model_config import SIZES
from .train_config import DEVICES, PRECISIONS

# CliError, positive_int, positive_float, model_args and run live in cli_common; the
# names stay importable from here for code not yet switched over.
__all__ = [
    "CliError",
    "add_corpus_command",
    "add_subcommands",
    "add_train_command",
    "build_parser",
    "main",
    "model_args",
    "positive_float",
    "positive_int",
    "run",
]

TORCH_MISSING = (
    "charcode train needs PyTorch, which is not installed: pip install 'charcode[train]' "
    "(on a machine without an NVIDIA GPU, first pip install torch==2.13.0 --index-url "
    "https://download.pytorch.org/whl/cpu, the CPU build, a fraction of the size)"
)


def add_train_command(sub: Subcommands) -> None:
    """`charcode train`: its options and handler (torch is imported when it runs)."""
    t = sub.add_parser("train", help="build a corpus from repositories and train a model")
    t.add_argument(
        "--language", "-l", required=True, help=f"LSP language id ({', '.join(LANGUAGES)})"
    )
    t.add_argument(
        "--repo", action="append", required=True, type=Path, help="a folder of code (repeatable)"
    )
    t.add_argument(
        "--size",
        default="small",
        choices=list(SIZES),
        help="named model size (default small = 2x256)",
    )
    t.add_argument("--layers", type=positive_int, help="override the number of LSTM layers")
    t.add_argument("--hidden", type=positive_int, help="override the LSTM width")
    t.add_argument("--dropout", type=float, default=0.1)
    t.add_argument("--steps", type=positive_int, help="stop after N optimizer steps")
    t.add_argument("--minutes", type=positive_float, help="stop after M minutes of training")
    t.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="parallel streams (global, across processes)",
    )
    t.add_argument(
        "--seq-len", type=positive_int, default=128, help="characters per truncated-BPTT window"
    )
    t.add_argument("--lr", type=positive_float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", choices=DEVICES)
    t.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="bf16 autocast or fp32; auto: bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX); bf16 on CPU needs AVX512",
    )
    t.add_argument(
        "--cpu-procs",
        type=positive_int,
        help="on CPU, data-parallel processes of one thread each (default: one per core)",
    )
    t.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="validate every N steps (default: ten times per run)",
    )
    t.add_argument(
        "--val-chars",
        type=positive_int,
        default=300_000,
        help="validation characters per evaluation",
    )
    t.add_argument(
        "--val-fraction", type=float, default=0.05, help="share of files held out for validation"
    )
    t.add_argument(
        "--split-by",
        default="project",
        choices=["project", "file"],
        help="hold out whole projects (default: the packages a `charcode corpus` folder names, "
        "or whole --repo folders when there are several; one plain repository is split by "
        "file) or files by a hash of their paths",
    )
    t.add_argument(
        "--max-file-bytes",
        type=positive_int,
        default=1_000_000,
        help="skip files larger than this",
    )
    t.add_argument("--cache-dir", type=Path, help="where encoded corpora are cached")
    t.add_argument(
        "--output",
        "-o",
        type=Path,
        help="checkpoint path (default: the user models folder, <language>.safetensors)",
    )
    t.add_argument("--resume", action="store_true", help="continue the run that wrote --output")
    t.add_argument(
        "--init-from", type=Path, help="fine-tune this checkpoint instead of starting from scratch"
    )
    t.add_argument(
        "--progress-json", action="store_true", help="print progress as JSON lines on stdout"
    )
    t.set_defaults(func=cmd_train)


def add_corpus_command(sub: Subcommands) -> None:
    """`charcode corpus`: rebuild (or check) a bundled model's corpus (recipes.py)."""
    from .recipes import add_corpus_subcommand

    add_corpus_subcommand(sub)


def add_subcommands(sub: Subcommands) -> None:
    """Every command of `python -m charcode.training`."""
    add_train_command(sub)
    add_corpus_command(sub)


def build_parser(prog: str = "charcode") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Character-level code models: train, sample, evaluate."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_subcommands(sub)
    return parser


# -- commands ----------------------------------------------------------------


def _build_corpus(args, language_id: str, log):
    from .corpus import build_corpus

    return build_corpus(
        args.repo,
        language_id,
        cache_dir=args.cache_dir,
        val_fraction=args.val_fraction,
        max_file_bytes=args.max_file_bytes,
        progress=log,
        split_by=getattr(args, "split_by", "project"),
    )


def _require_torch() -> None:
    """CliError with the install command where torch is missing (or broken)."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        if (e.name or "torch").partition(".")[0] == "torch":
            raise CliError(TORCH_MISSING) from None
        raise CliError(
            f"PyTorch is installed but does not import ({e}); reinstall it: "
            "pip install --force-reinstall torch"
        ) from None


def cmd_train(args) -> int:
    _require_torch()
    from .registry import user_models_dir
    from .trainer import (
        Distributed,
        TrainConfig,
        Trainer,
        TrainingError,
        pick_device,
        pick_precision,
        progress_dict,
    )

    language = get_language(args.language)
    if args.steps is None and args.minutes is None:
        raise CliError("give a budget: --steps N or --minutes M")
    output = (args.output or user_models_dir() / f"{language.id}.safetensors").expanduser()
    if output.suffix != ".safetensors":
        raise CliError(f"--output must end in .safetensors, got {output}")
    device = pick_device(args.device)
    pick_precision(args.precision, device)  # bf16 where it cannot run: one line, before any work
    if device.type == "cpu" and "WORLD_SIZE" not in os.environ:
        from .cpu_parallel import choose_processes, launch

        processes = choose_processes(args.cpu_procs, args.batch_size)
        if processes > 1:
            _build_corpus(args, language.id, log=lambda m: print(m, file=sys.stderr, flush=True))
            argv = getattr(args, "argv", None) or sys.argv[1:]
            return launch(argv, processes, main)
    dist = Distributed(device)
    quiet_rank = not dist.is_main
    log = (lambda _m: None) if quiet_rank else (lambda m: print(m, file=sys.stderr, flush=True))

    # Rank 0 builds (and caches) the corpus; the others then read the cache. Under
    # our own CPU launcher the launcher has already printed the corpus summary.
    corpus_log = (lambda _m: None) if WORKER_ENV in os.environ else log
    corpus = _build_corpus(args, language.id, corpus_log) if dist.is_main else None
    dist.barrier()
    if corpus is None:
        corpus = _build_corpus(args, language.id, corpus_log)
    config = TrainConfig(
        language=language.id,
        output=output,
        size=args.size,
        layers=args.layers,
        hidden=args.hidden,
        dropout=args.dropout,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        eval_every=args.eval_every,
        val_chars=args.val_chars,
        resume=args.resume,
        init_from=args.init_from,
        extensions=list(language.extensions),
    )
    if not args.resume and not quiet_rank:
        from .trainer import last_path, metrics_path

        if last_path(output).exists():
            log(
                f"note: starting over; {last_path(output)} will be replaced (use --resume to continue it)"
            )
        metrics_path(output).unlink(missing_ok=True)
    if args.progress_json:

        def on_progress(p):
            print(json.dumps(progress_dict(p)), flush=True)

        bar = None
    else:
        bar = _ProgressBar(disabled=quiet_rank)
        on_progress = bar.update
    try:
        trainer = Trainer(
            config,
            corpus.train,
            corpus.val,
            corpus.summary,
            on_progress=on_progress,
            log=log,
            dist=dist,
        )
        log(
            f"model {trainer.model.config.layers}x{trainer.model.config.hidden} "
            f"({trainer.model.num_parameters():,} parameters) on {trainer.device} "
            f"({trainer.precision_name}), "
            f"{dist.world} process(es), batch {args.batch_size} x {args.seq_len}"
        )
        result = trainer.run()
        if bar is not None:
            bar.complete()
    except TrainingError as e:
        raise CliError(str(e)) from None
    finally:
        if bar is not None:
            bar.close()
        dist.close()
    if not quiet_rank:
        if args.progress_json:
            print(json.dumps({"done": True, **result}), flush=True)
        else:
            print(
                f"saved {result['path']} (val {result['val_bits_per_char']:.3f} bits/char, {result['steps']:,} steps)"
            )
    return 0


class _ProgressBar:
    """tqdm bar on stderr: percent of the budget, characters/s, loss, val bits/char, ETA.

    Created at the first update, so the set-up lines print above it."""

    def __init__(self, disabled: bool = False):
        self.disabled = disabled
        self.bar = None

    def update(self, p) -> None:
        if self.bar is None:
            import threading

            from tqdm import tqdm

            # One process draws the bar: a thread lock does, and unlike tqdm's default
            # multiprocessing lock it leaves no semaphore behind in a DDP worker.
            tqdm.set_lock(threading.RLock())
            fmt = "{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}{postfix}]"
            self.bar = tqdm(total=100, disable=self.disabled, file=sys.stderr, bar_format=fmt)
        self.bar.n = p.percent
        post = {"step": p.step, "char/s": f"{p.chars_per_sec:,.0f}", "loss": f"{p.loss:.3f}"}
        if p.val_bits_per_char is not None:
            post["val"] = f"{p.val_bits_per_char:.3f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def complete(self) -> None:
        # The last report comes before the final validation, so the bar would stop short.
        if self.bar is not None:
            self.bar.n = 100
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- entry point -------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # torchrun -m charcode.training <train args>: the subcommand is optional.
    if argv and argv[0].startswith("--") and argv[0] not in ("--help", "-h"):
        argv = ["train", *argv]
    args = build_parser().parse_args(argv)
    args.argv = argv
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    return run(args)
