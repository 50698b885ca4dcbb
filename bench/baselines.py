"""Compression and n-gram baselines on a corpus's held-out files, beside a charcode model.

    .venv/bin/python bench/baselines.py --language c --repo /work/corpora/c [--model M] [--json]

The held-out text is exactly what `charcode train` validates on: charcode's own corpus
builder (training/corpus.py, build_corpus) lists, filters and splits the files by path
hash, with the same --val-fraction (default: the val_fraction in the folder's MANIFEST.json
written by `charcode corpus`, else charcode train's default 0.05). Above --val-cap bytes,
whole documents are taken at even intervals. On that text it measures, in bits per byte:

- gzip -9, bzip2 -9, xz -9e, zstd -19 (pip zstandard) and PPMd order 8 (pip pyppmd): the
  held-out files compressed as one stream, so each adapts to the text it compresses;
- a static byte-level n-gram model (default 16-gram), interpolated modified Kneser-Ney
  (Chen & Goodman 1998), trained on the training split (up to --train-cap bytes of whole
  documents at even intervals) and evaluated on the held-out text without adaptation;
- with --model, a charcode checkpoint's bits/char (charcode.training.evaluate.bits_per_char)
  on the same held-out symbols.

Bits per byte equal bits per character here: charcode's characters are bytes.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import lzma
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

BOUNDARY = 256  # charcode.training.symbols.BOUNDARY (kept here so the n-gram code stands alone)
VOCAB = 257

# --- sampling whole documents ---------------------------------------------------------------


def document_starts(symbols: np.ndarray) -> np.ndarray:
    """Positions of the document-boundary symbols (each document starts with one)."""
    return np.flatnonzero(np.asarray(symbols) == BOUNDARY)


def sample_documents(symbols: np.ndarray, cap: int) -> np.ndarray:
    """All of `symbols` when it fits in cap, else whole documents at even intervals (about
    cap/len of them, in order), cut to cap symbols."""
    symbols = np.asarray(symbols)
    if len(symbols) <= cap:
        return np.array(symbols, dtype=np.uint16)
    starts = document_starts(symbols)
    if len(starts) == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    ends = np.append(starts[1:], len(symbols))
    frac = cap / len(symbols)
    i = np.arange(len(starts))
    keep = np.floor((i + 1) * frac) > np.floor(i * frac)
    parts = [symbols[s:e] for s, e in zip(starts[keep], ends[keep], strict=True)]
    return np.concatenate(parts)[:cap].astype(np.uint16)


def text_bytes(symbols: np.ndarray) -> bytes:
    """The UTF-8 bytes of the documents, boundaries dropped."""
    symbols = np.asarray(symbols)
    return symbols[symbols != BOUNDARY].astype(np.uint8).tobytes()


# --- compressors --------------------------------------------------------------------------


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19).compress(data)


def _ppmd(data: bytes) -> bytes:
    import pyppmd

    return pyppmd.compress(data, max_order=8, mem_size=256 << 20)


COMPRESSORS: dict[str, tuple[Callable[[bytes], bytes], str | None]] = {
    "gzip -9": (lambda d: gzip.compress(d, compresslevel=9, mtime=0), None),
    "bzip2 -9": (lambda d: bz2.compress(d, compresslevel=9), None),
    "xz -9e": (lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), None),
    "zstd -19": (_zstd, "zstandard"),
    "PPMd order 8": (_ppmd, "pyppmd"),
}


def compressor_bits(data: bytes, names: list[str] | None = None) -> list[dict]:
    """Bits per byte of each compressor on data (one stream); a compressor whose module is
    not installed gets bits_per_byte None and a note."""
    results = []
    for name in names or list(COMPRESSORS):
        fn, module = COMPRESSORS[name]
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                results.append(
                    {
                        "method": name,
                        "bits_per_byte": None,
                        "seconds": None,
                        "note": f"skipped: pip install {module}",
                    }
                )
                continue
        t0 = time.perf_counter()
        size = len(fn(data))
        results.append(
            {
                "method": name,
                "bits_per_byte": 8 * size / len(data),
                "seconds": time.perf_counter() - t0,
                "note": f"{size:,} bytes compressed",
            }
        )
    return results


# --- interpolated modified Kneser-Ney over bytes ---------------------------------------------

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_SYMBOL_BITS = 9  # 257 symbols
_CONTEXT_BITS = 46  # hash of an n-gram's context; with its last symbol a key of 55 bits


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64 that scatters nearby keys."""
    h = h ^ (h >> np.uint64(30))
    h *= _M1
    h ^= h >> np.uint64(27)
    h *= _M2
    h ^= h >> np.uint64(31)
    return h


