"""Decoding from a state: greedy ghost text, a batched beam over words, sampling a function.

Every decoder masks the logits so that the bytes it produces are valid UTF-8
text (no boundary symbol, no control characters but tab and line breaks, no
stray continuation bytes, no overlong or surrogate sequences), and it only
stops between characters, so a completion never ends inside one.
Decoders check ``should_stop()`` before every step and return None when told.
Logits are NumPy arrays (see runtime.py).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .runtime import Runtime, State

NEG = -np.inf
_NL, _CR = 10, 13
GUARD_RETRIES = 8  # attempts from one approved line end before sampling backs up past it
UNJUDGED_LINES = 16  # lines in a row the guard cannot judge (None) before they are sampled again
GUARD_BUDGET = 8  # the guard gives up once this many times max_chars symbols were sampled
Utf8 = tuple[int, int, int]  # (continuation bytes still due, lowest and highest allowed next byte)
AT_START: Utf8 = (0, 0, 0)


def is_word_byte(b: int) -> bool:
    """Bytes of identifiers: ASCII letters, digits, underscore, and any non-ASCII character."""
    return b >= 0x80 or b == 0x5F or 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


# The range of the first continuation byte for the lead bytes that restrict it (RFC 3629).
_FIRST_CONTINUATION = {
    0xE0: (0xA0, 0xBF),
    0xED: (0x80, 0x9F),
    0xF0: (0x90, 0xBF),
    0xF4: (0x80, 0x8F),
}


def utf8_next(state: Utf8, b: int) -> Utf8:
    """The UTF-8 decoder state after byte b."""
    remaining = state[0]
    if remaining:
        remaining -= 1
        return (remaining, 0x80, 0xBF) if remaining else AT_START
    if b < 0x80:
        return AT_START
    n = 1 if b < 0xE0 else 2 if b < 0xF0 else 3
    lo, hi = _FIRST_CONTINUATION.get(b, (0x80, 0xBF))
    return (n, lo, hi)


class Masks:
    """Additive logit masks (0 allowed, -inf not) over the model's symbols."""

    def __init__(self, vocab: int):
        allowed = [9, 10, 13, *range(0x20, 0x7F), *range(0xC2, 0xF5)]
        self.start = self._mask(vocab, allowed)
        self.word_start = self._mask(vocab, [b for b in allowed if is_word_byte(b)])
        self.non_word = self._mask(vocab, [b for b in allowed if not is_word_byte(b)])
        self._vocab = vocab
        self._ranges: dict[tuple[int, int], np.ndarray] = {}

    @staticmethod
    def _mask(vocab: int, allowed: list[int]) -> np.ndarray:
        mask = np.full(vocab, NEG, dtype=np.float32)
        mask[allowed] = 0.0
        return mask

    def for_state(self, utf8: Utf8, word: bool = False) -> np.ndarray:
        if not utf8[0]:
            return self.word_start if word else self.start
        key = (utf8[1], utf8[2])
        mask = self._ranges.get(key)
        if mask is None:
            mask = self._ranges[key] = self._mask(self._vocab, list(range(key[0], key[1] + 1)))
        return mask


def masks_for(runtime: Runtime) -> Masks:
    masks = getattr(runtime, "_masks", None)
    if masks is None:
        masks = runtime._masks = Masks(runtime.vocab)
    return masks


def log_softmax(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=-1, keepdims=True)
    return logits - (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))


def logsumexp(values: np.ndarray) -> np.ndarray:
    m = values.max(axis=-1, keepdims=True)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return (safe + np.log(np.exp(values - safe).sum(axis=-1, keepdims=True)))[..., 0]


# ---------------------------------------------------------------- greedy (inline completion)


