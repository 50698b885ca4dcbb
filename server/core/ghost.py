"""Ghost text: the most likely continuation at a cursor, to a natural end.

Greedy decoding, one symbol at a time, from a predictor's state (see
predictor.py). ``GreedyPath`` keeps what it computed so that the next
keystroke reuses it when the user types what the ghost text showed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .predictor import Predictor, State
from .utf8 import AT_START, Utf8, is_word_byte, masks_for, utf8_next

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