def _extend_keys(keys: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Keys of the n-grams ending at each position, from the keys of the (n-1)-grams.

    The key of an n-gram is (hash of its first n-1 symbols) << 9 | its last symbol, the
    hash being the top 46 bits of the mixed (n-1)-gram key: so sorted keys are grouped by
    context, and key >> 9 is the context's own key. Keys of 1-grams are the symbols
    (context 0). Position 0 gets a dummy key; before position n-1 there is no n-gram
    (callers slice those off)."""
    out = np.zeros_like(keys)
    out[1:] = _mix(keys[:-1]) >> np.uint64(64 - _CONTEXT_BITS) << np.uint64(_SYMBOL_BITS)
    out[1:] |= symbols[1:].astype(np.uint64)
    return out


def _run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in a sorted array."""
    new = np.empty(len(sorted_keys), dtype=bool)
    new[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    return np.flatnonzero(new)


def _runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values of a sorted array, where each starts, and how many of each."""
    starts = _run_starts(sorted_keys)
    return sorted_keys[starts], starts, np.diff(np.append(starts, len(sorted_keys)))


def kn_discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """Chen & Goodman's estimates of D1, D2, D3+ from the count-of-counts n1..n4:
    Y = n1 / (n1 + 2 n2), Dk = k - (k + 1) Y n(k+1) / nk; each kept within [0.01, k]."""
    n = [int(np.count_nonzero(counts == k)) for k in range(1, 5)]
    y = n[0] / (n[0] + 2 * n[1]) if n[0] + 2 * n[1] else 0.5
    out = []
    for k in (1, 2, 3):
        d = k - (k + 1) * y * n[k] / n[k - 1] if n[k - 1] else 0.5 * k
        out.append(min(max(d, 0.01), float(k)))
    return out[0], out[1], out[2]


def _order_table(train: np.ndarray, keys: np.ndarray, n: int, top: bool):
    """Order n's n-grams (sorted keys) and counts: raw counts of the n-gram tokens at the
    top order, else the number of distinct symbols seen just before each n-gram."""
    if top:
        grams, _, counts = _runs(np.sort(keys[n - 1 :]))
        return grams, counts
    # (n+1)-grams as (key of their last n symbols) << 9 | their first symbol
    ext = keys[n:] << np.uint64(_SYMBOL_BITS)
    ext |= train[: len(train) - n].astype(np.uint64)
    ext.sort()
    distinct = ext[_run_starts(ext)]
    del ext
    grams, _, counts = _runs(distinct >> np.uint64(_SYMBOL_BITS))
    return grams, counts


def _lookup(table: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of sorted queries in the sorted table, and whether each was found."""
    if len(table) == 0:
        return np.zeros(len(queries), dtype=np.int64), np.zeros(len(queries), dtype=bool)
    idx = np.searchsorted(table, queries)
    idx[idx == len(table)] = 0
    return idx, table[idx] == queries


def kn_log2_probs(
    train: np.ndarray,
    test: np.ndarray,
    order: int,
    discounts: list[tuple[float, float, float]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> np.ndarray:
    """log2 p(test[j] | test[:j]) for j = 1 .. len(test) - 1 under an interpolated modified
    Kneser-Ney model of n-grams up to `order` symbols, trained on `train`.

    p_n(w | h) = max(c(hw) - D(c), 0) / c(h.) + (D1 N1(h.) + D2 N2(h.) + D3 N3+(h.)) / c(h.)
    * p_{n-1}(w | h'), p_0 = 1/257, and p_n = p_{n-1} for a context h never seen. c is the
    raw count at the highest order and the number of distinct one-symbol left extensions
    below it. N-grams are identified by hashes (a 46-bit hash of the context and the last
    symbol; the few collisions among millions of contexts do not move the figure).
    `discounts[n-1]` overrides the estimated (D1, D2, D3+) of order n. Orders are built one
    at a time, by sorting, and folded into the test probabilities, so memory holds one
    order's tables at a time.
    """
    say = progress or (lambda _m: None)
    train = np.asarray(train, dtype=np.uint16)
    test = np.asarray(test, dtype=np.uint16)
    targets = np.arange(1, len(test))
    p = np.full(len(targets), 1.0 / VOCAB)
    tr_keys = train.astype(np.uint64)
    te_keys = test.astype(np.uint64)
    for n in range(1, order + 1):
        t0 = time.perf_counter()
        if len(train) < n + (n < order):
            break
        grams, counts = _order_table(train, tr_keys, n, top=n == order)
        ctx_keys, starts, _ = _runs(grams >> np.uint64(_SYMBOL_BITS))
        total = np.add.reduceat(counts, starts)
        nk = [np.add.reduceat((counts == k).astype(np.int64), starts) for k in (1, 2)]
        nk.append(np.add.reduceat((counts >= 3).astype(np.int64), starts))
        d1, d2, d3 = discounts[n - 1] if discounts else kn_discounts(counts)
        gamma_num = d1 * nk[0] + d2 * nk[1] + d3 * nk[2]
        # fold order n into the probabilities of the test positions that have n-1 symbols
        # of history, looked up in sorted order (much faster than at random)
        sel = np.flatnonzero(targets >= n - 1)
        queries = te_keys[targets[sel]]
        by_key = np.argsort(queries, kind="stable")
        sel, queries = sel[by_key], queries[by_key]
        ci, cfound = _lookup(ctx_keys, queries >> np.uint64(_SYMBOL_BITS))
        gi, gfound = _lookup(grams, queries)
        c = np.where(gfound, counts[gi], 0)
        d = np.select([c == 0, c == 1, c == 2], [0.0, d1, d2], d3)
        t = np.where(cfound, total[ci], 1)
        new = np.maximum(c - d, 0.0) / t + gamma_num[ci] / t * p[sel]
        p[sel] = np.where(cfound, new, p[sel])
        say(
            f"order {n}: {len(grams):,} n-grams, {len(ctx_keys):,} contexts, "
            f"D=({d1:.3f}, {d2:.3f}, {d3:.3f}) [{time.perf_counter() - t0:.1f} s]"
        )
        del grams, counts, ctx_keys, starts, total, nk, gamma_num
        if n < order:
            tr_keys = _extend_keys(tr_keys, train)
            te_keys = _extend_keys(te_keys, test)
    return np.log2(p)


def kn_bits_per_byte(
    train: np.ndarray,
    test: np.ndarray,
    order: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[float, int]:
    """Mean bits per predicted byte of test (boundary symbols are context only)."""
    test = np.asarray(test, dtype=np.uint16)
    logp = kn_log2_probs(train, test, order, progress=progress)
    scored = test[1:] != BOUNDARY
    n = int(scored.sum())
    return float(-logp[scored].sum() / max(1, n)), n


# --- the command ----------------------------------------------------------------------------


def _default_val_fraction(repos: list[Path]) -> tuple[float, str]:
    for repo in repos:
        try:
            manifest = json.loads((repo / "MANIFEST.json").read_text("utf-8"))
            return float(manifest["val_fraction"]), f"{repo / 'MANIFEST.json'}"
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return 0.05, "charcode train's default"


def run(args) -> dict:
    from charcode.training.corpus import build_corpus

    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    repos = [Path(r).expanduser() for r in args.repo]
    val_fraction, source = (
        (args.val_fraction, "--val-fraction")
        if args.val_fraction is not None
        else _default_val_fraction(repos)
    )
    say(f"validation fraction {val_fraction} ({source})")
    t0 = time.perf_counter()
    corpus = build_corpus(
        repos,
        args.language,
        cache_dir=args.cache_dir,
        val_fraction=val_fraction,
        progress=say,
    )
    corpus_s = time.perf_counter() - t0
    if len(corpus.val) < 2:
        raise SystemExit("baselines: the corpus has no validation files; add files or repos")
    if args.val_chars:
        heldout = np.array(corpus.val[: args.val_chars + 1], dtype=np.uint16)
    else:
        heldout = sample_documents(corpus.val, args.val_cap)
    data = text_bytes(heldout)
    heldout_docs = len(document_starts(heldout))
    summary = corpus.summary
    out: dict = {
        "language": args.language,
        "repos": [str(r) for r in repos],
        "val_fraction": val_fraction,
        "corpus": {
            k: summary.get(k)
            for k in ("files", "bytes", "train_files", "train_bytes", "val_files", "val_bytes")
        },
        "corpus_sha256": summary.get("sha256"),
        "corpus_seconds": round(corpus_s, 1),
        "heldout": {"documents": heldout_docs, "bytes": len(data)},
        "results": [],
    }
    say(
        f"held-out text: {heldout_docs:,} documents, {len(data):,} bytes "
        f"(validation split {summary.get('val_files')} files, {summary.get('val_bytes'):,} bytes)"
    )
    results = out["results"]
    if not args.skip_compressors:
        for r in compressor_bits(data):
            results.append(r)
            if r["bits_per_byte"] is not None:
                say(f"{r['method']}: {r['bits_per_byte']:.4f} bits/byte [{r['seconds']:.1f} s]")
    if args.order > 0:
        train = sample_documents(corpus.train, args.train_cap)
        train_bytes = int(np.count_nonzero(train != BOUNDARY))
        t0 = time.perf_counter()
        bits, n = kn_bits_per_byte(train, heldout, args.order, progress=say)
        results.append(
            {
                "method": f"{args.order}-gram Kneser-Ney",
                "bits_per_byte": bits,
                "seconds": time.perf_counter() - t0,
                "note": f"static, trained on {train_bytes:,} bytes of the training split",
            }
        )
        out["ngram_train_bytes"] = train_bytes
    if args.model:
        results.append(_model_result(args.model, heldout, args.threads))
    return out


def _model_result(path: Path, heldout: np.ndarray, threads: int) -> dict:
    import torch

    from charcode.training.checkpoint import load_checkpoint
    from charcode.training.evaluate import bits_per_char

    torch.set_num_threads(threads)
    ckpt = load_checkpoint(path, device="cpu")
    t0 = time.perf_counter()
    bits, chars = bits_per_char(ckpt.model, heldout, "cpu")
    cfg = ckpt.model.config
    return {
        "method": f"charcode {cfg.layers}x{cfg.hidden} LSTM",
        "bits_per_byte": bits,
        "seconds": time.perf_counter() - t0,
        "note": f"{Path(path).name}, {chars:,} characters",
    }


def format_table(out: dict) -> str:
    h = out["heldout"]
    lines = [
        f"{out['language']}: held-out {h['documents']:,} files, {h['bytes']:,} bytes "
        f"(val fraction {out['val_fraction']}; corpus {out['corpus']['files']:,} files, "
        f"{out['corpus']['bytes']:,} bytes)",
        f"{'method':<28} {'bits/byte':>9} {'seconds':>8}  note",
    ]
    for r in out["results"]:
        bits = "-" if r["bits_per_byte"] is None else f"{r['bits_per_byte']:.3f}"
        secs = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        lines.append(f"{r['method']:<28} {bits:>9} {secs:>8}  {r['note']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--language", "-l", required=True)
    ap.add_argument("--repo", action="append", required=True, help="corpus folder (repeatable)")
    ap.add_argument(
        "--val-fraction",
        type=float,
        help="as given to charcode train (default: the MANIFEST.json's, else 0.05)",
    )
    ap.add_argument("--cache-dir", type=Path, help="charcode's corpus cache (as for train)")
    ap.add_argument(
        "--val-cap", type=int, default=5_000_000, help="held-out symbols at most (whole files)"
    )
    ap.add_argument(
        "--val-chars",
        type=int,
        help="instead: the first N held-out symbols, as `charcode train --val-chars N` scores",
    )
    ap.add_argument("--train-cap", type=int, default=20_000_000, help="n-gram training symbols")
    ap.add_argument("--order", type=int, default=16, help="n-gram order (0: skip the n-gram)")
    ap.add_argument("--skip-compressors", action="store_true")
    ap.add_argument("--model", type=Path, help="a charcode checkpoint to score alongside")
    ap.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    from charcode.training.corpus import CorpusError
    from charcode.training.languages import UnknownLanguage

    try:
        out = run(args)
    except (CorpusError, UnknownLanguage) as e:
        print(f"baselines: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=1) if args.json else format_table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
