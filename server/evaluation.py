"""`charcode eval --task keystrokes|hallucinate`: what a user feels, measured through the server.

Both tasks drive the language server's own code, not a copy of it:

- keystrokes: a simulated user types each file from its start. Every keystroke is
  a ``textDocument/didChange`` through ``sync.did_change`` and every request a
  ``textDocument/inlineCompletion`` through ``inline.inline_completion`` (its
  trigger rule, ``inlineMaxLength`` and greedy decoding on the snapshot engine,
  so a keystroke costs one LSTM step as in the server). Where ghost text is
  shown, the user accepts it with one keystroke (Tab) if it is exactly the text
  that comes next up to a token end; with partial accept the user may instead
  accept its longest correct prefix that ends on a token boundary (VS Code's
  "accept next word", repeated, counted as one keystroke). The word baseline
  (word_baseline.py) is typed the same way in the same run.
- hallucinate: ``charcode.hallucinateFunction`` at the start of an empty document
  (``hallucinate._parse`` and ``hallucinate.sample``: the language's function
  prime, its stop rule, temperature sampling) for seeds 0..N-1, each function
  checked by validity.py.

Counting (docs/EVAL.md has the reasoning): a keystroke types one character (a
CRLF line break is one Enter). With ``free_indent`` (the default) the editor is
taken to indent each new line perfectly, so leading indentation costs nothing
and is not counted as a character, for charcode and the baseline alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types

from charcode.training import cli as training_cli
from charcode.training.cli import CliError
from charcode.training.symbols import utf8_complete_prefix

from . import hallucinate, inline, sync
from .decode import is_word_byte
from .document import decode, encode
from .guard import guard_for
from .runtime import Runtime
from .server import CharcodeServer
from .settings import Settings
from .word_baseline import WordCompleter

DEFAULT_MAX_FILES = 20
DEFAULT_MAX_CHARS = 2000
DEFAULT_FUNCTION_CHARS = 3000
MAX_FUNCTION_CHARS = 100_000  # charcode.hallucinateFunction's maxChars limit


def _never() -> bool:
    return False


# ---------------------------------------------------------------- the server, in process


class _DirectRunner:
    """Stands in for server.runner.Runner: runs the job at once on this thread and times it."""

    def __init__(self):
        self.seconds: list[float] = []

    async def run(self, key, fn, *args, stale=None, count=True):
        t = time.perf_counter()
        result = fn(*args, should_stop=stale or _never)
        self.seconds.append(time.perf_counter() - t)
        return result


@dataclass
class _Loaded:
    runtime: Runtime


class _OneModel:
    """Stands in for server.models.ModelManager with one loaded model."""

    def __init__(self, language: str, runtime: Runtime):
        self.language, self.model = language, _Loaded(runtime)

    def get(self, language: str, quiet: bool = False):
        return self.model if language == self.language else None


class EvalSession(CharcodeServer):
    """The language server without its LSP I/O: the feature handlers are called directly.

    Its state is the real server's (documents, snapshot engine, settings defaults,
    whatever else the handlers keep on it), except that it holds one model and runs
    model work at once on the calling thread, timing each call.
    """

    def __init__(
        self,
        runtime: Runtime,
        language: str,
        settings: Settings | None = None,
        encoding: str = "utf-16",
    ):
        super().__init__()
        self.language = language
        self.settings = settings or Settings()
        self._encoding = encoding
        self.models = _OneModel(language, runtime)
        self.runner.shutdown()
        self.runner = _DirectRunner()

    @property
    def encoding(self) -> str:  # the server's comes from the initialize handshake
        return self._encoding

    def open(self, uri: str, text: str = "") -> None:
        item = types.TextDocumentItem(uri=uri, language_id=self.language, version=0, text=text)
        sync.did_open(self, types.DidOpenTextDocumentParams(text_document=item))

    def close(self, uri: str) -> None:
        ident = types.TextDocumentIdentifier(uri=uri)
        sync.did_close(self, types.DidCloseTextDocumentParams(text_document=ident))

    def end(self, uri: str) -> types.Position:
        doc = self.documents.get(uri)
        return doc.position_at(len(doc.data), self.encoding)

    def append(self, uri: str, text: str) -> None:
        """Type (or accept) text at the end of the document: one didChange."""
        doc = self.documents.get(uri)
        end = self.end(uri)
        change = types.TextDocumentContentChangePartial(
            range=types.Range(start=end, end=end), text=text
        )
        ident = types.VersionedTextDocumentIdentifier(uri=uri, version=doc.version + 1)
        sync.did_change(
            self, types.DidChangeTextDocumentParams(text_document=ident, content_changes=[change])
        )

    async def inline_at_end(self, uri: str) -> str | None:
        """textDocument/inlineCompletion at the end of the document: the ghost text, or None."""
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=self.end(uri),
        )
        result = await inline.inline_completion(self, params)
        items = result.items if isinstance(result, types.InlineCompletionList) else result
        if not items:
            return None
        text = items[0].insert_text
        return text if isinstance(text, str) else text.value


class CharcodeCompleter:
    """charcode's inline completion, as the simulated user sees it."""

    name = "charcode"

    def __init__(self, session: EvalSession):
        self.session = session
        self.uri = ""
        self.latencies: list[float] = []  # seconds per engine call (state_at + decoding)

    def start(self, uri: str) -> None:
        self.uri = uri
        self.latencies = []
        self.session.open(uri)

    def insert(self, data: bytes) -> None:
        self.session.append(self.uri, decode(data))

    async def suggest(self) -> bytes | None:
        calls = len(self.session.runner.seconds)
        text = await self.session.inline_at_end(self.uri)
        self.latencies.extend(self.session.runner.seconds[calls:])
        return encode(text) if text else None

    def finish(self) -> None:
        self.session.close(self.uri)


