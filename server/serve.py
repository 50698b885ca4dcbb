"""Run the language server: ``python -m charcode.server [--tcp HOST:PORT]`` and ``charcode serve``."""

from __future__ import annotations

import argparse
import atexit
import logging
import sys


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="charcode serve",
        description="Run the charcode language server (LSP on stdio unless --tcp is given).",
    )
    p.add_argument("--stdio", action="store_true", help="speak LSP on stdin/stdout (the default)")
    p.add_argument("--tcp", metavar="HOST:PORT", help="listen on a TCP port instead of stdio")
    p.add_argument("--log-file", metavar="PATH", help="write the server log to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return p.parse_args(argv)


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--tcp expects HOST:PORT (e.g. 127.0.0.1:2087), got {value!r}")
    return host or "127.0.0.1", int(port)


def serve_main(argv: list[str]) -> int:
    """Entry point shared by ``charcode serve`` and ``python -m charcode.server``; the exit status."""
    args = parse_args(argv)
    try:
        address = _host_port(args.tcp) if args.tcp else None
    except ValueError as e:
        print(f"charcode serve: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        filename=args.log_file,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("pygls").setLevel(logging.ERROR)  # it logs every message body at INFO

    from .features import build_server
    from .stdio import serve_stdio
    from .train import stop_all_trainers

    server = build_server()
    atexit.register(stop_all_trainers, server)  # the editor went away without a shutdown
    if address:
        server.start_tcp(*address)
    else:
        serve_stdio(server)
    return 0
