"""`charcode hallucinate`: whole functions from the command line.

It lives here, not in charcode.training.cli, because it uses the server's sampler
(NumPy runtime, stop rules, syntax guard), and the training package never imports
the server. The console script (charcode.server.cli) adds it to the training
commands.
"""

from __future__ import annotations

import argparse
import json

from charcode.training.cli import CliError, model_args, positive_int, resolve_model
from charcode.training.languages import get_language
from charcode.training.stoprules import make_stop_rule

from .decode import sample_function
from .guard import guard_for
from .hallucinate import after_lead_in
from .runtime import Runtime


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    ckpt,
    language_id: str,
    prime: str | None,
    temperature: float,
    seed: int,
    max_chars: int,
    syntax_check: bool = True,
) -> dict:
    """One function: the prime plus sampled text, cut by the language's stop rule.

    The same sampler as the server's charcode.hallucinateFunction in an empty
    document (after the language's lead-in), with the language's syntax guard
    unless syntax_check is False.
    """
    language = get_language(language_id)
    head = (prime if prime is not None else language.function_prime).encode("utf-8")
    runtime = getattr(ckpt, "_runtime", None)
    if runtime is None:
        runtime = ckpt._runtime = Runtime(ckpt.model, next(ckpt.model.parameters()).device)
    sampled = sample_function(
        runtime,
        after_lead_in(runtime, runtime.start, language, b""),
        forced=head,
        stop_rule=lambda extra: make_stop_rule(language.stop_rule, extra, language.id),
        temperature=temperature,
        seed=seed,
        max_chars=max_chars,
        should_stop=lambda: False,
        guard=guard_for(language.id) if syntax_check else None,
    )
    full = sampled.text.decode("utf-8", "replace")
    return {"seed": seed, "text": full, "stopped": sampled.reason, "chars": len(full)}


def cmd_hallucinate(args) -> int:
    ckpt = resolve_model(args)
    language_id = args.language or ckpt.language
    if not language_id:
        raise CliError(f"{args.model} does not say its language; pass --language")
    get_language(language_id)
    results = [
        hallucinate(
            ckpt,
            language_id,
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
