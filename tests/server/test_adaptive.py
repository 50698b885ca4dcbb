"""The adaptive predictor (charcode.server.core.adaptive): a proper distribution, pure
predictions, determinism, state files (round trip and hostile ones), memory cap."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from charcode.server.core.adaptive import (
    CONTEXT_BYTES,
    MIN_MEMORY,
    AdaptiveModel,
    AdaptiveStateError,
)

MEM = MIN_MEMORY  # small tables keep the tests fast

TEXT = (
    b"def add(a, b):\n    return a + b\n\n\n"
    b"def sub(a, b):\n    return a - b\n\n\n"
    b"class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n"
) * 4


def lstm_rows(n: int, seed: int = 0) -> np.ndarray:
    """Some LSTM-like log-probabilities: random logits, log-softmaxed."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, size=(n, 257))
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.fixture(scope="module")
def trained() -> AdaptiveModel:
    m = AdaptiveModel(MEM)
    m.learn(TEXT)
    m.score(TEXT[:300], lstm_rows(300))
    return m


def test_mixture_is_a_proper_distribution(trained):
    for ctx in (b"", b"d", TEXT[:57], TEXT[:200], bytes(range(256)) * 2):
        for row in (lstm_rows(1, 3)[0], np.zeros(257), np.full(257, 1 / 257)):
            p = trained.predict(ctx, row)
            assert p.shape == (257,) and p.dtype == np.float64
            assert abs(p.sum() - 1.0) < 1e-9
            assert (p[:256] > 0).all() and p[256] > 0


def test_extreme_lstm_inputs_stay_proper(trained):
    row = np.full(257, -np.inf)
    row[ord("x")] = 0.0  # the LSTM is certain
    for r in (
        row,
        np.full(257, -1e300),
        np.full(257, 1e300),
        np.where(np.arange(257) == 7, 1.0, 0.0),
    ):
        p = trained.predict(b"abc", r)
        assert abs(p.sum() - 1.0) < 1e-9 and (p > 0).all() and np.isfinite(p).all()


def _mask(allowed) -> np.ndarray:
    m = np.full(257, -np.inf, dtype=np.float32)
    m[list(allowed)] = 0.0
    return m


def test_best_is_the_argmax_of_the_mixture_under_a_mask(trained):
    """best() (greedy decoding's search) picks what argmax(predict_logs + mask) picks."""
    masks = [
        np.zeros(257, np.float32),
        _mask(range(0x20, 0x7F)),
        _mask(range(0x80, 0xC0)),  # inside a UTF-8 character
        _mask([256]),  # only the boundary
        _mask([ord("q"), 256]),
    ]
    rows = lstm_rows(60, 11).astype(np.float32)
    for k in range(60):
        ctx = TEXT[: k * 7]
        out = np.empty((1, 257), np.float32)
        trained.predict_logs((ctx,), rows[k : k + 1], out)
        p = trained.predict(ctx, rows[k].astype(np.float64))
        assert np.allclose(np.exp(out[0]), p, rtol=1e-5, atol=1e-12)
        for mask in masks:
            sym, prob = trained.best(ctx, rows[k], mask)
            assert sym == int(np.argmax(out[0] + mask))
            assert prob == pytest.approx(p[sym], rel=1e-6)
    assert trained.best(b"abc", rows[0], np.full(257, -np.inf, np.float32)) == (-1, 0.0)


def test_predict_is_pure(trained):
    row = lstm_rows(1, 5)[0]
    a = trained.predict(TEXT[:90], row)
    b = trained.predict(TEXT[:90], row)
    assert np.array_equal(a, b)
    m1, m2 = AdaptiveModel(MEM), AdaptiveModel(MEM)
    m1.learn(TEXT)
    m2.learn(TEXT)
    lp = lstm_rows(200, 1)
    for k in range(0, 200, 7):
        m1.predict(TEXT[:k] + b"zzqq hypothetical", lp[k])
    assert np.array_equal(m1.score(TEXT[:200], lp), m2.score(TEXT[:200], lp))


