"""What charcode proposes at a cursor: ghost text, completion words, a whole function.

One ``Completer`` per session (the language server, ``charcode eval``,
``charcode hallucinate``): it finds the language's model, resumes the model's
state at the cursor from the snapshot cache, and runs a decoder on it. The LSP
features, the command line and the evaluation all call these methods, so what
the evaluation measures is what the editor shows. Runs on one thread at a time
(the server's inference thread); every method takes ``should_stop`` and returns
None when told to stop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from charcode.training.languages import LANGUAGES, Language
from charcode.training.symbols import is_continuation

from .beam import Candidate, beam_words
from .ghost import GreedyPath, greedy_line
from .guard import guard_for
from .mixture import MixedPredictor
from .predictor import Predictor, State
from .sampler import Sampled, sample_function
from .settings import Settings
from .snapshots import SnapshotCache
from .stoprules import make_stop_rule
from .utf8 import is_word_byte

DOC_LEARN_HORIZON = 4096  # bytes before the cursor's line a document's first request learns
DOC_LEARN_STEP = 16  # document text learned between checks of should_stop (about 1 ms)
BEAM_WIDTH = 5
MAX_WORD_BYTES = 32
# Ghost text ends at the last token boundary where its probability is still at least this:
# the server's inlineMinProbability default, chosen on the tuning projects (docs/EVAL.md).
GHOST_MIN_PROB = Settings.inline_min_probability
WORD_LOOKBACK = 256  # bytes: a longer run of word characters is not a word worth completing
ShouldStop = Callable[[], bool]


def _never() -> bool:
    return False


@dataclass(frozen=True)
class TextAt:
    """A request's view of a document: its bytes at one version, and the cursor's byte offset."""

    uri: str
    language: str
    version: int
    data: bytes  # the document's bytes at that version (immutable, shared)
    offset: int

    def word_start(self) -> int:
        """Byte offset where the identifier ending at the cursor starts (the cursor if none)."""
        lo = max(0, self.offset - WORD_LOOKBACK)
        i = self.offset
        while i > lo and is_word_byte(self.data[i - 1]):
            i -= 1
        while i < self.offset and is_continuation(self.data[i]):
            i += 1  # the look-back limit cut a character: start after it
        return i

    def after_word_char(self) -> bool:
        return self.offset > 0 and is_word_byte(self.data[self.offset - 1])

    def before_word_char(self) -> bool:
        return self.offset < len(self.data) and is_word_byte(self.data[self.offset])

    def line_prefix(self, limit: int = 1 << 16) -> bytes:
        """The bytes of the cursor's line before it (lines end at \\n, \\r\\n or \\r)."""
        nl = max(self.data.rfind(b"\n", 0, self.offset), self.data.rfind(b"\r", 0, self.offset))
        return self.data[max(nl + 1, self.offset - limit) : self.offset]


class Models(Protocol):
    def get(self, language: str, quiet: bool = False):
        """The language's loaded model (with a ``runtime``), or None."""


@dataclass
class OneModel:
    """Models for a session that uses one model for one language (the command line)."""

    language: str
    runtime: Predictor

    def get(self, language: str, quiet: bool = False):
        return self if language == self.language else None


class AdaptiveModels(Protocol):
    def get(self, language: str, model_path=None):
        """What the engine learned for the language (an adaptive.AdaptiveModel), or None."""


@dataclass(frozen=True)
class FunctionRequest:
    """What to hallucinate: see ``function_request``."""

    line_prefix: bytes  # the cursor's line before it (the stop rule and guard see it)
    forced: bytes  # written first (the language's function prime on a blank line)
    temperature: float
    max_chars: int
    seed: int
    syntax_check: bool = True


def function_request(
    at: TextAt,
    *,
    temperature: float,
    max_chars: int,
    seed: int,
    syntax_check: bool = True,
    prime: bytes | None = None,
) -> FunctionRequest:
    """A function at the cursor: on a line with nothing but indentation before the cursor the
    text starts with ``prime`` (default: the language's function prime, ``def `` for Python)."""
    prefix = at.line_prefix()
    lang = LANGUAGES.get(at.language)
    if prime is not None:
        forced = prime
    else:
        forced = lang.function_prime.encode("utf-8") if lang and not prefix.strip() else b""
        if lang is not None and forced and prefix and lang.function_prime.startswith(" "):
            forced = forced.lstrip(b" ")  # the line's own indentation comes first
    return FunctionRequest(prefix, forced, float(temperature), max_chars, seed, syntax_check)


