"""The `charcode` console script: the training commands plus `serve` and `hallucinate`.

It lives in charcode.server because `serve`, `hallucinate` and `eval --task
keystrokes|hallucinate` need the server's code, and the training package never
imports the server.
"""

from __future__ import annotations

import sys

from charcode.training import cli as training_cli

from . import hallucinate_command


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = training_cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    hallucinate_command.add_parser(sub)
    serve = sub.add_parser(
        "serve", help="run the language server on stdio (or --tcp HOST:PORT)", add_help=False
    )
    serve.set_defaults(func=None)
    if argv and argv[0] == "serve":
        from charcode.server.main import serve_main

        return serve_main(argv[1:])
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command == "eval" and args.task != "bits":
        from charcode.server import evaluation

        args.func = evaluation.cmd_eval  # keystrokes and hallucinate drive the server's engine
    return training_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
