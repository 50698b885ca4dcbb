"""The `charcode` console script: the one place that assembles the whole command line.

Training's commands (train, corpus) come from charcode.training.cli, which
also serves `python -m charcode.training` for torchrun; the commands that run
a model (sample, hallucinate, eval, models) and `serve` come from this package.
"""

from __future__ import annotations

import argparse
import sys

from charcode.training import cli as training_cli
from charcode.training.cli_common import run

from .cli_commands import add_hallucinate_command, add_models_command, add_sample_command
from .cli_eval import add_eval_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charcode", description="Character-level code models: train, sample, evaluate, serve."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    training_cli.add_train_command(sub)
    add_sample_command(sub)
    add_hallucinate_command(sub)
    add_eval_command(sub)
    add_models_command(sub)
    training_cli.add_corpus_command(sub)
    serve = sub.add_parser(
        "serve", help="run the language server on stdio (or --tcp HOST:PORT)", add_help=False
    )
    serve.set_defaults(func=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        from .serve import serve_main

        return serve_main(argv[1:])
    args = build_parser().parse_args(argv)
    args.argv = argv
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
