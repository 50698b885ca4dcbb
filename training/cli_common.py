"""What every `charcode` command shares, training's and the server's: the one-line error
(CliError), argument types, the options that name a model, and run(), which turns each
expected failure into one line and an exit code. Imports nothing heavy (no torch)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Protocol


class Subcommands(Protocol):
    """What the add_*_command functions need: the object ArgumentParser.add_subparsers returns."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class CliError(Exception):
    """One line for the user; the process exits non-zero."""


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def model_args(p: argparse.ArgumentParser) -> None:
    """How a command names its model: --model, or --language and the search order."""
    p.add_argument("--model", "-m", type=Path, help="a .safetensors checkpoint")
    p.add_argument("--language", "-l", help="use the model found for this language")
    p.add_argument("--models-dir", type=Path, help="the user models folder")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])


def resolve_model_path(args) -> Path:
    """The checkpoint path that model_args' options name (CliError when there is none)."""
    from .languages import get_language
    from .registry import find_model

    if args.model is None and args.language is None:
        raise CliError("give --model PATH or --language L")
    if args.model is not None:
        return args.model
    get_language(args.language)
    entry = find_model(args.language, workspace=Path.cwd(), models_dir=args.models_dir)
    if entry is None:
        raise CliError(
            f"no model for {args.language}; train one with "
            f"`charcode train --language {args.language} --repo PATH`"
        )
    return entry.path


def run(args) -> int:
    """Run a parsed command (args.func), turning every expected failure into one line on
    stderr and an exit code: 2 for bad input or an unusable file, 1 for the system's errors
    (disk full, permissions), 130 for Ctrl-C."""
    from .checkpoint import CheckpointError
    from .corpus import CorpusError
    from .languages import UnknownLanguage
    from .train_config import TrainingError

    try:
        return args.func(args)
    except (CliError, CheckpointError, CorpusError, TrainingError, UnknownLanguage) as e:
        print(f"charcode: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("charcode: interrupted (a training run continues with --resume)", file=sys.stderr)
        return 130
    except OSError as e:
        print(
            f"charcode: error: {e.strerror or e} ({e.filename or ''}); free some space or check permissions",
            file=sys.stderr,
        )
        return 1