def test_score_matches_predict(trained):
    """score's bits are -log2 of what predict gives before the byte is learned."""
    m = AdaptiveModel(MEM)
    m.learn(TEXT)
    lp = lstm_rows(40, 2)
    doc = TEXT[100:140]
    want = [-np.log2(m.predict(doc[:i], lp[i])[doc[i]]) for i in range(len(doc))]
    # predict saw each prefix before learning it: replay, learning one byte at a time
    got = [m.score(doc[i : i + 1], lp[i : i + 1], context=doc[:i])[0] for i in range(len(doc))]
    assert abs(got[0] - want[0]) < 1e-6
    m2 = AdaptiveModel(MEM)
    m2.learn(TEXT)
    assert np.allclose(m2.score(doc, lp), got, atol=1e-9)


def test_learning_is_deterministic():
    lp = lstm_rows(len(TEXT), 4)
    runs = []
    for _ in range(2):
        m = AdaptiveModel(MEM)
        m.learn(TEXT[:500])
        m.learn(b"")
        bits = m.score(TEXT, lp)
        runs.append((bits, m.predict(TEXT[:33], lp[5]), m._core.dumps()))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]


def test_learning_improves_bits_on_repeated_text():
    m = AdaptiveModel(MEM)
    first = m.score(TEXT, None).mean()
    second = m.score(TEXT, None).mean()
    assert second < 0.5 * first and second < 1.0
    m2 = AdaptiveModel(MEM)
    m2.learn(TEXT)
    assert m2.score(TEXT, None).mean() < first
    # mixed with an LSTM that knows nothing, the engine still learns the text
    lp = np.full((len(TEXT), 257), -np.log(257.0))
    assert AdaptiveModel(MEM).score(TEXT, lp).mean() < 3.0


def test_save_load_round_trip(tmp_path, trained):
    path = tmp_path / "state.bin"
    trained.save(path)
    back = AdaptiveModel.load(path)
    row = lstm_rows(1, 9)[0]
    for ctx in (b"", TEXT[:70], b"class Po"):
        assert np.array_equal(trained.predict(ctx, row), back.predict(ctx, row))
    assert back.stats == trained.stats
    lp = lstm_rows(50, 8)
    assert np.array_equal(AdaptiveModel.load(path).score(TEXT[:50], lp), back.score(TEXT[:50], lp))
    assert not [p for p in tmp_path.iterdir() if p.name != "state.bin"]  # no temporary left


