"""Keystroke latency of the charcode language server, measured the way an editor sees it.

Starts ``python -m charcode.server`` over stdio, opens Python files of 100, 1,000
and 10,000 lines, and types a function into the middle of each, one character
at a time: after every keystroke a didChange, then textDocument/inlineCompletion
(and textDocument/completion after identifier characters), each awaited before
the next. Prints p50/p95/p99 per file size, the first request after opening
(which reads up to the engine's horizon), and the 10,000/100-line ratio. It also
prints the inference thread's CPU time per inline request (from the server's
debug counters), which, unlike the latency, does not grow when other processes
compete for the cores.

By default the model is a random-initialised small (2x256) one: latency does not
depend on training, and a random model rarely predicts a line end, so ghost text
runs to the inlineMaxLength cap (48 characters), the worst case.

    .venv/bin/python bench/lsp_latency.py                 # small 2x256
    .venv/bin/python bench/lsp_latency.py --size medium   # 3x512
    .venv/bin/python bench/lsp_latency.py --model runs/python.safetensors
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


def random_model(path: Path, size: str) -> Path:
    import torch

    from charcode.training.checkpoint import save_checkpoint
    from charcode.training.model import CharLSTM, ModelConfig

    torch.manual_seed(0)
    model = CharLSTM(ModelConfig.named(size))
    save_checkpoint(path, model, {"language": "python", "extensions": [".py"], "training": {}})
    return path


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


async def type_into(client: LanguageClient, lines: int, index: int, completion: bool) -> dict:
    uri = f"file:///bench/file_{lines}_{index}.py"
    text = python_file(lines)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    line, col = lines // 2, 0  # type on an empty line in the middle of the file
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=line, character=0),
                        end=types.Position(line=line, character=0),
                    ),
                    text="\n",
                )
            ],
        )
    )
    doc = types.TextDocumentIdentifier(uri=uri)
    inline_ms, completion_ms, lengths = [], [], []
    first_ms = None
    version = 2
    for ch in FUNCTION:
        at = types.Position(line=line, character=col)
        version += 1
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=at, end=at), text=ch
                    )
                ],
            )
        )
        if ch == "\n":
            line, col = line + 1, 0
        else:
            col += 1
        cursor = types.Position(line=line, character=col)
        t = time.perf_counter()
        got = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=doc,
                position=cursor,
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
        )
        ms = (time.perf_counter() - t) * 1000
        if first_ms is None:
            first_ms = ms
        else:
            inline_ms.append(ms)
        lengths.append(len(got.items[0].insert_text) if got and got.items else 0)
        if completion and (ch.isalnum() or ch == "_"):
            t = time.perf_counter()
            await client.text_document_completion_async(
                types.CompletionParams(text_document=doc, position=cursor)
            )
            completion_ms.append((time.perf_counter() - t) * 1000)
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=doc))
    return {"inline": inline_ms, "completion": completion_ms, "first": first_ms, "lengths": lengths}


async def timings(client: LanguageClient) -> dict:
    """Server-side wall and CPU time of the inference jobs since the last call."""
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="charcode.debugTimings")
    )


async def run(args) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="charcode-bench-"))
    model = Path(args.model) if args.model else random_model(tmp / "python.safetensors", args.size)
    (tmp / "user").mkdir()
    env = {**os.environ, "CHARCODE_MODELS_DIR": str(tmp / "user"), "CHARCODE_DEBUG": "1"}
    client = LanguageClient("charcode-bench", "1")
    await client.start_io(sys.executable, "-m", "charcode.server", env=env)
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={
                "charcode": {"models": {"python": str(model)}, "inlineMaxLength": args.max_length}
            },
        )
    )
    client.initialized(types.InitializedParams())
    info = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="charcode.modelInfo", arguments=[{"language": "python"}])
    )
    py = info["languages"]["python"]
    if "error" in py:
        print(f"model: {py['error']}", file=sys.stderr)
        return 1
    print(
        f"model {py['layers']}x{py['hidden']} ({model}), inlineMaxLength {args.max_length}, "
        f"{len(FUNCTION)} keystrokes per function, {args.repeat} per file size, load average {os.getloadavg()[0]:.1f}"
    )
    await type_into(client, 100, -1, False)  # warm up: imports, allocator, caches
    await timings(client)
    # Sizes take turns, so that a change in machine load affects them alike.
    results = {
        lines: {"inline": [], "completion": [], "first": [], "lengths": [], "cpu": []}
        for lines in args.sizes
    }
    for rep in range(args.repeat):
        for lines in args.sizes:
            r = await type_into(client, lines, rep, not args.no_completion)
            for k in ("inline", "completion", "lengths"):
                results[lines][k] += r[k]
            results[lines]["first"].append(r["first"])
            cpu = (await timings(client)).get("inline", {}).get("cpu_ms", [])
            results[lines]["cpu"] += cpu[1:]  # not the first request (it reads the horizon)
    header = (
        f"{'lines':>7} | {'inline p50':>10} {'p95':>7} {'p99':>7} | {'completion p50':>14} {'p95':>7} {'p99':>7}"
        f" | {'first':>7} | {'inline CPU p50':>14} {'p95':>7} | ghost text"
    )
    print(header)
    print("-" * len(header))
    for lines, s in results.items():
        comp = s["completion"] or [float("nan")]
        print(
            f"{lines:>7} | {pct(s['inline'], 50):>8.1f}ms {pct(s['inline'], 95):>5.1f}ms {pct(s['inline'], 99):>5.1f}ms"
            f" | {pct(comp, 50):>12.1f}ms {pct(comp, 95):>5.1f}ms {pct(comp, 99):>5.1f}ms"
            f" | {statistics.median(s['first']):>5.0f}ms | {pct(s['cpu'], 50):>12.1f}ms {pct(s['cpu'], 95):>5.1f}ms"
            f" | {statistics.mean(s['lengths']):.0f} chars avg"
        )
    lo, hi = min(results), max(results)
    for kind in ("inline", "completion"):
        if results[lo][kind] and results[hi][kind]:
            r50 = pct(results[hi][kind], 50) / pct(results[lo][kind], 50)
            r95 = pct(results[hi][kind], 95) / pct(results[lo][kind], 95)
            print(f"{kind} latency ratio {hi:,}/{lo:,} lines: p50 {r50:.2f}, p95 {r95:.2f}")
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="charcode.debugStats")
    )
    print(f"server: {stats['inference']} cache {stats['cache']['bytes'] / 2**20:.1f} MB")
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
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 1000, 10000],
        help="file lengths in lines",
    )
    p.add_argument("--repeat", type=int, default=2, help="functions typed per file size")
    p.add_argument("--max-length", type=int, default=48, help="inlineMaxLength setting")
    p.add_argument("--no-completion", action="store_true", help="only inline completion")
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