# ---------------------------------------------------------------- the simulated user

_WORD, _SPACE, _OTHER = 0, 1, 2


def _kind(b: int) -> int:
    return _WORD if is_word_byte(b) else _SPACE if b in (0x20, 0x09) else _OTHER


def is_boundary(text: bytes, i: int) -> bool:
    """Is offset i a token boundary of text: its ends, between an identifier, a run of
    blanks and anything else, and on both sides of every other character."""
    if i <= 0 or i >= len(text):
        return True
    a, b = _kind(text[i - 1]), _kind(text[i])
    return a != b or a == _OTHER


@dataclass
class Script:
    """What there is to type: the text, each keystroke's span, and the free indentation."""

    text: bytes
    cost: list[int]  # cost[i]: keystrokes to type text[:i] unaided (at unit ends)
    unit_end: dict[int, int]  # start of a unit (a character, or CRLF) -> its end
    indent_end: dict[int, int]  # line start -> end of its leading blanks (when free)

    @classmethod
    def of(cls, text: bytes, free_indent: bool = True) -> Script:
        cost = [0] * (len(text) + 1)
        unit_end, indent_end = {}, {}
        i, n, typed = 0, len(text), 0
        line_start = True
        while i < n:
            if line_start and free_indent:
                j = i
                while j < n and text[j] in (0x20, 0x09):
                    j += 1
                if j > i:
                    indent_end[i] = j
                    for k in range(i + 1, j + 1):
                        cost[k] = typed
                    i = j
                    line_start = False
                    continue
            b = text[i]
            if b == 0x0D and text[i + 1 : i + 2] == b"\n":
                j = i + 2
            elif b < 0x80:
                j = i + 1
            else:
                j = i + 1
                while j < n and (text[j] & 0xC0) == 0x80:
                    j += 1
            typed += 1
            unit_end[i] = j
            for k in range(i + 1, j + 1):
                cost[k] = typed
            line_start = b in (0x0A, 0x0D)
            i = j
        return cls(text, cost, unit_end, indent_end)

    @property
    def chars(self) -> int:
        return self.cost[-1]


