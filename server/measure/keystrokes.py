"""`charcode eval --task keystrokes`: a simulated user types files with ghost text on.

The simulated user types each file from its start into an empty document.
charcode's side is the core's ``Completer.ghost_text`` (core/completer.py),
the function the language server's inline completion calls, on the same
snapshot cache: each keystroke is an edit at the end of the document and each
request a ghost text at the cursor, so a keystroke costs one LSTM step plus
the decoding, as in the editor. Where ghost text is shown, the user accepts it
with one keystroke (Tab) if it is exactly the text that comes next up to a
token end; with partial accept the user may instead accept its longest
correct prefix that ends on a token boundary (VS Code's "accept next word",
repeated, counted as one keystroke). The word baseline (word_baseline.py) is
typed the same way in the same run.

Counting (docs/EVAL.md has the reasoning): a keystroke types one character (a
CRLF line break is one Enter). With ``free_indent`` (the default) the editor is
taken to indent each new line perfectly, so leading indentation costs nothing
and is not counted as a character, for charcode and the baseline alike.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from charcode.training.symbols import is_continuation

from ..core.completer import Completer, OneModel, TextAt
from ..core.predictor import Predictor
from ..core.settings import Settings
from ..core.utf8 import token_boundary
from .word_baseline import WordCompleter, words_of

DEFAULT_MAX_FILES = 20
DEFAULT_MAX_CHARS = 2000


class GhostTextTyping:
    """charcode's inline completion, as the simulated user sees it: one document at a time."""

    name = "charcode"

    def __init__(
        self,
        completer: Completer,
        language: str,
        max_chars: int,
        max_lines: int = 1,
        min_prob: float | None = None,
    ):
        self.completer = completer
        self.language = language
        self.max_chars = max_chars
        self.max_lines = max_lines
        self.min_prob = min_prob  # None: the server's default
        self.uri = ""
        self.data = b""
        self.version = 0
        self.latencies: list[float] = []  # seconds per call (state at the cursor + decoding)

    def start(self, uri: str) -> None:
        self.uri, self.data, self.version = uri, b"", 0
        self.latencies = []
        self.completer.forget(uri)

    def insert(self, data: bytes) -> None:
        """Type (or accept) data at the end of the document: one edit."""
        end = len(self.data)
        self.data += data
        self.version += 1
        self.completer.snapshots.edited(self.uri, self.version, end)

    def suggest(self) -> bytes | None:
        at = TextAt(self.uri, self.language, self.version, self.data, len(self.data))
        t = time.perf_counter()
        extra = {} if self.min_prob is None else {"min_prob": self.min_prob}
        text = self.completer.ghost_text(at, self.max_chars, max_lines=self.max_lines, **extra)
        self.latencies.append(time.perf_counter() - t)
        # as the server does after answering, in its idle time between keystrokes
        self.completer.learn_document(at)
        return text or None

    def finish(self) -> None:
        self.completer.forget(self.uri)


def is_boundary(text: bytes, i: int) -> bool:
    """Is offset i a token boundary of text: its ends, or utf8.token_boundary between the
    bytes either side."""
    if i <= 0 or i >= len(text):
        return True
    return token_boundary(text[i - 1], text[i])


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
                while j < n and is_continuation(text[j]):
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


def type_text(script: Script, completer, uri: str, partial: bool = False) -> Typing:
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
            suggestion = completer.suggest()
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
        return text.encode("utf-8")
    cut = text[:max_chars]
    nl = cut.rfind("\n")
    return (cut[: nl + 1] if nl >= 0 else cut).encode("utf-8")


@dataclass
class Learned:
    """What the engine learned for one language (the Completer's ``adaptive`` source)."""

    language: str
    model: object  # adaptive.AdaptiveModel

    def get(self, language: str, model_path=None):
        return self.model if language == self.language else None


def learned_workspace(
    workspace: list[tuple[str, bytes]], language: str, typed: str, memory_mb: int
) -> Learned:
    """A fresh adaptive model that has learned the workspace's files except the one typed,
    as when the editor opens that project (files are learned in path order)."""
    from ..core.adaptive import AdaptiveModel

    model = AdaptiveModel(memory_mb << 20)
    for name, data in workspace:
        if name != typed:
            model.learn(data)
    return Learned(language, model)


def evaluate_keystrokes(
    runtime: Predictor,
    language: str,
    texts: list[tuple[str, bytes]],
    settings: Settings | None = None,
    free_indent: bool = True,
    progress=None,
    workspace: list[tuple[str, bytes]] | None = None,
    min_prob: float | None = None,
) -> dict:
    """Type each (name, text) with charcode (full accept, then partial accept) and with the
    word baseline; the counts per completer and per file.

    With ``workspace`` (name, text) files: before each file is typed, charcode learns every
    workspace file but that one (names compared as given: pass resolved paths), and learns
    the typed document's lines as it goes; the word baseline is typed twice, on the document
    alone and with the workspace files' words as well. ``min_prob`` overrides the server's
    setting inlineMinProbability."""
    settings = settings or Settings()
    if min_prob is None:
        min_prob = settings.inline_min_probability
    max_chars = settings.inline_max_length
    totals = {
        name: Typing()
        for name in ("charcode", "charcode_partial", "word_baseline", "word_baseline_workspace")
    }
    per_file = []
    for i, (name, text) in enumerate(texts):
        script = Script.of(text, free_indent)
        row = {"file": name, "chars": script.chars}
        runs = {}
        for run, partial in (("charcode", False), ("charcode_partial", True)):
            adaptive = None
            if workspace is not None:
                adaptive = learned_workspace(
                    workspace, language, name, settings.adaptation_memory_mb
                )
            completer = Completer(OneModel(language, runtime), adaptive=adaptive)
            typist = GhostTextTyping(
                completer, language, max_chars, settings.inline_max_lines, min_prob
            )
            runs[run] = (typist, partial)
        runs["word_baseline"] = (WordCompleter(), False)
        if workspace is not None:
            words = Counter()
            for other, data in workspace:
                if other != name:
                    words.update(words_of(data))
            runs["word_baseline_workspace"] = (WordCompleter(words), False)
        for run, (typist, partial) in runs.items():
            typed = type_text(script, typist, f"eval:///{run}/{i}", partial)
            totals[run].add(typed)
            row[run] = round(typed.saved, 4)
        per_file.append(row)
        if progress is not None:
            progress(script.chars)
    charcode = totals["charcode"].summary()
    charcode["partial_accept"] = totals["charcode_partial"].summary()
    return {
        "task": "keystrokes",
        "language": language,
        "files": len(texts),
        "chars": totals["charcode"].chars,
        "settings": {
            "inline_max_length": max_chars,
            "inline_max_lines": settings.inline_max_lines,
            "inline_min_probability": min_prob,
            "free_indent": free_indent,
            "workspace_files": None if workspace is None else len(workspace),
        },
        "charcode": charcode,
        "word_baseline": totals["word_baseline"].summary(),
        **(
            {"word_baseline_workspace": totals["word_baseline_workspace"].summary()}
            if workspace is not None
            else {}
        ),
        "per_file": per_file,
    }
