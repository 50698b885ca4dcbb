"""Adaptive bits/char on held-out projects, beside the static LSTM, xz -9e and 7z PPMd o8.

    .venv/bin/python bench/adaptive_bits.py [--set eval|tuning] [--language L ...]
        [--project NAME ...] [--cache DIR] [--json OUT] [--no-baselines] [--no-speed]

Each evaluation project is a whole Debian package that no bundled model's corpus
(training/recipes.json) contains: a binary package that ships its sources (python3-*,
Lua modules) fetched with `apt-get download` + `dpkg-deb -x`, or a C source package
fetched with `apt-get source --download-only` through a private deb-src list. The
script downloads and extracts them itself into --cache (default
~/.cache/charcode/adaptive-bench) and prints the package versions it used.

A project's files (its language's extensions, regular files only, no links) are read
in sorted path order. For each project, on the same bytes:

- static: the bundled LSTM (training/models/L.safetensors through torch), each file one
  stream from its start after the boundary symbol;
- adaptive, context models alone: charcode.server.core.adaptive.AdaptiveModel.score with
  no LSTM, one fresh model per project, each byte predicted before it is learned;
- adaptive, mixed with the LSTM: the same with the LSTM's log-probabilities;
- xz -9e and 7z PPMd order 8 (mem 256m) of the files concatenated in the same order.

Then the engine's speed on the project's text: learn() MB/s, predict() µs per call (the
full 257-way distribution, after learning the project) and score() kB/s with the LSTM.

--set tuning runs the projects the design was tuned on (never the reported ones).
The LSTM's log-probabilities are cached (float16) under --cache/lstm, keyed by model and
files, so reruns skip the forward pass.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VOCAB = 257
BOUNDARY = 256


@dataclass(frozen=True)
class Project:
    name: str  # Debian package (binary for kind "deb", source for kind "src")
    language: str  # python | c | lua
    kind: str  # "deb" or "src"
    about: str


EXTENSIONS = {"python": (".py",), "c": (".c", ".h"), "lua": (".lua",)}

# Reported: held out from every bundled corpus and from the tuning.
EVAL_PROJECTS = [
    Project("python3-jinja2", "python", "deb", "Jinja2 template engine"),
    Project("python3-paramiko", "python", "deb", "Paramiko SSH library"),
    Project("lua5.4", "c", "src", "the Lua 5.4 interpreter (C, 2-space indent)"),
    Project("jansson", "c", "src", "Jansson JSON library (C, 4-space indent)"),
    Project("vis", "lua", "deb", "vis editor: its Lua runtime and LPeg lexers"),
    Project("naev-data", "lua", "deb", "Naev space game: Lua missions, AI, UI"),
]

# Tuned on: never reported as results.
TUNING_PROJECTS = [
    Project("python3-click", "python", "deb", "Click"),
    Project("python3-werkzeug", "python", "deb", "Werkzeug"),
    Project("libyaml", "c", "src", "LibYAML (C, 4-space indent)"),
    Project("prosody-modules", "lua", "deb", "Prosody community modules"),
    Project("lua-lgi", "lua", "deb", "LGI GObject bindings"),
    Project("minetest-mod-mesecons", "lua", "deb", "Mesecons Minetest mod"),
]


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# --- fetching ---------------------------------------------------------------------------


def _deb_src_list(cache: Path) -> list[str]:
    """apt options for a private deb-src list (the system's sources, Types: deb-src)."""
    d = cache / "apt-src"
    lists = d / "lists"
    opts = [
        f"-o=Dir::Etc::sourcelist={d / 'src.sources'}",
        "-o=Dir::Etc::sourceparts=-",
        f"-o=Dir::State::Lists={lists}",
    ]
    if not (d / "updated").exists():
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        src = Path("/etc/apt/sources.list.d/debian.sources")
        text = src.read_text() if src.exists() else ""
        lines = ["Types: deb-src" if ln.strip() == "Types: deb" else ln for ln in text.splitlines()]
        (d / "src.sources").write_text("\n".join(lines) + "\n")
        subprocess.run(["apt-get", "-q", *opts, "update"], check=True, stdout=subprocess.DEVNULL)
        (d / "updated").write_text("ok\n")
    return opts


def fetch(project: Project, cache: Path) -> tuple[Path, str]:
    """Download and extract a project once; returns (root of its files, version)."""
    dest = cache / "projects" / project.name
    done = dest / ".version"
    if done.exists():
        return dest / "tree", done.read_text().strip()
    if dest.exists():
        shutil.rmtree(dest)
    dl = dest / "download"
    dl.mkdir(parents=True)
    tree = dest / "tree"
    tree.mkdir()
    if project.kind == "deb":
        subprocess.run(
            ["apt-get", "-q", "download", project.name],
            cwd=dl,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (deb,) = dl.glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
        version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
        ).stdout.strip()
    else:
        opts = _deb_src_list(cache)
        subprocess.run(
            ["apt-get", "-q", *opts, "source", "--download-only", project.name],
            cwd=dl,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (dsc,) = dl.glob("*.dsc")
        version = dsc.name.removesuffix(".dsc").split("_")[1]
        for tar in sorted(dl.glob("*.orig.tar.*")):  # upstream sources only, not debian/
            with tarfile.open(tar) as t:
                t.extractall(tree, filter="data")
    done.write_text(version + "\n")
    return tree, version


def project_files(tree: Path, language: str) -> list[Path]:
    exts = EXTENSIONS[language]
    out = []
    for p in tree.rglob("*"):
        if p.suffix in exts and p.is_file() and not p.is_symlink():
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(tree).as_posix())


# --- the LSTM: static bits and log-probabilities ------------------------------------------


def lstm_logprobs(model_path: Path, files: list[bytes], cache_dir: Path) -> tuple[list, float]:
    """Per file, the LSTM's natural-log distribution before each byte (float16 memmap rows),
    and the static bits of all files; each file one stream from its start after the
    boundary symbol (CharLSTM forward, chunks of 512 steps carrying the state)."""
    import torch

    from charcode.training.checkpoint import load_checkpoint

    key = hashlib.sha256(model_path.read_bytes())
    for d in files:
        key.update(hashlib.sha256(d).digest())
    key = key.hexdigest()[:24]
    total = sum(len(d) for d in files)
    path = cache_dir / f"{key}.f16"
    meta = cache_dir / f"{key}.json"
    if meta.exists() and path.exists() and path.stat().st_size == total * VOCAB * 2:
        arr = np.memmap(path, dtype=np.float16, mode="r", shape=(total, VOCAB))
        static = json.loads(meta.read_text())["static_bits"]
    else:
        cache_dir.mkdir(parents=True, exist_ok=True)
        model = load_checkpoint(model_path).model.eval()
        tmp = path.with_suffix(".tmp")
        arr = np.memmap(tmp, dtype=np.float16, mode="w+", shape=(max(total, 1), VOCAB))
        starts = np.concatenate([[0], np.cumsum([len(d) for d in files])]).astype(np.int64)
        # Files packed into `lanes` parallel streams, each file on chunk boundaries: a
        # lane's state is zeroed where a file starts, so every file is read from a
        # zero state after the boundary symbol, exactly as alone.
        chunk, lanes = 256, 16
        load = [0] * lanes
        plan: list[list[tuple[int, int]]] = [[] for _ in range(lanes)]  # (file, lane offset)
        for i in sorted(range(len(files)), key=lambda i: -len(files[i])):
            lane = min(range(lanes), key=lambda k: load[k])
            plan[lane].append((i, load[lane]))
            load[lane] += -(-(len(files[i]) + 1) // chunk) * chunk
        width = max(load) if files else 0
        sym = np.full((lanes, width), BOUNDARY, dtype=np.int64)
        reset = np.zeros((lanes, width // chunk + 1), dtype=bool)
        owner = np.full((lanes, width), -1, dtype=np.int64)  # global row of each output
        for lane, items in enumerate(plan):
            for i, off in items:
                n = len(files[i])
                sym[lane, off + 1 : off + 1 + n] = np.frombuffer(files[i], dtype=np.uint8)
                reset[lane, off // chunk] = True
                owner[lane, off : off + n] = starts[i] + np.arange(n)
        target = np.full((lanes, width), -1, dtype=np.int64)
        target[:, :-1] = sym[:, 1:]
        static = 0.0
        t0 = time.time()
        state = model.initial_state(lanes)
        with torch.inference_mode():
            for s in range(0, width, chunk):
                r = torch.from_numpy(reset[:, s // chunk])
                if r.any():
                    state = tuple(torch.where(r[None, :, None], 0.0, h) for h in state)
                act = np.flatnonzero(np.asarray(load) > s)  # lanes with text left
                ta = torch.from_numpy(act)
                sub = tuple(h[:, ta].contiguous() for h in state)
                logits, sub = model(torch.from_numpy(sym[act, s : s + chunk]), sub)
                for h, hs in zip(state, sub, strict=True):
                    h[:, ta] = hs
                lp = torch.log_softmax(logits.float(), dim=-1).numpy()
                own = owner[act, s : s + chunk]
                keep = own >= 0
                rows = lp[keep]
                tg = target[act, s : s + chunk][keep]
                static -= float(rows[np.arange(len(tg)), tg].sum())
                arr[own[keep]] = rows
                if (s // chunk) % 20 == 0:
                    log(
                        f"  LSTM {s + chunk}/{width} steps, {len(act)} lanes, {time.time() - t0:.0f} s"
                    )
        static /= np.log(2)
        arr.flush()
        del arr
        os.replace(tmp, path)
        meta.write_text(json.dumps({"static_bits": static, "model": str(model_path)}))
        arr = np.memmap(path, dtype=np.float16, mode="r", shape=(total, VOCAB))
    out = []
    at = 0
    for d in files:
        out.append(arr[at : at + len(d)])
        at += len(d)
    return out, static


# --- baselines ------------------------------------------------------------------------------


def compressed_bits(blob: bytes) -> dict[str, float | None]:
    res: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as td:
        src = Path(td) / "all.txt"
        src.write_bytes(blob)
        if shutil.which("xz"):
            out = subprocess.run(["xz", "-9e", "-c", str(src)], check=True, capture_output=True)
            res["xz"] = 8.0 * len(out.stdout)
        else:
            res["xz"] = None
        if shutil.which("7z"):
            arc = Path(td) / "out.7z"
            subprocess.run(
                ["7z", "a", "-t7z", "-m0=PPMd:o=8:mem=256m", str(arc), str(src)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            res["ppmd"] = 8.0 * arc.stat().st_size
        else:
            res["ppmd"] = None
    return res


# --- the adaptive engine ------------------------------------------------------------------


def adaptive_bits(files: list[bytes], lps: list | None, tuning: dict) -> float:
    from charcode.server.core.adaptive import AdaptiveModel

    m = AdaptiveModel(**tuning)
    bits = 0.0
    for i, d in enumerate(files):
        lp = None if lps is None else np.asarray(lps[i], dtype=np.float64)
        bits += float(m.score(d, lp).sum())
    return bits


def speed(files: list[bytes], lps: list, tuning: dict) -> dict[str, float]:
    from charcode.server.core.adaptive import CONTEXT_BYTES, AdaptiveModel

    total = sum(len(d) for d in files)
    m = AdaptiveModel(**tuning)
    t0 = time.perf_counter()
    for d in files:
        m.learn(d)
    learn_s = time.perf_counter() - t0
    # predict at 2000 positions spread over the files, LSTM rows from the cache
    rng = np.random.default_rng(0)
    picks = []
    for _ in range(2000):
        i = int(rng.integers(len(files)))
        if len(files[i]) < 2:
            continue
        j = int(rng.integers(1, len(files[i])))
        picks.append((files[i][max(0, j - CONTEXT_BYTES) : j], np.asarray(lps[i][j], np.float64)))
    t0 = time.perf_counter()
    for ctx, row in picks:
        m.predict(ctx, row)
    predict_us = (time.perf_counter() - t0) / max(1, len(picks)) * 1e6
    # score with the LSTM, on the first ~300 kB
    m2 = AdaptiveModel(**tuning)
    n = 0
    spent = 0.0
    for i, d in enumerate(files):
        lp = np.asarray(lps[i], dtype=np.float64)
        t0 = time.perf_counter()
        m2.score(d, lp)
        spent += time.perf_counter() - t0
        n += len(d)
        if n > 300_000:
            break
    return {
        "learn_MB_s": total / learn_s / 1e6,
        "predict_us": predict_us,
        "score_kB_s": n / spent / 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", choices=("eval", "tuning"), default="eval")
    ap.add_argument("--language", action="append", choices=sorted(EXTENSIONS))
    ap.add_argument("--project", action="append", help="only these packages")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache/charcode/adaptive-bench")
    ap.add_argument("--models", type=Path, default=ROOT / "training/models")
    ap.add_argument("--no-baselines", action="store_true", help="skip xz and PPMd")
    ap.add_argument("--no-speed", action="store_true", help="skip the throughput figures")
    ap.add_argument("--no-alone", action="store_true", help="skip the context models alone")
    ap.add_argument("--param", action="append", default=[], help="tuning knob NAME=VALUE")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the LSTM")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    tuning: dict = {}
    for kv in args.param:
        k, v = kv.split("=", 1)
        tuning[k] = int(v) if k == "limit" else float(v)
    projects = EVAL_PROJECTS if args.set == "eval" else TUNING_PROJECTS
    if args.language:
        projects = [p for p in projects if p.language in args.language]
    if args.project:
        projects = [p for p in projects if p.name in args.project]
    rows = []
    for p in projects:
        tree, version = fetch(p, args.cache)
        paths = project_files(tree, p.language)
        files = [f.read_bytes() for f in paths]
        chars = sum(len(d) for d in files)
        log(f"{p.name} {version}: {len(files)} files, {chars} bytes")
        model = args.models / f"{p.language}.safetensors"
        lps, static = lstm_logprobs(model, files, args.cache / "lstm")
        row: dict = {
            "project": p.name,
            "version": version,
            "language": p.language,
            "files": len(files),
            "chars": chars,
            "static": static / chars,
        }
        t0 = time.time()
        if not args.no_alone:
            row["alone"] = adaptive_bits(files, None, tuning) / chars
        row["mixed"] = adaptive_bits(files, lps, tuning) / chars
        log(f"  adaptive in {time.time() - t0:.1f} s")
        if not args.no_baselines:
            comp = compressed_bits(b"".join(files))
            row["xz"] = comp["xz"] / chars if comp["xz"] else None
            row["ppmd"] = comp["ppmd"] / chars if comp["ppmd"] else None
            if row["ppmd"]:
                row["mixed_vs_ppmd"] = row["mixed"] / row["ppmd"]
        if not args.no_speed:
            row.update(speed(files, lps, tuning))
        rows.append(row)
        print(json.dumps(row), flush=True)

    def f(v, fmt="{:.3f}"):
        return fmt.format(v) if isinstance(v, float) else "-"

    print()
    print(
        f"{'project':24} {'version':28} {'kB':>6} {'static':>7} {'alone':>7} {'mixed':>7} "
        f"{'xz-9e':>7} {'PPMd8':>7} {'mix/PPMd':>8} {'learn MB/s':>10} {'pred µs':>8} {'score kB/s':>10}"
    )
    for r in rows:
        print(
            f"{r['project']:24} {r['version']:28} {r['chars'] / 1e3:6.0f} {f(r['static']):>7} "
            f"{f(r.get('alone')):>7} {f(r['mixed']):>7} {f(r.get('xz')):>7} {f(r.get('ppmd')):>7} "
            f"{f(r.get('mixed_vs_ppmd')):>8} {f(r.get('learn_MB_s'), '{:.2f}'):>10} "
            f"{f(r.get('predict_us'), '{:.0f}'):>8} {f(r.get('score_kB_s'), '{:.0f}'):>10}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"set": args.set, "tuning": tuning, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
