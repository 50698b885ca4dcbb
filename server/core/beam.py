"""Completion items: the most likely word continuations at a cursor, by a batched beam search."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .predictor import Predictor, State
from .utf8 import AT_START, NEG, Utf8, log_softmax, logsumexp, masks_for, utf8_next


@dataclass
class Candidate:
    text: bytes
    logprob: float  # of the text followed by a character that is not part of a word


def beam_words(
    runtime: Predictor,
    state: State,
    *,
    width: int,
    max_bytes: int,
    should_stop: Callable[[], bool],
) -> list[Candidate] | None:
    """The most likely word continuations at the cursor, best first (a batched beam search)."""
    masks = masks_for(runtime.vocab)
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


def describe_probability(logprob: float) -> str:
    return f"{100 * math.exp(logprob):.1f}%"
