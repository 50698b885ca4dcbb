"""Keystroke latency of the charcode language server, measured the way an editor sees it.

Starts ``python -m charcode.server`` over stdio, opens Python files of 100, 1,000
and 10,000 lines, and types a function into the middle of each, one character
at a time: after every keystroke a didChange, then textDocument/inlineCompletion
(and textDocument/completion after identifier characters), each awaited before
the next; the files take turns keystroke by keystroke. Prints p50/p95/p99 per file size, the first request after opening
(which reads up to the engine's horizon), and the 10,000/100-line ratio. It also
prints the inference thread's CPU time per inline request (from the server's
debug counters), which, unlike the latency, does not grow when other processes
compete for the cores, and the time each inline request spent outside the inference
job (messages, queueing, waiting for a background job to yield).

By default the model is a random-initialised small (2x256) one: latency does not
depend on training, and a random model rarely predicts a line end, so ghost text
runs to the inlineMaxLength cap (48 characters), the worst case (the bench sets
inlineMinProbability 0 for it, else the ghost text would end after its first token).

    .venv/bin/python bench/lsp_latency.py                 # small 2x256
    .venv/bin/python bench/lsp_latency.py --size medium   # 3x512
    .venv/bin/python bench/lsp_latency.py --shape 2x384   # any layers x hidden
    .venv/bin/python bench/lsp_latency.py --model runs/python.safetensors
    .venv/bin/python bench/lsp_latency.py --model M --workspace DIR [--adaptation off|both]
    .venv/bin/python bench/lsp_latency.py --model M --workspace DIR --during-learning
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

FUNCTION = '''def merge_sorted(left, right):
    """Merge two sorted lists."""
    result = []
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            result.append(left[i])
            i += 1
        else:
            result.append(right[j])
            j += 1
    return result + left[i:] + right[j:]

'''


def python_file(lines: int) -> str:
    """Plausible Python code of exactly `lines` lines."""
    out = ["import os", "import sys", ""]
    n = 0
    while len(out) < lines:
        out += [
            f"def helper_{n}(items, limit={n % 7}):",
            f'    """Return the first {n % 5 + 1} items above the limit."""',
            "    found = []",
            "    for item in items:",
            "        if item > limit:",
            "            found.append(item)",
            f"    return found[:{n % 5 + 1}]",
            "",
            "",
        ]
        n += 1
    return "\n".join(out[:lines]) + "\n"


def random_model(path: Path, size: str, shape: str | None = None) -> Path:
    import torch

    from charcode.training.checkpoint import save_checkpoint
    from charcode.training.model import CharLSTM, ModelConfig

    torch.manual_seed(0)
    layers, hidden = (int(x) for x in shape.split("x")) if shape else (None, None)
    model = CharLSTM(ModelConfig.named(size, layers=layers, hidden=hidden))
    save_checkpoint(path, model, {"language": "python", "extensions": [".py"], "training": {}})
    return path


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


class Typist:
    """Types FUNCTION into the middle of one open file, a keystroke at a time."""

    def __init__(self, client: LanguageClient, lines: int, index: int, completion: bool):
        self.client, self.lines, self.completion = client, lines, completion
        self.doc = types.TextDocumentIdentifier(uri=f"file:///bench/file_{lines}_{index}.py")
        self.line, self.col, self.version = lines // 2, 0, 1
        self.inline, self.completions, self.cpu, self.lengths = [], [], [], []
        self.outside: list[float] = []
        self.first: float | None = None

    def open(self) -> None:
        item = types.TextDocumentItem(
            uri=self.doc.uri, language_id="python", version=1, text=python_file(self.lines)
        )
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=item))
        self._insert("\n")  # an empty line in the middle of the file to type on

    def close(self) -> None:
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=self.doc)
        )

    def _insert(self, text: str) -> None:
        at = types.Position(line=self.line, character=self.col)
        self.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.doc.uri, version=self.version
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=at, end=at), text=text
                    )
                ],
            )
        )

    async def keystroke(self, ch: str) -> None:
        self._insert(ch)
        self.line, self.col = (self.line + 1, 0) if ch == "\n" else (self.line, self.col + 1)
        cursor = types.Position(line=self.line, character=self.col)
        t = time.perf_counter()
        got = await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=self.doc,
                position=cursor,
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
        )
        ms = (time.perf_counter() - t) * 1000
        job = (await timings(self.client)).get("inline", {})
        if self.first is None:
            self.first = ms  # reads up to the horizon: reported apart
        else:
            self.inline.append(ms)
            self.cpu += job.get("cpu_ms", [])
            # what the request spent outside the inference job: messages, queueing, waiting
            self.outside.append(ms - sum(job.get("wall_ms", [])))
        self.lengths.append(len(got.items[0].insert_text) if got and got.items else 0)
        if self.completion and (ch.isalnum() or ch == "_"):
            t = time.perf_counter()
            await self.client.text_document_completion_async(
                types.CompletionParams(text_document=self.doc, position=cursor)
            )
            self.completions.append((time.perf_counter() - t) * 1000)


async def timings(client: LanguageClient) -> dict:
    """Server-side wall and CPU time of the inference jobs since the last call."""
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="charcode.debugTimings")
    )


async def wait_learned(client: LanguageClient, timeout: float = 600) -> dict:
    """Poll charcode.modelInfo until the workspace has been read (adaptation's status)."""
    deadline = time.monotonic() + timeout
    while True:
        info = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="charcode.modelInfo", arguments=[{"language": "python"}]
            )
        )
        learned = info["languages"]["python"].get("learned") or {}
        if learned.get("state") == "ready" or time.monotonic() > deadline:
            return learned
        await asyncio.sleep(0.2)