@dataclass
class Typing:
    """Counts from typing one or more files with one completer."""

    chars: int = 0  # keystrokes to type the text unaided
    keystrokes: int = 0  # keystrokes used
    shown: int = 0  # requests answered with a suggestion
    accepted_full: int = 0
    accepted_partial: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds

    def add(self, other: Typing) -> None:
        self.chars += other.chars
        self.keystrokes += other.keystrokes
        self.shown += other.shown
        self.accepted_full += other.accepted_full
        self.accepted_partial += other.accepted_partial
        self.latencies.extend(other.latencies)

    @property
    def saved(self) -> float:
        return 1 - self.keystrokes / self.chars if self.chars else 0.0

    def summary(self) -> dict:
        accepted = self.accepted_full + self.accepted_partial
        return {
            "keystrokes_saved": round(self.saved, 4),
            "acceptance_rate": round(accepted / self.shown, 4) if self.shown else 0.0,
            "shown_per_100_chars": round(100 * self.shown / self.chars, 2) if self.chars else 0.0,
            "chars": self.chars,
            "keystrokes": self.keystrokes,
            "shown": self.shown,
            "accepted": accepted,
            "accepted_full": self.accepted_full,
            "accepted_partial": self.accepted_partial,
            "latency_ms": latency_summary(self.latencies),
        }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks."""
    if not values:
        return 0.0
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def latency_summary(seconds: list[float]) -> dict:
    ms = [1000 * s for s in seconds]
    return {
        "p50": round(percentile(ms, 50), 3),
        "p95": round(percentile(ms, 95), 3),
        "mean": round(statistics.fmean(ms), 3) if ms else 0.0,
        "max": round(max(ms), 3) if ms else 0.0,
        "calls": len(ms),
    }


def accept_length(script: Script, p: int, suggestion: bytes, partial: bool) -> tuple[int, bool]:
    """(bytes the user accepts at p, whether that is the whole suggestion); (0, False) if none."""
    text = script.text
    rest = text[p : p + len(suggestion)]
    m = 0
    while m < len(rest) and rest[m] == suggestion[m]:
        m += 1
    if m == len(suggestion) and is_boundary(text, p + m):
        return m, True
    if not partial:
        return 0, False
    k = m
    while k > 0 and not is_boundary(text, p + k):
        k -= 1
    if script.cost[p + k] - script.cost[p] >= 2:  # one keystroke for one character saves nothing
        return k, False
    return 0, False


async def type_text(script: Script, completer, uri: str, partial: bool = False) -> Typing:
    """The simulated user types script.text into an empty document, with the completer's help."""
    out = Typing(chars=script.chars)
    completer.start(uri)
    timed = len(completer.latencies)
    try:
        text, n, p = script.text, len(script.text), 0
        while p < n:
            if p in script.indent_end:  # the editor indents the new line
                completer.insert(text[p : script.indent_end[p]])
                p = script.indent_end[p]
                continue
            suggestion = await completer.suggest()
            if suggestion:
                out.shown += 1
                k, whole = accept_length(script, p, suggestion, partial)
                if k:
                    completer.insert(text[p : p + k])
                    out.keystrokes += 1
                    out.accepted_full += whole
                    out.accepted_partial += not whole
                    p += k
                    continue
            j = script.unit_end[p]
            completer.insert(text[p:j])
            out.keystrokes += 1
            p = j
    finally:
        completer.finish()
    out.latencies = completer.latencies[timed:]
    return out


def head(data: bytes, max_chars: int | None) -> bytes:
    """The first max_chars characters, cut back to the end of a line when one ends in them."""
    text = data.decode("utf-8", "replace")
    if max_chars is None or len(text) <= max_chars:
        return encode(text)
    cut = text[:max_chars]
    nl = cut.rfind("\n")
    return encode(cut[: nl + 1] if nl >= 0 else cut)


# ---------------------------------------------------------------- the tasks


def evaluate_keystrokes(
    runtime: Runtime,
    language: str,
    texts: list[tuple[str, bytes]],
    settings: Settings | None = None,
    free_indent: bool = True,
    progress=None,
) -> dict:
    """Type each (name, text) with charcode (full accept, then partial accept) and with the
    word baseline; the counts per completer and per file."""
    session = EvalSession(runtime, language, settings)
    runs = {
        "charcode": (CharcodeCompleter(session), False),
        "charcode_partial": (CharcodeCompleter(session), True),
        "word_baseline": (WordCompleter(), False),
    }
    totals = {name: Typing() for name in runs}
    per_file = []

    async def go():
        for i, (name, text) in enumerate(texts):
            script = Script.of(text, free_indent)
            row = {"file": name, "chars": script.chars}
            for run, (completer, partial) in runs.items():
                typed = await type_text(script, completer, f"eval:///{run}/{i}", partial)
                totals[run].add(typed)
                row[run] = round(typed.saved, 4)
            per_file.append(row)
            if progress is not None:
                progress(script.chars)

    asyncio.run(go())
    charcode = totals["charcode"].summary()
    charcode["partial_accept"] = totals["charcode_partial"].summary()
    return {
        "task": "keystrokes",
        "language": language,
        "files": len(texts),
        "chars": totals["charcode"].chars,
        "settings": {
            "inline_max_length": session.settings.inline_max_length,
            "free_indent": free_indent,
        },
        "charcode": charcode,
        "word_baseline": totals["word_baseline"].summary(),
        "per_file": per_file,
    }