class GreedyPath:
    """The argmax continuation of a state, computed as far as it is read.

    ``states[i]`` is the state after ``syms[:i]``. Keeping the path lets the next
    keystroke reuse it when the user types what the ghost text showed: the state
    after the typed characters is already here, and so is the rest of the text.
    """

    def __init__(self, runtime: Runtime, state: State):
        self.runtime = runtime
        self.masks = masks_for(runtime)
        self.syms: list[int] = []
        self.states: list[State] = [state]
        self.utf8: list[Utf8] = [AT_START]
        self._logits = runtime.logits(state)[0]  # after states[-1]

    def sym(self, i: int, should_stop: Callable[[], bool]) -> int | None:
        """The i-th symbol of the continuation (None if told to stop first)."""
        while len(self.syms) <= i:
            if should_stop():
                return None
            if len(self.states) == len(self.syms):  # the state after the last symbol is due
                logits, state = self.runtime.step([self.syms[-1]], self.states[-1])
                self.states.append(state)
                self._logits = logits[0]
            u = self.utf8[len(self.syms)]
            sym = int(np.argmax(self._logits + self.masks.for_state(u)))
            self.syms.append(sym)
            self.utf8.append(utf8_next(u, sym))
        return self.syms[i]

    def state(self, i: int) -> State:
        """The state after syms[:i] (i <= len(syms))."""
        if i == len(self.states) == len(self.syms):
            logits, state = self.runtime.step([self.syms[-1]], self.states[-1])
            self.states.append(state)
            self._logits = logits[0]
        return self.states[i]


def greedy_line(
    path: GreedyPath,
    *,
    start: int = 0,
    word: bool,
    max_chars: int,
    should_stop: Callable[[], bool],
) -> bytes | None:
    """The most likely continuation, from position ``start`` of the path, to a natural end.

    With ``word`` (the cursor follows an identifier character) it ends where the
    identifier ends, unless that is right away, in which case it runs on to the
    end of the line like the plain case. It never includes the line break.
    """
    out = bytearray()
    chars = 0
    i = start
    while True:
        if chars >= max_chars and not path.utf8[i][0]:
            break  # full: no need to compute the next symbol
        sym = path.sym(i, should_stop)
        if sym is None:
            return None
        if not path.utf8[i][0]:  # a character starts here: may the text end before it?
            if sym in (_NL, _CR):
                break
            if word and not is_word_byte(sym):
                if out:
                    break
                word = False  # the identifier is complete: continue to the line's end
            chars += 1
        out.append(sym)
        i += 1
    return bytes(out)


# ---------------------------------------------------------------- beam (completion)


@dataclass
class Candidate:
    text: bytes
    logprob: float  # of the text followed by a character that is not part of a word


def beam_words(
    runtime: Runtime,
    state: State,
    *,
    width: int,
    max_bytes: int,
    should_stop: Callable[[], bool],
) -> list[Candidate] | None:
    """The most likely word continuations at the cursor, best first (a batched beam search)."""
    masks = masks_for(runtime)
    beams: list[tuple[bytes, float, Utf8]] = [(b"", 0.0, AT_START)]
    logprobs = log_softmax(runtime.logits(state))
    finished: dict[bytes, float] = {}
    for _ in range(max_bytes):
        if should_stop():
            return None
        # 1) beams at a character boundary may end here: the next character is not a word's
        ends = logsumexp(logprobs + masks.non_word)
        for (text, score, u), end in zip(beams, ends.tolist(), strict=True):
            if text and not u[0]:
                finished[text] = max(finished.get(text, NEG), score + end)
        # 2) extend every beam by its best word bytes; keep the best `width` overall
        scores = logprobs + np.stack([masks.for_state(u, word=True) for _, _, u in beams])
        scores += np.array([s for _, s, _ in beams], dtype=np.float32)[:, None]
        flat = scores.ravel()
        k = min(width, flat.size)
        top = np.argpartition(-flat, k - 1)[:k]
        top = top[np.argsort(-flat[top], kind="stable")]
        bar = sorted(finished.values(), reverse=True)[width - 1] if len(finished) >= width else NEG
        nxt = []
        for index in top.tolist():
            value = float(flat[index])
            if value == NEG or value <= bar:
                continue  # scores only fall: this can no longer make the list
            row, sym = divmod(index, scores.shape[1])
            text, _, u = beams[row]
            nxt.append((row, text + bytes([sym]), value, utf8_next(u, sym)))
        if not nxt:
            break
        logits, state = runtime.step(
            [t[-1] for _, t, _, _ in nxt], runtime.select(state, [r for r, *_ in nxt])
        )
        logprobs = log_softmax(logits)
        beams = [(t, s, u) for _, t, s, u in nxt]
    best = sorted(finished.items(), key=lambda kv: -kv[1])[:width]
    return [Candidate(text, score) for text, score in best]


