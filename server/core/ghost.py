"""Ghost text: the most likely continuation at a cursor, to a natural end.

Greedy decoding, one symbol at a time, from a predictor's state (see
predictor.py). ``GreedyPath`` keeps what it computed so that the next
keystroke reuses it when the user types what the ghost text showed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .mixture import MixedPredictor
from .predictor import Predictor, State
from .utf8 import (
    AT_START,
    Utf8,
    is_word_byte,
    logsumexp,
    masks_for,
    token_boundary,
    utf8_next,
)

_NL, _CR = 10, 13


class GreedyPath:
    """The argmax continuation of a state, computed as far as it is read.

    ``states[i]`` is the state after ``syms[:i]``. Keeping the path lets the next
    keystroke reuse it when the user types what the ghost text showed: the state
    after the typed characters is already here, and so is the rest of the text.
    """

    def __init__(self, runtime: Predictor, state: State):
        self.runtime = runtime
        self.masks = masks_for(runtime.vocab)
        self.syms: list[int] = []
        self.logps: list[float] = []  # natural log of each symbol's probability
        self.states: list[State] = [state]
        self.utf8: list[Utf8] = [AT_START]
        # The mixture finds its best symbol from the LSTM's logits without computing its
        # whole distribution; other predictors give their scores.
        self._mixed = isinstance(runtime, MixedPredictor)
        if self._mixed:
            self._scores = runtime.lstm.logits(state.lstm)[0]  # after states[-1]
        else:
            self._scores = runtime.logits(state)[0]

    def sym(self, i: int, should_stop: Callable[[], bool]) -> int | None:
        """The i-th symbol of the continuation (None if told to stop first)."""
        while len(self.syms) <= i:
            if should_stop():
                return None
            if len(self.states) == len(self.syms):  # the state after the last symbol is due
                self._advance()
            u = self.utf8[len(self.syms)]
            mask = self.masks.for_state(u)
            if self._mixed:
                sym, p = self.runtime.best(self.states[-1], self._scores, mask)
                logp = math.log(p) if p > 0 else -math.inf
            else:
                sym = int(np.argmax(self._scores + mask))
                logp = float(self._scores[sym] - logsumexp(self._scores))
            self.syms.append(sym)
            self.logps.append(logp)
            self.utf8.append(utf8_next(u, sym))
        return self.syms[i]

    def state(self, i: int) -> State:
        """The state after syms[:i] (i <= len(syms))."""
        if i == len(self.states) == len(self.syms):
            self._advance()
        return self.states[i]

    def _advance(self) -> None:
        if self._mixed:
            self._scores, state = self.runtime.advance(self.syms[-1], self.states[-1])
        else:
            logits, state = self.runtime.step([self.syms[-1]], self.states[-1])
            self._scores = logits[0]
        self.states.append(state)


def greedy_line(
    path: GreedyPath,
    *,
    start: int = 0,
    word: bool,
    max_chars: int,
    should_stop: Callable[[], bool],
    max_lines: int = 1,
    indent: int = 0,
    min_prob: float = 0.0,
) -> bytes | None:
    """The most likely continuation, from position ``start`` of the path, to a natural end.

    With ``word`` (the cursor follows an identifier character) it ends where the
    identifier ends, unless that is right away, in which case it runs on to the
    end of the line like the plain case. With ``max_lines`` 1 it never includes
    the line break. With more, it goes on over line breaks while the next line is
    indented deeper than ``indent`` (the cursor's line's indentation, in bytes):
    the block the cursor's line opens, to where it ends (a dedent or a blank
    line), at most ``max_lines`` lines of at most ``max_chars`` characters each.

    With ``min_prob``, it also ends at the last token boundary where the model's
    probability of the whole text so far was still at least ``min_prob`` (but never
    before the first token): ghost text that is likely right in full, rather than a
    long guess that is right only in part.
    """
    out = bytearray()
    chars = 0
    lines = 1
    i = start
    floor = math.log(min_prob) if min_prob > 0 else -math.inf
    logp = 0.0  # of out
    sure = 0  # the longest token-boundary prefix of out whose probability is >= min_prob
    while True:
        if chars >= max_chars and not path.utf8[i][0]:
            break  # full: no need to compute the next symbol
        sym = path.sym(i, should_stop)
        if sym is None:
            return None
        if not path.utf8[i][0] and out and token_boundary(out[-1], sym):
            if logp < floor:
                return bytes(out[: sure or len(out)])
            sure = len(out)
        if not path.utf8[i][0]:  # a character starts here: may the text end before it?
            if sym in (_NL, _CR):
                if sym == _CR or lines >= max_lines or word:
                    break
                deeper = _next_line_deeper(path, i + 1, indent, should_stop)
                if deeper is None:
                    return None
                if not deeper:
                    break
                lines, chars = lines + 1, 0
                out.append(sym)
                logp += path.logps[i]
                i += 1
                continue
            if word and not is_word_byte(sym):
                if out:
                    break
                word = False  # the identifier is complete: continue to the line's end
            chars += 1
        out.append(sym)
        logp += path.logps[i]
        i += 1
    if logp < floor and sure:
        return bytes(out[:sure])
    return bytes(out)


def _next_line_deeper(
    path: GreedyPath, i: int, indent: int, should_stop: Callable[[], bool]
) -> bool | None:
    """Whether the line starting at path position i is indented deeper than indent bytes
    and is not blank (None if told to stop)."""
    depth = 0
    while True:
        sym = path.sym(i + depth, should_stop)
        if sym is None:
            return None
        if sym not in (0x20, 0x09):
            return sym not in (_NL, _CR) and depth > indent
        depth += 1
        if depth > indent + 64:
            return True  # deeper than anything worth checking