def test_bad_state_files_raise(tmp_path, trained):
    good = tmp_path / "good.bin"
    trained.save(good)
    blob = good.read_bytes()
    cases = {
        "empty": b"",
        "garbage": os.urandom(5000),
        "truncated": blob[: len(blob) // 2],
        "header_only": blob[:120],
        "trailing": blob + b"x",
        "flipped": blob[:1000] + bytes([blob[1000] ^ 1]) + blob[1001:],
        "checksum": blob[:-8] + bytes(8),
    }
    # hostile: a valid magic and version with sizes that promise a huge table
    hostile = bytearray(blob[:200])
    struct.pack_into("<Q", hostile, 32, 1 << 62)  # memory_cap
    cases["hostile_sizes"] = bytes(hostile)
    for name, data in cases.items():
        p = tmp_path / f"{name}.bin"
        p.write_bytes(data)
        with pytest.raises(AdaptiveStateError):
            AdaptiveModel.load(p)
    with pytest.raises(AdaptiveStateError):
        AdaptiveModel.load(tmp_path / "missing.bin")
    with pytest.raises(AdaptiveStateError):
        AdaptiveModel.load(tmp_path)  # a directory


def _checksum(data: bytes) -> int:
    """The state file's checksum (as _adaptive.c computes it), to forge valid-looking files."""
    m64 = (1 << 64) - 1
    n = len(data)
    h = 0xCBF29CE484222325 ^ n
    words = np.frombuffer(data[: n - n % 8], dtype="<u8").tolist()
    for v in words:
        h = ((h ^ v) * 0x100000001B3) & m64
        h ^= h >> 29
    for b in data[n - n % 8 :]:
        h = ((h ^ b) * 0x100000001B3) & m64
    h ^= h >> 31
    h = (h * 0x7FB5D329728EA185) & m64
    h ^= h >> 27
    h = (h * 0x81DADEF4BC2DD44D) & m64
    h ^= h >> 33
    return h


def test_forged_state_with_valid_checksum_is_still_checked(tmp_path):
    m = AdaptiveModel(MEM)
    m.learn(TEXT)
    good = tmp_path / "good.bin"
    m.save(good)
    blob = bytearray(good.read_bytes())
    body = bytes(blob[:-8])
    assert struct.pack("<Q", _checksum(body)) == bytes(blob[-8:])  # the forger's tool works
    # lr_mix (the first float after the 8 counters that follow the 32-byte preamble) = NaN
    forged = bytearray(body)
    struct.pack_into("<f", forged, 96, float("nan"))
    p = tmp_path / "forged.bin"
    p.write_bytes(bytes(forged) + struct.pack("<Q", _checksum(bytes(forged))))
    with pytest.raises(AdaptiveStateError, match="parameters"):
        AdaptiveModel.load(p)


def test_memory_cap_respected():
    for cap in (MIN_MEMORY, 24 << 20, 64 << 20):
        m = AdaptiveModel(cap)
        s = m.stats
        assert s["memory_bytes"] <= cap and s["memory_bytes"] > 0.8 * cap
    with pytest.raises(ValueError):
        AdaptiveModel(1 << 20)


def test_empty_inputs():
    m = AdaptiveModel(MEM)
    m.learn(b"")
    assert m.score(b"", np.zeros((0, 257))).shape == (0,)
    assert m.score(b"", None, context=b"abc").shape == (0,)
    p = m.predict(b"", np.zeros(257))
    assert abs(p.sum() - 1) < 1e-9
    assert m.stats["files_learned"] == 1 and m.stats["bytes_learned"] == 0


def test_bad_arguments():
    m = AdaptiveModel(MEM)
    with pytest.raises(ValueError):
        m.score(b"ab", np.zeros((3, 257)))
    with pytest.raises(ValueError):
        m.score(b"a", np.full((1, 257), np.nan))
    with pytest.raises(ValueError):
        m.predict(b"a", np.zeros(10))


def test_huge_input_keeps_memory_bounded():
    m = AdaptiveModel(MEM)
    rng = np.random.default_rng(0)
    blob = rng.integers(0, 256, size=1_000_000, dtype=np.uint8).tobytes()
    m.learn(blob)
    s = m.stats
    assert s["bytes_learned"] == len(blob) and s["memory_bytes"] <= MEM
    p = m.predict(blob[-CONTEXT_BYTES:], np.zeros(257))
    assert abs(p.sum() - 1) < 1e-9 and (p > 0).all()
    # a long context is fine too (only its tail matters)
    assert np.array_equal(m.predict(blob, np.zeros(257)), p)


def test_stats_count_what_was_learned():
    m = AdaptiveModel(MEM)
    m.learn(b"abc")
    m.learn(b"defg")
    m.score(b"hi", None)
    s = m.stats
    assert s["files_learned"] == 2 and s["bytes_learned"] == 7
    assert s["bytes_scored"] == 2 and s["documents_scored"] == 1


def test_predict_while_learning_in_another_thread_is_safe():
    """The server learns in a background thread while the inference thread predicts:
    no crash, proper distributions (values may reflect a half-learned state)."""
    import threading

    m = AdaptiveModel(MEM)
    blob = TEXT * 300
    t = threading.Thread(target=m.learn, args=(blob,))
    t.start()
    row = lstm_rows(1, 11)[0]
    n = 0
    while t.is_alive() or n < 5:
        p = m.predict(TEXT[: 20 + n % 100], row)
        assert abs(p.sum() - 1.0) < 1e-9 and (p > 0).all()
        n += 1
    t.join()
    assert m.stats["bytes_learned"] == len(blob)