# ---------------------------------------------------------------- sampling (hallucinate a function)


@dataclass
class Sampled:
    text: bytes  # the forced bytes and the sampled ones, cut where the function ends
    # "end_of_function"; "length" (the cap broke it off); "trimmed" (the cap was reached and
    # the text cut back to its last line that ends a whole valid function); "stopped";
    # "declarations" (4 declarations and no body)
    reason: str


@dataclass
class _Mark:
    """A line start the guard approved: everything needed to sample again from there."""

    length: int
    chars: int
    state: State
    logits: np.ndarray
    rule: object
    restarts: int
    base: int
    tries: int = 0  # times sampling went back here


def sample_function(
    runtime: Runtime,
    state: State,
    *,
    forced: bytes,
    stop_rule: Callable[[bytes], object],
    temperature: float,
    seed: int,
    max_chars: int,
    should_stop: Callable[[], bool],
    on_text: Callable[[bytes], None] | None = None,
    guard: Callable[[bytes, bool, object], bool | None] | None = None,
    line_prefix: bytes = b"",
    retries: int = GUARD_RETRIES,
) -> Sampled:
    """Sample text after the state until the stop rule ends the function.

    ``forced`` is read first and is part of the text (a function's first
    word). ``stop_rule(prime_extra)`` makes a rule that has seen the line
    prefix plus ``prime_extra``; when the rule reports a declaration
    (``int f(void);``) sampling goes on to the next function (with no guard).

    With a ``guard`` (see guard.py) the text (``line_prefix`` + ``forced`` +
    sampled) is checked at the end of each line: when the guard says it
    cannot become a valid function, or calls an ending incomplete, or the
    rule sees a declaration where the function should be, sampling goes back
    to the last line end it approved and tries again; so does a run of more
    than UNJUDGED_LINES lines the guard could not judge (None: a header gone
    wrong in C). Each approved line end is tried ``retries`` times; then
    sampling backs up to the one before it (a depth-first search over lines;
    past every line end inside the same open bracket, which the guard
    approved only as an unfinished prefix; the start is tried again and
    again), while fewer than GUARD_BUDGET * max_chars symbols were sampled
    in all. When that runs out, the text is
    cut back to its last line that ends a whole valid function ("trimmed"),
    or, when there is none, the guard is dropped and sampling goes on
    unchecked. At the length cap the text is cut back the same way.

    ``on_text`` receives the text so far (``forced`` included) whenever it
    changes at a line end: with a guard only the approved lines, so it can
    also get shorter when sampling backs up or the text is cut back.
    """
    masks = masks_for(runtime)
    checker = guard  # kept when the guard gives up, to cut the function back
    rng = np.random.Generator(np.random.PCG64(seed))
    if forced:
        state = runtime.read(state, forced)
    logits = runtime.logits(state)[0]
    rule = stop_rule(forced)
    out = bytearray()
    utf8 = AT_START
    chars = restarts = spent = 0
    base = 0  # where the current rule's generated text starts in out
    reason = "length"
    shown = b""  # what on_text was last given
    # Line ends the guard approved, oldest first; sampling goes back to the newest.
    marks = [_Mark(0, 0, state, logits, copy.deepcopy(rule), 0, 0)] if guard else []
    while chars < max_chars or utf8[0]:
        if should_stop():
            reason = "stopped"
            break
        scores = (logits + masks.for_state(utf8)).astype(np.float64)
        if temperature <= 0:
            sym = int(np.argmax(scores))
        else:
            p = np.exp((scores - scores.max()) / temperature)
            cdf = np.cumsum(p)
            sym = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1)
        out.append(sym)
        chars += not utf8[0]
        spent += 1
        utf8 = utf8_next(utf8, sym)
        result = rule.feed(bytes([sym]))
        verdict = None  # the guard's: True (a good point to come back to), False, None
        if result is not None:
            if result.reason == "end_of_function" or restarts >= 3:
                whole = line_prefix + forced + bytes(out[: base + result.keep])
                if guard is None or guard(whole, True, rule):
                    del out[base + result.keep :]
                    reason = result.reason if result.reason == "end_of_function" else "declarations"
                    break
                verdict = False  # an incomplete function: write the ending again
            elif guard is not None:
                verdict = False  # a declaration, not the function asked for: write it again
            else:
                restarts += 1  # a declaration: wait for the function after it
                rule, base = stop_rule(forced + bytes(out)), len(out)
        elif sym == _NL and guard is not None:
            verdict = guard(line_prefix + forced + bytes(out), False, rule)
            if verdict is None and out.count(b"\n", marks[-1].length) > UNJUDGED_LINES:
                verdict = False  # lost where the guard cannot follow (a header gone wrong)
        if verdict is False:
            mark = _back_to(marks, retries) if spent < GUARD_BUDGET * max_chars else None
            if mark is not None:
                del out[mark.length :]
                chars, state, logits = mark.chars, mark.state, mark.logits
                rule, restarts, base = copy.deepcopy(mark.rule), mark.restarts, mark.base
                utf8 = AT_START
                continue
            # Nothing the model writes fits here. Keep the longest whole function it
            # wrote, if any; otherwise go on without the guard.
            cut = _last_complete_line(out, base, line_prefix + forced, checker)
            if cut < len(out):
                del out[cut:]
                reason, utf8 = "trimmed", AT_START
                break
            guard, marks = None, []
            if result is not None and (result.reason == "end_of_function" or restarts >= 3):
                del out[base + result.keep :]
                reason = result.reason if result.reason == "end_of_function" else "declarations"
                break
            if result is not None:
                restarts += 1
                rule, base = stop_rule(forced + bytes(out)), len(out)
        if on_text is not None and sym == _NL:
            # With a guard only what it approved is shown: the rest may be sampled again.
            ready = forced + bytes(out[: marks[-1].length] if marks else out).rstrip()
            if ready != shown:
                on_text(ready)
                shown = ready
        logits, state = runtime.step([sym], state)
        logits = logits[0]
        if verdict and guard is not None:
            marks.append(_Mark(len(out), chars, state, logits, copy.deepcopy(rule), restarts, base))
    if reason == "length" and checker is not None:
        cut = _last_complete_line(out, base, line_prefix + forced, checker)
        if cut < len(out):
            del out[cut:]
            reason, utf8 = "trimmed", AT_START
    text = bytes(out)
    if utf8[0]:  # stopped inside a character
        text = text[: len(text) - _partial_length(text)]
    if on_text is not None and forced + text != shown:
        on_text(forced + text)
    return Sampled(forced + text, reason)


