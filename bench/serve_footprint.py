"""What serving costs a fresh install, before and after the torch-free core, in one run.

Builds two virtual environments from scratch: "before" installs an earlier
revision of charcode (default 73c9744, the last one whose serving needed torch)
with torch==2.13.0 (the CPU build; with a plain `torch` it would be the CUDA
build, several GB); "after" installs this working tree with `pip install .`
(no torch). For each it prints:

- the environment's size on disk and the install time;
- the language server's start: from spawning ``python -m charcode.server`` to
  the ``initialize`` response;
- the first ghost text: a Python document opened with a cursor at its end,
  ``textDocument/inlineCompletion`` answered (this loads the bundled model);
- the server's resident memory with that model loaded (charcode.debugStats' rss_bytes);

and then runs bench/lsp_latency.py against each server in turn.

    .venv/bin/python bench/serve_footprint.py [--before REV] [--no-latency]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
TORCH_CPU = "torch==2.13.0"
DOC = "import os\n\n\ndef load(path):\n    with open(path) as f:\n        return f.read()\n\n\ndef "


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def pip(venv: Path, *args: str) -> None:
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *args,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def build(kind: str, tmp: Path, before: str) -> tuple[Path, float]:
    venv = tmp / f"venv-{kind}"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if kind == "before":
        src = tmp / "src-before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(src), before],
            check=True,
            capture_output=True,
        )
        pip(venv, TORCH_CPU)
        pip(venv, str(src))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(src)])
    else:
        pip(venv, str(ROOT))
    return venv, time.perf_counter() - t


async def first_use(venv: Path, tmp: Path) -> dict:
    env = {**os.environ, "CHARCODE_MODELS_DIR": str(tmp / "no-user-models")}
    client = LanguageClient("charcode-footprint", "1")
    t0 = time.perf_counter()
    await client.start_io(str(venv / "bin" / "python"), "-m", "charcode.server", env=env, cwd=tmp)
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
    t_init = time.perf_counter() - t0
    client.initialized(types.InitializedParams())
    uri = (tmp / "first.py").as_uri()
    item = types.TextDocumentItem(uri=uri, language_id="python", version=1, text=DOC)
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=item))
    lines = DOC.split("\n")
    at = types.Position(line=len(lines) - 1, character=len(lines[-1]))
    t1 = time.perf_counter()
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=at,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )
    t_ghost = time.perf_counter() - t1
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="charcode.debugStats")
    )
    rss = stats["rss_bytes"] / 2**20
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return {
        "initialize_s": t_init,
        "first_ghost_s": t_ghost,
        "first_ghost_text": items[0].insert_text if items else "",
        "rss_mb": rss,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", default="73c9744", help="the revision to compare against")
    p.add_argument("--no-latency", action="store_true", help="skip bench/lsp_latency.py")
    p.add_argument("--repeat", type=int, default=3, help="server starts per environment")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="charcode-footprint-"))
    try:
        rows = {}
        for kind in ("before", "after"):
            venv, seconds = build(kind, tmp, args.before)
            runs = [asyncio.run(first_use(venv, tmp)) for _ in range(args.repeat)]
            best = {k: min(r[k] for r in runs) for k in ("initialize_s", "first_ghost_s", "rss_mb")}
            best["ghost"] = runs[0]["first_ghost_text"]
            has_torch = (
                subprocess.run(
                    [str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True
                ).returncode
                == 0
            )
            rows[kind] = {
                "venv": venv,
                "size_mb": du(venv) / 2**20,
                "install_s": seconds,
                "torch": has_torch,
                **best,
            }
        print(f"load average {os.getloadavg()[0]:.1f}; best of {args.repeat} server starts each")
        print(
            f"{'':8} {'torch':>6} {'venv MB':>8} {'install s':>10} {'initialize s':>13} "
            f"{'first ghost s':>14} {'RSS MB':>8}"
        )
        for kind, r in rows.items():
            print(
                f"{kind:8} {'yes' if r['torch'] else 'no':>6} {r['size_mb']:8.0f} {r['install_s']:10.1f} "
                f"{r['initialize_s']:13.2f} {r['first_ghost_s']:14.3f} {r['rss_mb']:8.0f}"
            )
        b, a = rows["before"], rows["after"]
        print(
            f"after/before: venv {a['size_mb'] / b['size_mb']:.2f}x, initialize "
            f"{a['initialize_s'] / b['initialize_s']:.2f}x, RSS {a['rss_mb'] / b['rss_mb']:.2f}x, "
            f"first ghost text {a['first_ghost_s'] / b['first_ghost_s']:.2f}x"
        )
        print(f"first ghost text: before {b['ghost']!r}, after {a['ghost']!r}")
        if not args.no_latency:
            for kind, r in rows.items():
                print(f"\n== bench/lsp_latency.py, {kind}")
                sys.stdout.flush()
                subprocess.run(
                    [
                        sys.executable,
                        str(ROOT / "bench" / "lsp_latency.py"),
                        "--server-python",
                        str(r["venv"] / "bin" / "python"),
                    ],
                    check=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