async def start_server(args, model: Path, tmp: Path, workspace: Path | None, adaptation: str):
    """A language server with the model, on the workspace; adaptation "on" or "off"."""
    home = tmp / adaptation
    (home / "user").mkdir(parents=True)
    env = {**os.environ, "CHARCODE_MODELS_DIR": str(home / "user"), "CHARCODE_DEBUG": "1"}
    env["CHARCODE_CACHE_DIR"] = str(home / "cache" / "corpora")  # nothing learned before
    client = LanguageClient("charcode-bench", "1")
    await client.start_io(args.server_python, "-m", "charcode.server", env=env)
    options = {"models": {"python": str(model)}, "inlineMaxLength": args.max_length}
    if args.min_probability is not None:
        options["inlineMinProbability"] = args.min_probability
    elif not args.model:
        options["inlineMinProbability"] = 0.0  # a random model's ghost text to the cap
    if workspace is not None:
        options["adaptation"] = adaptation == "on"
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=workspace.as_uri() if workspace else None,
            workspace_folders=(
                [types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)]
                if workspace
                else None
            ),
            initialization_options={"charcode": options},
        )
    )
    client.initialized(types.InitializedParams())
    return client


def print_table(label: str, results: dict) -> None:
    header = (
        f"{'lines':>7} | {'inline p50':>10} {'p95':>7} {'p99':>7} | {'completion p50':>14} {'p95':>7} {'p99':>7}"
        f" | {'first':>7} | {'inline CPU p50':>14} {'p95':>7} | {'outside p95':>11} | ghost text"
    )
    print(label)
    print(header)
    print("-" * len(header))
    for lines, s in results.items():
        comp = s["completion"] or [float("nan")]
        print(
            f"{lines:>7} | {pct(s['inline'], 50):>8.1f}ms {pct(s['inline'], 95):>5.1f}ms {pct(s['inline'], 99):>5.1f}ms"
            f" | {pct(comp, 50):>12.1f}ms {pct(comp, 95):>5.1f}ms {pct(comp, 99):>5.1f}ms"
            f" | {statistics.median(s['first']):>5.0f}ms | {pct(s['cpu'], 50):>12.1f}ms {pct(s['cpu'], 95):>5.1f}ms"
            f" | {pct(s['outside'], 95):>9.1f}ms | {statistics.mean(s['lengths']):.0f} chars avg"
        )
    lo, hi = min(results), max(results)
    for kind in ("inline", "completion"):
        if results[lo][kind] and results[hi][kind]:
            r50 = pct(results[hi][kind], 50) / pct(results[lo][kind], 50)
            r95 = pct(results[hi][kind], 95) / pct(results[lo][kind], 95)
            print(f"{kind} latency ratio {hi:,}/{lo:,} lines: p50 {r50:.2f}, p95 {r95:.2f}")