def evaluate_hallucinate(
    runtime: Runtime,
    language: str,
    seeds: int,
    max_chars: int = DEFAULT_FUNCTION_CHARS,
    temperature: float | None = None,
    progress=None,
    syntax_check: bool = True,
) -> dict:
    """Hallucinate functions for seeds 0..seeds-1 and check their syntax."""
    from .validity import Unavailable, Verdict, checker

    session = EvalSession(runtime, language)
    temperature = session.settings.temperature if temperature is None else temperature
    try:
        judge = checker(language)
        tool, unavailable = judge.tool, None
    except Unavailable as e:
        judge, tool, unavailable = None, None, str(e)
    uri = "eval:///hallucinate"
    session.open(uri)
    rows = []
    for seed in range(seeds):
        arg = {
            "uri": uri,
            "position": {"line": 0, "character": 0},
            "temperature": temperature,
            "maxChars": max_chars,
            "seed": seed,
            "syntaxCheck": syntax_check,
        }
        request = hallucinate._parse(session, (arg,))
        result = hallucinate.sample(session, request, None, should_stop=_never)
        text = decode(result.text)
        verdict = judge.check(text) if judge is not None else None
        if verdict is not None and result.reason == "declarations":
            verdict = Verdict(False, "no function: only declarations")
        rows.append(
            {
                "seed": seed,
                "chars": len(text),
                "stopped": result.reason,
                "valid": None if verdict is None else verdict.valid,
                "error": None if verdict is None else verdict.error,
                "text": text,
            }
        )
        if progress is not None:
            progress(1)
    session.close(uri)
    summary = hallucination_summary(language, rows, tool, unavailable, temperature, max_chars)
    summary["syntax_guard"] = syntax_check and guard_for(language) is not None
    return summary


def hallucination_summary(
    language: str,
    rows: list[dict],
    tool: str | None,
    unavailable: str | None,
    temperature: float,
    max_chars: int,
) -> dict:
    n = len(rows)
    by_rule = [r for r in rows if r["stopped"] == "end_of_function"]
    stopped: dict[str, int] = {}
    for r in rows:
        stopped[r["stopped"]] = stopped.get(r["stopped"], 0) + 1

    def rate(group: list[dict]) -> float | None:
        if unavailable is not None or not group:
            return None
        return round(sum(r["valid"] for r in group) / len(group), 4)

    return {
        "task": "hallucinate",
        "language": language,
        "seeds": n,
        "temperature": temperature,
        "max_chars": max_chars,
        "checker": tool,
        "checker_unavailable": unavailable,
        "validity_rate": rate(rows),
        "validity_rate_stopped_by_rule": rate(by_rule),
        "mean_chars": round(statistics.fmean(r["chars"] for r in rows), 1) if rows else 0.0,
        "stop_rule_share": round(len(by_rule) / n, 4) if n else 0.0,
        "stopped": stopped,
        "functions": [{k: v for k, v in r.items() if k != "text"} for r in rows],
        "invalid_examples": [
            {"seed": r["seed"], "error": r["error"], "text": r["text"]}
            for r in rows
            if r["valid"] is False
        ][:3],
    }


# ---------------------------------------------------------------- the command


def cmd_eval(args) -> int:
    """`charcode eval --task keystrokes|hallucinate` (bits stays in charcode.training.cli)."""
    import torch

    torch.set_num_threads(int(os.environ.get("CHARCODE_THREADS", "1")))  # as the server runs
    plot = training_cli.check_plot(args)
    ckpt = training_cli.resolve_model(args)
    language = args.language or ckpt.language
    if not language:
        raise CliError(f"{args.model} does not say its language; pass --language")
    training_cli.get_language(language)
    runtime = Runtime(ckpt.model, next(ckpt.model.parameters()).device)
    name = ckpt.path.name
    if args.task == "keystrokes":
        result = _keystrokes(args, runtime, language, ckpt)
    elif args.task == "hallucinate":
        result = _hallucinate(args, runtime, language)
    else:
        raise CliError(f"unknown task {args.task}")
    result["model"] = str(ckpt.path)
    if plot:
        result["plot"] = str(_draw(result, args.plot, name))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(format_result(result))
    return 0


def _keystrokes(args, runtime: Runtime, language: str, ckpt) -> dict:
    files = training_cli.eval_files(args, language, ckpt, default_max_files=DEFAULT_MAX_FILES)
    max_chars = args.max_chars or DEFAULT_MAX_CHARS
    texts = []
    for f in files:
        with open(f, "rb") as fh:  # a character is at most 4 bytes
            texts.append((str(f), head(utf8_complete_prefix(fh.read(4 * max_chars)), max_chars)))
    total = sum(Script.of(t).chars for _, t in texts)
    with _bar(total, "chars") as bar:
        result = evaluate_keystrokes(runtime, language, texts, progress=bar.update)
    result["settings"].update(max_files=len(files), max_chars=max_chars, split=args.split)
    return result


