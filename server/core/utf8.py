"""What decoders may write: UTF-8 text, one byte at a time.

Every decoder masks the model's scores so that the bytes it produces are
valid UTF-8 text (no boundary symbol, no control characters but tab and line
breaks, no stray continuation bytes, no overlong or surrogate sequences), and
it only stops between characters, so a completion never ends inside one.
"""

from __future__ import annotations

import numpy as np

from charcode.training.symbols import utf8_complete_prefix

NEG = -np.inf
_NL, _CR = 10, 13
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


_MASKS: dict[int, Masks] = {}


def masks_for(vocab: int) -> Masks:
    """The masks for a model with this many symbols (made once)."""
    masks = _MASKS.get(vocab)
    if masks is None:
        masks = _MASKS[vocab] = Masks(vocab)
    return masks


def token_kind(b: int) -> int:
    """0 for an identifier byte, 1 for a blank (space or tab), 2 for anything else."""
    return 0 if is_word_byte(b) else 1 if b in (0x20, 0x09) else 2


def token_boundary(a: int, b: int) -> bool:
    """Whether a token ends between bytes a and b: between an identifier, a run of blanks
    and anything else, and on both sides of every other character."""
    kind = token_kind(b)
    return token_kind(a) != kind or kind == 2


def log_softmax(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=-1, keepdims=True)
    return logits - (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))


def logsumexp(values: np.ndarray) -> np.ndarray:
    m = values.max(axis=-1, keepdims=True)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return (safe + np.log(np.exp(values - safe).sum(axis=-1, keepdims=True)))[..., 0]


def partial_length(text: bytes) -> int:
    """How many bytes at the end of text are an incomplete UTF-8 character."""
    return len(text) - len(utf8_complete_prefix(text))
