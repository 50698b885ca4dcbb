"""Decoders: valid UTF-8 that never ends inside a character, natural ends, ranked words, seeds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from lsp_helpers import numpy_runtime, tiny_model

from charcode.server.core.beam import beam_words
from charcode.server.core.ghost import GreedyPath, greedy_line
from charcode.server.core.sampler import sample_function
from charcode.server.core.stoprules import cut_function, make_stop_rule
from charcode.server.core.utf8 import is_word_byte

NEVER = lambda: False  # noqa: E731


@pytest.fixture(scope="module")
def trained():
    return numpy_runtime(tiny_model(seed=0, steps=120))


@pytest.fixture(scope="module")
def noisy():
    """A random model whose favourite bytes are multi-byte leads: decoders must still emit valid text."""
    model = tiny_model(seed=3)
    with torch.no_grad():
        model.head.bias[0x80:0x100] += 6.0
    return numpy_runtime(model)


PRIMES = [
    b"",
    b"def ",
    b"    result = []\n    for item in it",
    "x = '中文".encode(),
    "# 😀 ".encode(),
]


@pytest.mark.parametrize("prime", PRIMES)
@pytest.mark.parametrize("word", [False, True])
def test_greedy_is_valid_text_without_line_breaks(trained, noisy, prime, word):
    for rt in (trained, noisy):
        out = greedy_line(
            GreedyPath(rt, rt.read(rt.start, prime)), word=word, max_chars=30, should_stop=NEVER
        )
        text = out.decode("utf-8")  # strict
        assert "\n" not in text and "\r" not in text
        assert len(text) <= 30


def test_greedy_in_a_word_stops_at_the_word_end(trained):
    rt = trained
    out = greedy_line(
        GreedyPath(rt, rt.read(rt.start, b"    result = []\n    for item in it")),
        word=True,
        max_chars=40,
        should_stop=NEVER,
    )
    assert out and all(is_word_byte(b) for b in out)


def test_greedy_stops_when_told(trained):
    assert (
        greedy_line(
            GreedyPath(trained, trained.start), word=False, max_chars=40, should_stop=lambda: True
        )
        is None
    )


@pytest.mark.parametrize("prime", PRIMES)
def test_beam_words_are_ranked_words(trained, noisy, prime):
    for rt in (trained, noisy):
        cands = beam_words(rt, rt.read(rt.start, prime), width=5, max_bytes=16, should_stop=NEVER)
        assert cands is not None and len(cands) <= 5
        scores = [c.logprob for c in cands]
        assert scores == sorted(scores, reverse=True)
        assert float(np.exp(scores).sum()) <= 1.0 + 1e-5
        for c in cands:
            assert c.text and all(is_word_byte(b) for b in c.text)
            c.text.decode("utf-8")


def test_beam_finds_the_trained_word(trained):
    rt = trained
    cands = beam_words(
        rt,
        rt.read(
            rt.start, b"def load_1(items):\n    result = []\n    for item in items:\n        re"
        ),
        width=5,
        max_bytes=16,
        should_stop=NEVER,
    )
    assert cands[0].text == b"sult"


def sample(rt, seed, prime=b"", forced=b"def ", max_chars=400, temperature=0.8, on_text=None):
    return sample_function(
        rt,
        rt.read(rt.start, prime + forced),
        forced=b"",
        stop_rule=lambda extra: make_stop_rule("indent", forced + extra, "python"),
        temperature=temperature,
        seed=seed,
        max_chars=max_chars,
        should_stop=NEVER,
        on_text=on_text,
    )


def test_sampling_is_deterministic_per_seed(trained):
    a, b, c = sample(trained, 7), sample(trained, 7), sample(trained, 8)
    assert a.text == b.text
    assert a.text != c.text


def test_sampling_ends_with_the_function(trained):
    for seed in range(5):
        got = sample(trained, seed)
        got.text.decode("utf-8")
        if got.reason == "end_of_function":
            assert cut_function("indent", b"def ", got.text + b"x") is not None


def test_the_text_so_far_grows_line_by_line_to_the_result(trained, noisy):
    for rt in (trained, noisy):
        versions = []
        got = sample(rt, 3, on_text=versions.append, temperature=1.0)
        assert versions[-1] == got.text
        assert len(versions) >= 2 or b"\n" not in got.text.rstrip()
        for older, newer in itertools.pairwise(versions):
            assert newer.startswith(older)  # no guard: nothing is taken back
        for v in versions[:-1]:
            v.decode("utf-8")
            assert v == v.rstrip()  # never whitespace a stop rule may still remove


def test_forced_text_is_part_of_the_result(trained):
    rt = trained
    pieces = []
    got = sample_function(
        rt,
        rt.start,
        forced=b"def ",
        stop_rule=lambda extra: make_stop_rule("indent", extra, "python"),
        temperature=0.5,
        seed=1,
        max_chars=300,
        should_stop=NEVER,
        on_text=pieces.append,
    )
    assert got.text.startswith(b"def ")
    assert pieces[-1] == got.text


def test_a_greedy_path_read_from_further_on_is_the_same_text(trained):
    rt = trained
    prime = b"def load_1(items):\n    result = []\n    for item in items:\n        "
    path = GreedyPath(rt, rt.read(rt.start, prime))
    whole = greedy_line(path, word=False, max_chars=40, should_stop=NEVER)
    assert len(whole) > 3
    for k in (1, 2, len(whole) - 1):
        fresh = GreedyPath(rt, rt.read(rt.start, prime + whole[:k]))
        again = greedy_line(fresh, word=False, max_chars=40, should_stop=NEVER)
        assert greedy_line(path, start=k, word=False, max_chars=40, should_stop=NEVER) == again
        assert abs(path.state(k)[0] - fresh.states[0][0]).max() < 1e-4


@pytest.mark.parametrize("temperature", [0.0, 0.3, 1.0, 2.0, 5.0])
def test_sample_text_is_always_valid_utf8(noisy, temperature):
    """`charcode sample`'s draw: whole characters only, at any temperature, even from a
    model that favours stray continuation and lead bytes."""
    from charcode.server.core.sampler import sample_text

    for seed in range(3):
        text = sample_text(noisy, b"x = ", length=200, temperature=temperature, seed=seed)
        text.decode("utf-8")  # raises on invalid UTF-8
        assert text.startswith(b"x = ")


def test_ghost_text_runs_over_the_block_a_line_opens_when_allowed(trained):
    """inlineMaxLines > 1: after a line that opens a block, the ghost text goes on over the
    deeper-indented lines, to the dedent, at most that many lines; 1 is one line, as before."""
    from charcode.server.core.completer import Completer, OneModel, TextAt

    data = b"def load_1(items):\n    result = []\n    for item in items:"
    at = TextAt("file:///m.py", "python", 1, data, len(data))
    completer = Completer(OneModel("python", trained))
    one = completer.ghost_text(at, 48)
    assert b"\n" not in one
    several = Completer(OneModel("python", trained)).ghost_text(at, 48, max_lines=4)
    assert several.startswith(one) and 1 <= several.count(b"\n") + 1 <= 4
    for line in several.split(b"\n")[1:]:  # every further line is inside the block
        assert line.startswith(b"     ") or not line.strip()


def _boundaries(text: bytes) -> set[int]:
    def kind(b):
        return 0 if is_word_byte(b) else 1 if b in (0x20, 0x09) else 2

    return {
        i for i in range(1, len(text)) if kind(text[i - 1]) != kind(text[i]) or kind(text[i]) == 2
    }


@pytest.mark.parametrize("min_prob", [0.9, 0.5, 0.2, 0.05])
def test_ghost_text_ends_where_it_stops_being_likely(trained, min_prob):
    """With min_prob the ghost text is the longest token-boundary prefix of the full one whose
    probability is still >= min_prob (at least its first token)."""
    rt = trained
    for prime in (b"def load(items):\n    ", b"    result = []\n    for item in it", b"x = "):
        path = GreedyPath(rt, rt.read(rt.start, prime))
        full = greedy_line(path, word=False, max_chars=40, should_stop=NEVER)
        cut = greedy_line(path, word=False, max_chars=40, should_stop=NEVER, min_prob=min_prob)
        assert full.startswith(cut) and cut
        logp = np.cumsum(path.logps[: len(full)])  # logp[i]: of full[: i + 1]
        ends = sorted(_boundaries(full + path_next(path, len(full))) | {len(full)})
        first = ends[0]
        likely = [e for e in ends if logp[e - 1] >= np.log(min_prob)]
        assert len(cut) == max([first, *likely])


def path_next(path: GreedyPath, i: int) -> bytes:
    """The path's next byte after position i (what decides whether i is a token end)."""
    return bytes([path.sym(i, NEVER)])