def _back_to(marks: list[_Mark], retries: int) -> _Mark | None:
    """The approved line end to sample again from: the newest with tries left (each
    line end gets ``retries``), dropping those that have none; None when none has."""
    while marks:
        mark = marks[-1]
        if mark.tries < retries or len(marks) == 1:  # the start is tried while budget lasts
            mark.tries += 1
            return mark
        marks.pop()
        # Inside an open bracket, go back to where it opened: the lines before were
        # approved only as an unfinished prefix.
        while len(marks) > 1 and getattr(marks[-1].rule, "brackets", 0):
            marks.pop()
    return None


def _last_complete_line(out: bytearray, base: int, head: bytes, checker) -> int:
    """Where to cut a function the length cap stopped: the last line end after which
    ``head + out`` is a whole valid function, or the end when there is none.

    The user gets a shorter function that compiles rather than one broken off
    mid-statement; only text the model wrote is kept, nothing is added."""
    pos = len(out)
    while (pos := out.rfind(b"\n", base, pos)) > base:
        if checker(head + bytes(out[:pos]), True, None):
            return pos
    return len(out)


def _partial_length(text: bytes) -> int:
    """How many bytes at the end of text are an incomplete UTF-8 character."""
    for n in range(1, min(4, len(text)) + 1):
        b = text[-n]
        if (b & 0xC0) != 0x80:
            need = 1 if b < 0x80 else 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return n if n < need else 0
    return 0


def describe_probability(logprob: float) -> str:
    return f"{100 * math.exp(logprob):.1f}%"
