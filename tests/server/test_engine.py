"""The snapshot cache: same states as reading from scratch, bounded work and memory."""

from __future__ import annotations

import random

import pytest
import torch
from lsp_helpers import TRAIN_TEXT, numpy_runtime, tiny_model

from charcode.server.core.snapshots import SnapshotCache as Engine


@pytest.fixture(scope="module")
def rt():
    return numpy_runtime(tiny_model(seed=0, steps=30))


def scratch(rt, data: bytes, start: int = 0):
    return rt.read(rt.start, data[start:])


def close(rt, a, b, tol=1e-4) -> bool:
    """Same predictions (log-probabilities) and hidden state, to float rounding."""
    la = torch.log_softmax(torch.from_numpy(rt.logits(a)), -1)
    lb = torch.log_softmax(torch.from_numpy(rt.logits(b)), -1)
    return (la - lb).abs().max().item() < tol and abs(a[0] - b[0]).max() < tol


def test_random_edits_and_requests_match_reading_from_scratch(rt):
    rng = random.Random(0)
    eng = Engine(interval=64, horizon=10_000)
    text = bytearray(TRAIN_TEXT.encode()[:900])
    version = 1
    for _ in range(60):
        if rng.random() < 0.6:
            a = rng.randrange(len(text) + 1)
            b = min(len(text), a + rng.randrange(4))
            text[a:b] = rng.choice([b"x", b"", b"\n    ", b"return "])
            version += 1
            eng.edited("u", version, a)
        offset = rng.randrange(len(text) + 1)
        got = eng.state_at("u", version, bytes(text), offset, rt)
        assert close(rt, got, scratch(rt, bytes(text[:offset])))


def test_typing_reads_one_byte_per_keystroke(rt):
    eng = Engine(interval=64)
    text = TRAIN_TEXT.encode()[:500]
    eng.state_at("u", 1, text, len(text), rt)
    before = eng.stats.bytes_read
    for i, ch in enumerate(b"return x", start=2):
        text += bytes([ch])
        eng.edited("u", i, len(text) - 1)
        eng.state_at("u", i, text, len(text), rt)
    assert eng.stats.bytes_read - before == len(b"return x")


def test_a_far_cursor_reads_at_most_the_horizon(rt):
    eng = Engine(interval=64, horizon=300)
    text = TRAIN_TEXT.encode() * 3
    offset = len(text) - 5
    got = eng.state_at("u", 1, text, offset, rt)
    start = text.find(b"\n", offset - 300, offset) + 1
    assert eng.stats.bytes_read == offset - start <= 300
    assert close(rt, got, scratch(rt, text[:offset], start))


def test_stale_requests_get_nothing(rt):
    eng = Engine()
    eng.state_at("u", 1, b"abc", 3, rt)
    eng.edited("u", 2, 1)
    assert eng.state_at("u", 1, b"abc", 3, rt) is None
    assert eng.state_at("u", 2, b"aXc", 3, rt) is not None


def test_stopping_returns_none(rt):
    eng = Engine(interval=8)
    assert eng.state_at("u", 1, b"x" * 100, 100, rt, should_stop=lambda: True) is None


def test_a_read_stopped_again_and_again_still_gets_there(rt):
    """A job stopped after each short read (a background job between keystrokes) goes on
    from where the last one stopped, so the bytes are read once in all."""
    from charcode.server.core.snapshots import READ_STEP

    eng = Engine(interval=256, horizon=10_000)
    text = TRAIN_TEXT.encode()[:900]

    def one_step_then_stop():
        budget = iter([False, True])  # one step of reading, then told to stop
        return lambda: next(budget, True)

    state, tries = None, 0
    while state is None and tries < 100:
        tries += 1
        state = eng.state_at("u", 1, text, len(text), rt, should_stop=one_step_then_stop())
    assert state is not None and tries <= len(text) // READ_STEP + 1
    assert eng.stats.bytes_read == len(text)
    assert close(rt, state, scratch(rt, text))


def test_memory_stays_under_the_cap_across_documents(rt):
    per = rt.state_bytes
    eng = Engine(interval=16, cap_bytes=50 * per)
    text = TRAIN_TEXT.encode()[:400]
    for n in range(40):
        eng.state_at(f"u{n}", 1, text, len(text) - n, rt)
        assert eng.summary()["bytes"] <= 50 * per
    # the most recent document keeps its snapshots
    assert eng.state_at("u39", 1, text, len(text) - 39, rt) is not None
    assert eng.stats.exact_hits >= 1


def test_a_model_change_drops_the_document_cache(rt):
    eng = Engine()
    other = numpy_runtime(tiny_model(seed=5))
    eng.state_at("u", 1, b"hello", 5, rt)
    got = eng.state_at("u", 1, b"hello", 5, other)
    assert abs(got[0] - other.read(other.start, b"hello")[0]).max() < 1e-5