@dataclass
class _LastGhost:
    """The greedy path behind the last ghost text, and where it started."""

    uri: str
    offset: int
    path: GreedyPath


@dataclass
class _Learned:
    """How much of a document the adaptive model has learned: data[:offset]; and, when
    known, the mixture's state after it (valid while data[:offset] and the mixture stay)."""

    data: bytes
    offset: int
    state: State | None = None
    mixture: MixedPredictor | None = None


class Completer:
    """``adaptive`` (optional) gives, per language, what the engine learned from the
    workspace; with it every prediction comes from the mixture (mixture.py), and the text
    of each document before the cursor's line is learned as the user leaves it."""

    def __init__(
        self,
        models: Models,
        snapshots: SnapshotCache | None = None,
        adaptive: AdaptiveModels | None = None,
    ):
        self.models = models
        self.snapshots = snapshots if snapshots is not None else SnapshotCache()
        self.adaptive = adaptive
        self._last_ghost: _LastGhost | None = None
        self._mixed: dict[str, MixedPredictor] = {}
        self._learned: dict[str, _Learned] = {}

    def predictor(self, language: str) -> Predictor | None:
        """The LSTM, or the mixture when the engine has learned something for the language."""
        model = self.models.get(language)
        if model is None:
            return None
        learned = None
        if self.adaptive is not None:
            learned = self.adaptive.get(language, getattr(model, "path", None))
        if learned is None:
            return model.runtime
        # One mixture per language, made again when its model or what was learned changes
        # (the snapshot cache keys documents by predictor, so it must stay the same object).
        mixed = self._mixed.get(language)
        if mixed is None or mixed.lstm is not model.runtime or mixed.model is not learned:
            mixed = self._mixed[language] = MixedPredictor(model.runtime, learned)
        return mixed

    def forget(self, uri: str) -> None:
        """The document closed."""
        self.snapshots.forget(uri)
        self._learned.pop(uri, None)

    def learn_document(self, at: TextAt, should_stop: ShouldStop = _never) -> None:
        """Teach the mixture the document's text before the cursor's line (lines the user
        has left; at most DOC_LEARN_HORIZON bytes of a document first seen), each byte
        scored before it is learned. Runs apart from the requests (the server calls it
        when idle), DOC_LEARN_STEP bytes at a time, until done or told to stop. Only real
        text teaches: the decoders never call it."""
        rt = self.predictor(at.language)
        if not isinstance(rt, MixedPredictor):
            return
        end = at.offset - len(at.line_prefix())
        start = self._learn_from(at, end)
        if start >= end:
            return
        done = self._learned[at.uri]
        state = done.state if done.mixture is rt else None
        if state is None:  # a document first seen, an edit above, or another mixture
            state = self.snapshots.state_at(at.uri, at.version, at.data, start, rt, should_stop)
        while state is not None and start < end and not should_stop():
            stop = min(end, start + DOC_LEARN_STEP)
            state = rt.learn(state, at.data[start:stop])
            self._learned[at.uri] = _Learned(at.data, stop, state, rt)
            start = stop

    def _learn_from(self, at: TextAt, end: int) -> int:
        """Where learning the document goes on: after what was learned, if the document
        still starts with it; else at a line start within the horizon before ``end``."""
        done = self._learned.get(at.uri)
        # memoryviews: compare the learned prefix without copying the document each keystroke
        if done is not None and (
            memoryview(done.data)[: done.offset] == memoryview(at.data)[: done.offset]
        ):
            if done.data is not at.data:  # the same prefix in a newer text: keep the state
                self._learned[at.uri] = _Learned(at.data, done.offset, done.state, done.mixture)
            return done.offset
        start = max(0, end - DOC_LEARN_HORIZON)
        if done is not None:  # an edit above: go on from where the texts still agree
            same = len(os.path.commonprefix([done.data[: done.offset], at.data[:end]]))
            start = max(start, same)
        if start and at.data[start - 1] != 0x0A:  # learn whole lines: from the next one
            nl = at.data.find(b"\n", start, end)
            start = nl + 1 if nl >= 0 else end
        self._learned[at.uri] = _Learned(at.data, start)
        return start

    def state_at(self, at: TextAt, should_stop: ShouldStop = _never) -> State | None:
        rt = self.predictor(at.language)
        if rt is None:
            return None
        return self.snapshots.state_at(at.uri, at.version, at.data, at.offset, rt, should_stop)

    # ---- ghost text

    def ghost_text(
        self,
        at: TextAt,
        max_chars: int,
        should_stop: ShouldStop = _never,
        max_lines: int = 1,
        min_prob: float = GHOST_MIN_PROB,
    ) -> bytes | None:
        """The ghost text at the cursor (b"" for none), or None if stopped.

        To the end of the identifier when the cursor follows an identifier
        character (on to the end of the line if the identifier is already
        complete), else to the end of the line; nothing in the middle of a word.
        When the user has typed the start of the previous ghost text, its path
        already holds the state and the rest of the text: nothing is recomputed.
        """
        if at.after_word_char() and at.before_word_char():
            return b""
        rt = self.predictor(at.language)
        if rt is None:
            return b""
        last = self._last_ghost
        start = 0
        if last is not None and self._typed_along(last, at, rt):
            path, start = last.path, at.offset - last.offset
            self.snapshots.remember(at.uri, at.version, at.offset, path.state(start))
        else:
            state = self.snapshots.state_at(at.uri, at.version, at.data, at.offset, rt, should_stop)
            if state is None:
                return None
            path = GreedyPath(rt, state)
            self._last_ghost = _LastGhost(at.uri, at.offset, path)
            self.snapshots.pin(at.uri, at.offset)
        prefix = at.line_prefix()
        return greedy_line(
            path,
            start=start,
            word=at.after_word_char(),
            max_chars=max_chars,
            should_stop=should_stop,
            max_lines=max_lines,
            indent=len(prefix) - len(prefix.lstrip(b" \t")),
            min_prob=min_prob,
        )

    def _typed_along(self, last: _LastGhost, at: TextAt, rt: Predictor) -> bool:
        k = at.offset - last.offset
        return (
            last.uri == at.uri
            and last.path.runtime is rt
            and 0 <= k <= len(last.path.syms)
            and at.data[last.offset : at.offset] == bytes(last.path.syms[:k])
            and self.snapshots.holds(at.uri, at.version, last.offset, rt)
        )

    # ---- completion words

    def words(self, at: TextAt, should_stop: ShouldStop = _never) -> list[Candidate] | None:
        """The best word continuations at the cursor, best first; None if stopped or no model."""
        rt = self.predictor(at.language)
        if rt is None:
            return None
        state = self.snapshots.state_at(at.uri, at.version, at.data, at.offset, rt, should_stop)
        if state is None:
            return None
        return beam_words(
            rt, state, width=BEAM_WIDTH, max_bytes=MAX_WORD_BYTES, should_stop=should_stop
        )

    # ---- a whole function

    def function(
        self,
        at: TextAt,
        req: FunctionRequest,
        on_text: Callable[[bytes], None] | None = None,
        should_stop: ShouldStop = _never,
    ) -> Sampled | None:
        """Sample a function at the cursor (None if there is no model or it was stopped).

        The model samples from its state at the cursor; in a document blank up to
        the cursor it first reads the language's lead-in (the end of a previous
        function). The language's stop rule, primed with the line before the
        cursor, ends the function; its syntax guard (unless turned off) has lines
        that cannot be part of a valid function sampled again.
        """
        rt = self.predictor(at.language)
        if rt is None:
            return None
        state = self.snapshots.state_at(at.uri, at.version, at.data, at.offset, rt, should_stop)
        if state is None:
            return None
        lang = LANGUAGES.get(at.language)
        state = after_lead_in(rt, state, lang, at.data[: at.offset])
        return sample_with_rules(rt, state, at.language, req, on_text, should_stop)


def after_lead_in(rt: Predictor, state: State, lang: Language | None, before: bytes) -> State:
    """The state to sample from: when only blanks come before the cursor, the model reads
    the language's lead-in (the end of a previous function) first."""
    if lang is None or not lang.lead_in or before.strip():
        return state
    return rt.read(rt.start, lang.lead_in.encode("utf-8") + before)


def sample_with_rules(
    rt: Predictor,
    state: State,
    language: str,
    req: FunctionRequest,
    on_text: Callable[[bytes], None] | None = None,
    should_stop: ShouldStop = _never,
) -> Sampled:
    """The sampler with the language's stop rule and (unless turned off) its syntax guard."""
    lang = LANGUAGES.get(language)
    rule = lang.stop_rule if lang else "none"
    return sample_function(
        rt,
        state,
        forced=req.forced,
        stop_rule=lambda extra: make_stop_rule(rule, req.line_prefix + extra, language),
        temperature=req.temperature,
        seed=req.seed,
        max_chars=req.max_chars,
        should_stop=should_stop,
        on_text=on_text,
        guard=guard_for(language) if req.syntax_check else None,
        line_prefix=req.line_prefix,
    )
