"""The commands that run a model: `charcode sample`, `charcode hallucinate`, `charcode models`.

They load checkpoints without torch (core/model_store.py) and call the core:
`sample` and `hallucinate` use the one sampler (core/sampler.py), the same
as the language server's charcode.hallucinateFunction.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from charcode.training.cli_common import (
    CliError,
    Subcommands,
    model_args,
    positive_int,
    resolve_model_path,
)
from charcode.training.languages import get_language
from charcode.training.registry import list_models

from .core.completer import Completer, OneModel, TextAt, function_request
from .core.model_store import inference_device, load_runtime
from .core.predictor import Predictor
from .core.sampler import sample_text
from .core.settings import Settings


@dataclass
class CommandModel:
    path: Path
    meta: dict
    runtime: Predictor

    @property
    def language(self) -> str:
        return self.meta.get("language", "")


def load_model(args) -> CommandModel:
    """The model that model_args' options name, ready to run (CliError when there is none).
    ``--device cuda`` runs it through torch on the GPU; auto and cpu in NumPy."""
    path = resolve_model_path(args)
    if not path.is_file():
        raise CliError(f"{path}: no such checkpoint")
    device = inference_device(args.device, lambda text, level: print(text, file=sys.stderr))
    meta, runtime = load_runtime(path, device)
    return CommandModel(path, meta, runtime)


def model_language(args, model: CommandModel) -> str:
    language = args.language or model.language
    if not language:
        raise CliError(f"{model.path} does not say its language; pass --language")
    get_language(language)
    return language


# ---------------------------------------------------------------- sample


def add_sample_command(sub: Subcommands) -> None:
    s = sub.add_parser("sample", help="sample text from a model")
    model_args(s)
    s.add_argument("--prime", default="", help="text to start from")
    s.add_argument("--length", type=positive_int, default=500, help="characters to sample")
    s.add_argument(
        "--temperature",
        type=float,
        default=Settings().temperature,
        help=f"sampling temperature (default {Settings().temperature}, as hallucinate)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    if not 0 <= args.temperature <= 5:
        raise CliError(f"--temperature must be from 0 to 5, got {args.temperature}")
    model = load_model(args)
    text = sample_text(
        model.runtime,
        args.prime.encode("utf-8"),
        length=args.length,
        temperature=args.temperature,
        seed=args.seed,
    )
    sys.stdout.write(text.decode("utf-8") + "\n")  # the sampler writes only whole characters
    return 0


# ---------------------------------------------------------------- hallucinate


def add_hallucinate_command(sub: Subcommands) -> None:
    h = sub.add_parser(
        "hallucinate", help="write whole functions, stopping where each function ends"
    )
    model_args(h)
    h.add_argument(
        "--prime", help="start of the function (default: the language's usual function start)"
    )
    h.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)"
    )
    h.add_argument("--seed", type=int, default=0)
    h.add_argument(
        "--no-syntax-check",
        dest="syntax_check",
        action="store_false",
        help="sample without the language's syntax guard (the model alone)",
    )
    h.add_argument(
        "--count",
        type=positive_int,
        default=1,
        help="functions to write (seeds seed, seed+1, ...)",
    )
    h.add_argument("--max-chars", type=positive_int, default=3000)
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=cmd_hallucinate)


def hallucinate(
    runtime: Predictor,
    language: str,
    prime: str | None,
    temperature: float,
    seed: int,
    max_chars: int,
    syntax_check: bool = True,
) -> dict:
    """One function in an empty document: what charcode.hallucinateFunction writes there."""
    at = TextAt("cli:///hallucinate", language, 0, b"", 0)
    req = function_request(
        at,
        temperature=temperature,
        max_chars=max_chars,
        seed=seed,
        syntax_check=syntax_check,
        prime=None if prime is None else prime.encode("utf-8"),
    )
    sampled = Completer(OneModel(language, runtime)).function(at, req)
    full = sampled.text.decode("utf-8", "replace")
    return {"seed": seed, "text": full, "stopped": sampled.reason, "chars": len(full)}


def cmd_hallucinate(args) -> int:
    if not 0 <= args.temperature <= 5:
        raise CliError(f"--temperature must be from 0 to 5, got {args.temperature}")
    model = load_model(args)
    language = model_language(args, model)
    results = [
        hallucinate(
            model.runtime,
            language,
            args.prime,
            args.temperature,
            args.seed + i,
            args.max_chars,
            args.syntax_check,
        )
        for i in range(args.count)
    ]
    if args.json:
        print(json.dumps(results if args.count > 1 else results[0], ensure_ascii=False, indent=1))
    else:
        for r in results:
            print(r["text"].rstrip("\n"))
            if args.count > 1:
                print()
    return 0


# ---------------------------------------------------------------- models


def add_models_command(sub: Subcommands) -> None:
    m = sub.add_parser("models", help="list the models found and where")
    m.add_argument("--json", action="store_true")
    m.add_argument(
        "--models-dir",
        type=Path,
        help="the user models folder (default $CHARCODE_MODELS_DIR or the platform data dir)",
    )
    m.set_defaults(func=cmd_models)


def cmd_models(args) -> int:
    entries = list_models(workspace=Path.cwd(), models_dir=args.models_dir)
    if args.json:
        rows = [
            {
                "language": e.language,
                "path": str(e.path),
                "source": e.source,
                "meta": e.meta,
                "error": e.error,
            }
            for e in entries
        ]
        print(json.dumps(rows, indent=1))
        return 0
    if not entries:
        print("no models found; train one with `charcode train --language L --repo PATH`")
        return 0
    for e in entries:
        if e.error:
            print(f"{e.language:12} {e.source:9} {e.path}  UNUSABLE: {e.error}")
            continue
        m, t = e.meta["model"], e.meta.get("training", {})
        val = t.get("val_bits_per_char")
        val_s = f"{val:.3f} bits/char" if isinstance(val, (int, float)) else "not validated"
        print(
            f"{e.language:12} {e.source:9} {m.get('layers')}x{m.get('hidden')}  {val_s}  {e.path}"
        )
    return 0
