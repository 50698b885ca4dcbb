"""The one sampler: temperature sampling from a predictor's state, with stop rules and guards.

``sample_function`` writes a whole function (``charcode hallucinate``, the
``charcode.hallucinateFunction`` command and the hallucinate evaluation);
``sample_text`` is the same draw with no rule, for ``charcode sample``. The
same model, prime, temperature and seed give the same text from all of them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .predictor import Predictor, State
from .stoprules import make_stop_rule
from .utf8 import AT_START, masks_for, partial_length, utf8_next

_NL = 10
GUARD_RETRIES = 8  # attempts from one approved line end before sampling backs up past it
UNJUDGED_LINES = 16  # lines in a row the guard cannot judge (None) before they are sampled again
GUARD_BUDGET = 8  # the guard gives up once this many times max_chars symbols were sampled


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
    runtime: Predictor,
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
    masks = masks_for(runtime.vocab)
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
        text = text[: len(text) - partial_length(text)]
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
        while len(marks) > 1 and marks[-1].rule.lexer().brackets:
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


def sample_text(
    runtime: Predictor,
    prime: bytes,
    *,
    length: int,
    temperature: float,
    seed: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> bytes:
    """``length`` characters after ``prime`` from a fresh document (prime included): the same
    draws as ``sample_function`` with no stop rule and no guard, so `charcode sample` and
    `charcode hallucinate` write the same text for the same model, prime, temperature and seed
    until the function ends."""
    return sample_function(
        runtime,
        runtime.start,
        forced=prime,
        stop_rule=lambda extra: make_stop_rule("none", extra),
        temperature=temperature,
        seed=seed,
        max_chars=length,
        should_stop=should_stop,
    ).text
