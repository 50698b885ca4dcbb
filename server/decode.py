"""Decoding from a state: greedy ghost text, a batched beam over words, sampling a function.

Every decoder masks the logits so that the bytes it produces are valid UTF-8
text (no boundary symbol, no control characters but tab and line breaks, no
stray continuation bytes, no overlong or surrogate sequences), and it only
stops between characters, so a completion never ends inside one.
Decoders check ``should_stop()`` before every step and return None when told.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .runtime import Runtime, State, select_states

NEG = float("-inf")
_NL, _CR = 10, 13


def is_word_byte(b: int) -> bool:
    """Bytes of identifiers: ASCII letters, digits, underscore, and any non-ASCII character."""
    return b >= 0x80 or b == 0x5F or 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


# The byte range allowed next in a UTF-8 character, by lead byte (the first continuation).
_FIRST_CONTINUATION = {
    0xE0: (0xA0, 0xBF),
    0xED: (0x80, 0x9F),
    0xF0: (0x90, 0xBF),
    0xF4: (0x80, 0x8F),
}
START = (0, 0)  # (lo, hi) == START: at a character start


def utf8_next(state: tuple[int, int, int], b: int) -> tuple[int, int, int]:
    """(remaining continuation bytes, lo, hi) after byte b."""
    remaining = state[0]
    if remaining:
        remaining -= 1
        return (remaining, 0x80, 0xBF) if remaining else (0, 0, 0)
    if b < 0x80:
        return (0, 0, 0)
    n = 1 if b < 0xE0 else 2 if b < 0xF0 else 3
    lo, hi = _FIRST_CONTINUATION.get(b, (0x80, 0xBF))
    return (n, lo, hi)


class Masks:
    """Additive logit masks (0 allowed, -inf not), built once per model device."""

    def __init__(self, device: torch.device, vocab: int):
        text = torch.full((vocab,), NEG, device=device)
        allowed = [9, 10, 13, *range(0x20, 0x7F), *range(0xC2, 0xF5)]
        text[allowed] = 0.0
        self.start = text
        word = torch.full((vocab,), NEG, device=device)
        word[[b for b in allowed if is_word_byte(b)]] = 0.0
        self.word_start = word
        non_word = torch.full((vocab,), NEG, device=device)
        non_word[[b for b in allowed if not is_word_byte(b)]] = 0.0
        self.non_word = non_word
        self._ranges: dict[tuple[int, int], torch.Tensor] = {}
        self._device, self._vocab = device, vocab

    def continuation(self, lo: int, hi: int) -> torch.Tensor:
        mask = self._ranges.get((lo, hi))
        if mask is None:
            mask = torch.full((self._vocab,), NEG, device=self._device)
            mask[lo : hi + 1] = 0.0
            self._ranges[(lo, hi)] = mask
        return mask

    def for_state(self, utf8: tuple[int, int, int], word: bool = False) -> torch.Tensor:
        if utf8[0]:
            return self.continuation(utf8[1], utf8[2])
        return self.word_start if word else self.start


def masks_for(runtime: Runtime) -> Masks:
    masks = getattr(runtime, "_masks", None)
    if masks is None:
        masks = runtime._masks = Masks(runtime.device, runtime.head_b.numel())
    return masks


# ---------------------------------------------------------------- greedy (inline completion)


@torch.inference_mode()
def greedy_line(
    runtime: Runtime,
    state: State,
    *,
    word: bool,
    max_chars: int,
    should_stop: Callable[[], bool],
) -> bytes | None:
    """The most likely continuation to a natural end.

    With ``word`` (the cursor follows an identifier character) it ends where the
    identifier ends, unless that is right away, in which case it runs on to the
    end of the line like the plain case. It never includes the line break.
    """
    masks = masks_for(runtime)
    logits = runtime.logits(state)[0]
    out = bytearray()
    utf8 = (0, 0, 0)
    chars = 0
    while True:
        if should_stop():
            return None
        sym = int(torch.argmax(logits + masks.for_state(utf8)))
        if not utf8[0]:  # a character starts here: may the text end before it?
            if sym in (_NL, _CR) or chars >= max_chars:
                break
            if word and not is_word_byte(sym):
                if out:
                    break
                word = False  # the identifier is complete: continue to the line's end
            chars += 1
        out.append(sym)
        utf8 = utf8_next(utf8, sym)
        logits, state = runtime.step(runtime.symbols([sym]), state)
        logits = logits[0]
    return bytes(out)


# ---------------------------------------------------------------- beam (completion)


@dataclass
class Candidate:
    text: bytes
    logprob: float  # of the text followed by a character that is not part of a word


@torch.inference_mode()
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
    beams: list[tuple[bytes, float, tuple[int, int, int]]] = [(b"", 0.0, (0, 0, 0))]
    logprobs = torch.log_softmax(runtime.logits(state), dim=-1)
    finished: dict[bytes, float] = {}
    for _ in range(max_bytes):
        if should_stop():
            return None
        # 1) beams at a character boundary may end here: the next character is not a word's
        mask = torch.stack([masks.for_state(u, word=True) for _, _, u in beams])
        ends = torch.logsumexp(logprobs + masks.non_word, dim=-1).tolist()
        for (text, score, u), end in zip(beams, ends, strict=True):
            if text and not u[0]:
                finished[text] = max(finished.get(text, NEG), score + end)
        # 2) extend every beam by its best word bytes; keep the best `width` overall
        scores = (
            logprobs + mask + torch.tensor([s for _, s, _ in beams], device=mask.device)[:, None]
        )
        top = torch.topk(scores.flatten(), k=min(width, scores.numel()))
        bar = sorted(finished.values(), reverse=True)[width - 1] if len(finished) >= width else NEG
        nxt = []
        for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            if value == NEG or value <= bar:
                continue  # scores only fall: this can no longer make the list
            row, sym = divmod(index, scores.shape[1])
            text, _, u = beams[row]
            nxt.append((row, text + bytes([sym]), value, utf8_next(u, sym)))
        if not nxt:
            break
        rows = runtime.symbols([r for r, *_ in nxt])
        logits, state = runtime.step(
            runtime.symbols([t[-1] for _, t, _, _ in nxt]), select_states(state, rows)
        )
        logprobs = torch.log_softmax(logits, dim=-1)
        beams = [(t, s, u) for _, t, s, u in nxt]
    best = sorted(finished.items(), key=lambda kv: -kv[1])[:width]
    return [Candidate(text, score) for text, score in best]


# ---------------------------------------------------------------- sampling (hallucinate a function)


@dataclass
class Sampled:
    text: bytes  # the forced bytes and the sampled ones, cut where the function ends
    reason: str  # "end_of_function", "length", "stopped"


@torch.inference_mode()
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
) -> Sampled:
    """Sample text after the state until the stop rule ends the function.

    ``forced`` is read first and is part of the text (a function's first
    word). ``stop_rule(prime_extra)`` makes a rule that has seen the line
    prefix plus ``prime_extra``; when the rule reports a declaration
    (``int f(void);``) sampling goes on to the next function.
    ``on_text`` receives the text as it grows, whole lines at a time, never
    trailing whitespace a stop rule might still remove.
    """
    masks = masks_for(runtime)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    if forced:
        state = runtime.read(state, forced)
    logits = runtime.logits(state)[0]
    rule = stop_rule(forced)
    out = bytearray()
    utf8 = (0, 0, 0)
    emitted = 0
    chars = 0
    restarts = 0
    base = 0  # where the current rule's generated text starts in out
    reason = "length"
    while chars < max_chars or utf8[0]:
        if should_stop():
            reason = "stopped"
            break
        scores = logits + masks.for_state(utf8)
        if temperature <= 0:
            sym = int(torch.argmax(scores))
        else:
            probs = torch.softmax(scores.float().cpu() / temperature, dim=-1)
            sym = int(torch.multinomial(probs, 1, generator=generator))
        out.append(sym)
        chars += not utf8[0]
        utf8 = utf8_next(utf8, sym)
        result = rule.feed(bytes([sym]))
        if result is not None:
            if result.reason == "end_of_function" or restarts >= 3:
                del out[base + result.keep :]
                reason = "end_of_function"
                break
            restarts += 1  # a declaration: wait for the function after it
            rule, base = stop_rule(forced + bytes(out)), len(out)
        if on_text is not None and sym == _NL:
            ready = bytes(out).rstrip()
            if len(ready) > emitted:
                on_text(forced + ready if emitted == 0 else ready[emitted:])
                emitted = len(ready)
        logits, state = runtime.step(runtime.symbols([sym]), state)
        logits = logits[0]
    text = bytes(out)
    if utf8[0]:  # stopped inside a character
        text = text[: len(text) - _partial_length(text)]
    if on_text is not None and (len(text) > emitted or (emitted == 0 and forced)):
        on_text(forced + text if emitted == 0 else text[emitted:])
    return Sampled(forced + text, reason)


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