def _hallucinate(args, runtime: Runtime, language: str) -> dict:
    if args.paths:
        print("charcode: note: --task hallucinate reads no files; PATHs ignored", file=sys.stderr)
    max_chars = args.max_chars or DEFAULT_FUNCTION_CHARS
    if max_chars > MAX_FUNCTION_CHARS:
        raise CliError(f"--max-chars for hallucinate is at most {MAX_FUNCTION_CHARS:,}")
    if args.temperature is not None and not 0 <= args.temperature <= 5:
        raise CliError(f"--temperature must be from 0 to 5, got {args.temperature}")
    with _bar(args.seeds, "functions") as bar:
        return evaluate_hallucinate(
            runtime,
            language,
            args.seeds,
            max_chars,
            args.temperature,
            progress=bar.update,
            syntax_check=args.syntax_check,
        )


def _bar(total: int, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, disable=None, leave=False)


def format_result(r: dict) -> str:
    if r["task"] == "keystrokes":
        lines = [
            f"{r['files']} {r['language']} file(s), {r['chars']:,} characters to type "
            f"(inlineMaxLength {r['settings']['inline_max_length']}, indentation free: "
            f"{r['settings']['free_indent']})",
            f"{'':22}{'saved':>8}{'accepted':>10}{'shown/100ch':>13}{'p50 ms':>9}{'p95 ms':>9}",
        ]
        for label, s in (
            ("charcode", r["charcode"]),
            ("charcode+partial", r["charcode"]["partial_accept"]),
            ("word baseline", r["word_baseline"]),
        ):
            lat = s["latency_ms"]
            lines.append(
                f"{label:22}{100 * s['keystrokes_saved']:7.1f}%{100 * s['acceptance_rate']:9.1f}%"
                f"{s['shown_per_100_chars']:13.1f}{lat['p50']:9.2f}{lat['p95']:9.2f}"
            )
    else:
        valid = r["validity_rate"]
        ok = (
            f"{100 * valid:.1f}% valid ({r['checker']})"
            if valid is not None
            else f"validity not checked: {r['checker_unavailable']}"
        )
        lines = [
            f"{r['seeds']} {r['language']} functions at temperature {r['temperature']}"
            f"{', syntax guard on' if r.get('syntax_guard') else ''}: {ok}",
            f"ended by the stop rule: {100 * r['stop_rule_share']:.1f}% "
            f"({', '.join(f'{k} {v}' for k, v in sorted(r['stopped'].items()))}); "
            f"mean length {r['mean_chars']:.0f} characters",
        ]
        if r["validity_rate_stopped_by_rule"] is not None:
            lines.append(
                f"valid among those the stop rule ended: {100 * r['validity_rate_stopped_by_rule']:.1f}%"
            )
    if "plot" in r:
        lines.append(f"figure: {r['plot']}")
    return "\n".join(lines)


def _draw(result: dict, path: Path, name: str) -> Path:
    from charcode.training import plot

    if result["task"] == "keystrokes":
        c, w = result["charcode"], result["word_baseline"]
        groups = {
            "keystrokes saved": {
                "charcode": c["keystrokes_saved"],
                "charcode + partial accept": c["partial_accept"]["keystrokes_saved"],
                "word baseline": w["keystrokes_saved"],
            },
            "acceptance rate": {
                "charcode": c["acceptance_rate"],
                "charcode + partial accept": c["partial_accept"]["acceptance_rate"],
                "word baseline": w["acceptance_rate"],
            },
        }
        title = f"{name}: {result['files']} files, {result['chars']:,} characters"
        return plot.bars(groups, path, "%", title)
    plt = plot.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    rows = result["functions"]
    for label, keep in (
        ("valid", lambda r: r["valid"] is True),
        ("invalid", lambda r: r["valid"] is False),
        ("not checked", lambda r: r["valid"] is None),
    ):
        lengths = [r["chars"] for r in rows if keep(r)]
        if lengths:
            ax.hist(lengths, bins=20, alpha=0.6, label=label)
    ax.set_xlabel("function length (characters)")
    ax.set_ylabel("functions")
    ax.set_title(f"{name}: {result['seeds']} hallucinated functions")
    ax.legend()
    return plot.save(fig, path)