async def run(args) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="charcode-bench-"))
    model = (
        Path(args.model).resolve()
        if args.model
        else random_model(tmp / "python.safetensors", args.size, args.shape)
    )
    workspace = Path(args.workspace).resolve() if args.workspace else None
    modes = ["on", "off"] if args.adaptation == "both" else [args.adaptation]
    if workspace is None:
        modes = ["off"]
    clients = {mode: await start_server(args, model, tmp, workspace, mode) for mode in modes}
    for mode, client in clients.items():
        if workspace is not None and mode == "on" and not args.during_learning:
            learned = await wait_learned(client)
            print(
                f"adaptation: learned {learned['files']} files, {learned['bytes'] / 1e6:.1f} MB "
                f"in {learned['seconds']:.1f} s before typing"
            )
    info = await next(iter(clients.values())).workspace_execute_command_async(
        types.ExecuteCommandParams(command="charcode.modelInfo", arguments=[{"language": "python"}])
    )
    py = info["languages"]["python"]
    if "error" in py:
        print(f"model: {py['error']}", file=sys.stderr)
        return 1
    print(
        f"model {py['layers']}x{py['hidden']} ({model}), inlineMaxLength {args.max_length}, "
        f"{len(FUNCTION)} keystrokes per function, {args.repeat} per file size, "
        f"load average {os.getloadavg()[0]:.1f}"
        + (", two servers typed in turns" if len(clients) > 1 else "")
    )
    for client in clients.values():
        warm = Typist(client, 100, -1, False)  # warm up: imports, allocator, caches
        warm.open()
        for ch in FUNCTION[:60]:
            await warm.keystroke(ch)
        warm.close()
    # The files (and the servers) take turns keystroke by keystroke, so changes in machine
    # load hit them alike.
    results = {
        mode: {
            lines: {
                "inline": [],
                "completion": [],
                "first": [],
                "lengths": [],
                "cpu": [],
                "outside": [],
            }
            for lines in args.sizes
        }
        for mode in clients
    }
    for rep in range(args.repeat):
        typists = [
            (mode, Typist(client, lines, rep, not args.no_completion))
            for mode, client in clients.items()
            for lines in args.sizes
        ]
        for _, t in typists:
            t.open()
        for ch in FUNCTION:
            for _, t in typists:
                await t.keystroke(ch)
        for mode, t in typists:
            t.close()
            r = results[mode][t.lines]
            r["inline"] += t.inline
            r["completion"] += t.completions
            r["cpu"] += t.cpu
            r["outside"] += t.outside
            r["lengths"] += t.lengths
            r["first"].append(t.first)
    for mode, client in clients.items():
        label = "" if workspace is None else f"adaptation {mode}:"
        print_table(label, results[mode])
        stats = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="charcode.debugStats")
        )
        print(f"server: {stats['inference']} cache {stats['cache']['bytes'] / 2**20:.1f} MB")
        if workspace is not None and mode == "on":
            learned = (stats.get("adaptation") or {}).get("python", {})
            print(
                f"adaptation: {learned.get('state')}, {learned.get('files')} files, "
                f"{learned.get('bytes', 0) / 1e6:.1f} MB learned in {learned.get('seconds')} s"
                + (" (typing while it learned)" if args.during_learning else "")
            )
    if len(clients) == 2:
        for lines in args.sizes:
            on, off = results["on"][lines], results["off"][lines]
            print(
                f"{lines:>7} lines: adaptation on/off inline p50 "
                f"{pct(on['inline'], 50) / pct(off['inline'], 50):.2f}x, p95 "
                f"{pct(on['inline'], 95) / pct(off['inline'], 95):.2f}x; CPU p95 "
                f"{pct(on['cpu'], 95):.1f} / {pct(off['cpu'], 95):.1f} ms"
            )
    for client in clients.values():
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a .safetensors checkpoint (default: a random-initialised one)")
    p.add_argument(
        "--size",
        default="small",
        choices=["tiny", "small", "medium", "large"],
        help="size of the random model",
    )
    p.add_argument(
        "--shape",
        metavar="LxH",
        help="the random model's layers x hidden units (e.g. 2x384; embedding from --size)",
    )
    p.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 1000, 10000],
        help="file lengths in lines",
    )
    p.add_argument("--repeat", type=int, default=2, help="functions typed per file size")
    p.add_argument("--max-length", type=int, default=48, help="inlineMaxLength setting")
    p.add_argument(
        "--min-probability",
        type=float,
        help="inlineMinProbability setting (default: the server's; 0 for a random model)",
    )
    p.add_argument("--no-completion", action="store_true", help="only inline completion")
    p.add_argument(
        "--workspace",
        help="open this folder as the workspace: adaptation learns its Python files",
    )
    p.add_argument(
        "--adaptation",
        choices=["on", "off", "both"],
        default="on",
        help="with --workspace: adaptation on (the default), off, or both: two servers typed "
        "in turns, side by side in one run",
    )
    p.add_argument(
        "--during-learning",
        action="store_true",
        help="with --workspace: start typing at once, while the workspace is being learned",
    )
    p.add_argument(
        "--server-python",
        default=sys.executable,
        help="the Python whose charcode serves (another environment's; default this one)",
    )
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
