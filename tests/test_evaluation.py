"""charcode eval --task keystrokes|hallucinate|bits: hand-counted fixtures, validators, the CLI.

The keystroke counts below are worked out by hand in the comments. Models are tiny
and untrained (or barely trained): the tests check the bookkeeping and that the
simulation drives the server's engine, never that a model is good.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch

from charcode.server.core.completer import Completer, OneModel, TextAt
from charcode.server.core.lstm import NumpyLSTM
from charcode.server.core.settings import Settings
from charcode.server.core.snapshots import SnapshotCache
from charcode.server.core.validity import Unavailable, check, checker
from charcode.server.measure.functions import evaluate_hallucinate, hallucination_summary
from charcode.server.measure.keystrokes import (
    GhostTextTyping,
    Script,
    accept_length,
    evaluate_keystrokes,
    head,
    is_boundary,
    percentile,
    type_text,
)
from charcode.server.measure.word_baseline import WordCompleter
from charcode.training.checkpoint import save_checkpoint
from charcode.training.model import CharLSTM, ModelConfig

TEXT = "import os\n\n\ndef load(items):\n    result = []\n    for item in items:\n        result.append(item)\n    return result\n"


@functools.cache
def tiny_model(steps: int = 0) -> CharLSTM:
    """A 1x32 model, untrained or fitted a little to TEXT (built once per session)."""
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig.named("tiny"))
    if steps:
        data = torch.tensor([256] + list(TEXT.encode()), dtype=torch.long)
        opt = torch.optim.Adam(model.parameters(), lr=0.03)
        for _ in range(steps):
            logits, _ = model(data[None, :-1])
            loss = torch.nn.functional.cross_entropy(logits[0], data[1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def numpy_runtime(model: CharLSTM) -> NumpyLSTM:
    return NumpyLSTM(model.config, {k: v.detach().numpy() for k, v in model.state_dict().items()})


@pytest.fixture(scope="module")
def runtime() -> NumpyLSTM:
    return numpy_runtime(tiny_model(steps=15))


def typed(text: str, completer, partial: bool = False, free_indent: bool = True):
    script = Script.of(text.encode(), free_indent)
    return type_text(script, completer, "eval:///t", partial)


def charcode_typing(runtime, language: str = "python") -> GhostTextTyping:
    completer = Completer(OneModel(language, runtime))
    return GhostTextTyping(completer, language, Settings().inline_max_length)


# ---------------------------------------------------------------- counting


def test_script_counts_characters_not_bytes_and_indentation_is_free():
    assert Script.of(b"if x:\n    y\n").chars == 8  # "if x:\n" 6 + "y\n" 2; 4 blanks free
    assert Script.of(b"if x:\n    y\n", free_indent=False).chars == 12
    assert Script.of("é = 1\r\n".encode()).chars == 6  # é is one key, CRLF one Enter
    assert Script.of(b"").chars == 0


def test_token_boundaries():
    text = b"abc = foo(bar)"
    assert [i for i in range(len(text) + 1) if is_boundary(text, i)] == [
        0, 3, 4, 5, 6, 9, 10, 13, 14,
    ]  # fmt: skip


def test_accept_length_full_and_partial():
    s = Script.of(b"result.extend(x)\n")
    assert accept_length(s, 0, b"result.extend(x)", False) == (16, True)
    assert accept_length(s, 0, b"result.append(x)", False) == (0, False)
    assert accept_length(s, 0, b"result.append(x)", True) == (7, False)  # "result."
    assert accept_length(s, 0, b"res", True) == (0, False)  # would stop inside "result"
    assert accept_length(s, 0, b"rx", True) == (0, False)  # one character: typing is as quick


def test_percentile():
    assert percentile([], 50) == 0.0
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert math.isclose(percentile(list(map(float, range(101))), 95), 95.0)


# ---------------------------------------------------------------- the word baseline


def test_word_baseline_completes_a_repeated_word():
    # "alpha beta " is typed (11 keys); at "a" (key 12) "alpha" is the only word starting
    # with "a": Tab inserts "lpha" (key 13). 16 characters in 13 keys.
    out = typed("alpha beta alpha", WordCompleter())
    assert (out.chars, out.keystrokes, out.shown, out.accepted_full) == (16, 13, 1, 1)
    assert out.saved == pytest.approx(3 / 16)


def test_word_baseline_most_recent_word_first():
    # At "a", "al", "alp" of "alps" the suggestion is "alpha" (3 shown, wrong). At "a", "al",
    # "alp" of the last word the most recent match is "alps" (3 shown, wrong); at "alph" it is
    # "alpha": Tab inserts the one missing character. 21 keys for 21 characters.
    out = typed("alpha beta alps alpha", WordCompleter())
    assert (out.chars, out.keystrokes, out.shown, out.accepted_full) == (21, 21, 7, 1)
    assert out.saved == 0.0


def test_word_baseline_needs_an_identifier_prefix_and_whole_words():
    w = WordCompleter()
    w.insert(b"alphabet alpha ")
    assert w.suggestion() is None  # nothing typed yet
    w.insert(b"al")
    assert w.suggestion() == b"pha"
    w.insert(b"pha")
    assert w.suggestion() == b"bet"  # "alpha" itself adds nothing
    # Accepting "alpha" when "alphabet" is being typed would stop inside the word: not accepted.
    out = typed("alpha alphabet", WordCompleter())
    assert out.accepted_full == 0 and out.keystrokes == 14


# ---------------------------------------------------------------- charcode, through the core's ghost text


class Oracle:
    """Stands in for the core's Completer in tests: known ghost text by cursor offset."""

    def __init__(self, suggestions: dict[int, str], asked: list[int]):
        self.suggestions, self.asked = suggestions, asked
        self.snapshots = SnapshotCache()

    def forget(self, uri: str) -> None:
        self.snapshots.forget(uri)

    def ghost_text(self, at: TextAt, max_chars: int, should_stop=None, max_lines=1) -> bytes:
        assert max_chars == Settings().inline_max_length  # the server's default setting
        self.asked.append(at.offset)
        return self.suggestions.get(at.offset, "").encode()

    def learn_document(self, at: TextAt, should_stop=None) -> None:
        pass  # nothing to learn: the suggestions are fixed


def test_forced_suggestions_full_and_partial_accept():
    asked: list[int] = []
    oracle = Oracle({0: "abc = foo(baz)", 6: "foo(bar)"}, asked)
    text = "abc = foo(bar)\n"  # 15 characters

    # Full accept: the first suggestion is wrong at its end; "abc = " is typed (6 keys),
    # Tab takes "foo(bar)" (1), Enter (1): 8 keys.
    out = typed(text, GhostTextTyping(oracle, "python", Settings().inline_max_length))
    assert (out.chars, out.keystrokes, out.shown, out.accepted_full) == (15, 8, 2, 1)
    assert out.saved == pytest.approx(7 / 15)
    assert asked == [0, 1, 2, 3, 4, 5, 6, 14]  # every keystroke asks, as the editor does
    assert len(out.latencies) == len(asked)

    # Partial accept: "abc = foo(" is the longest correct prefix ending on a token
    # boundary (1 key), then "bar)\n" is typed (5): 6 keys.
    out = typed(text, GhostTextTyping(oracle, "python", Settings().inline_max_length), True)
    assert (out.keystrokes, out.shown, out.accepted_full, out.accepted_partial) == (6, 1, 0, 1)
    assert out.saved == pytest.approx(9 / 15)


def test_indentation_is_inserted_at_once_and_completion_asked_after_it():
    asked: list[int] = []
    oracle = Oracle({13: "return 1"}, asked)
    # "def f():\n" 9 keys, the editor indents, Tab takes "return 1", Enter: 11 keys of 18.
    out = typed(
        "def f():\n    return 1\n", GhostTextTyping(oracle, "python", Settings().inline_max_length)
    )
    assert (out.chars, out.keystrokes, out.accepted_full) == (18, 11, 1)
    assert not set(asked) & {9, 10, 11, 12}


def test_typing_drives_the_snapshot_cache_one_step_per_byte(runtime):
    seen: list[tuple[int, bytes | None]] = []

    class Recording(GhostTextTyping):
        def suggest(self):
            s = super().suggest()
            seen.append((len(self.data), s))
            return s

    typist = Recording(Completer(OneModel("python", runtime)), "python", 48)
    text = TEXT[:90]
    out = typed(text, typist, partial=True)
    assert 0 <= out.saved < 1 and out.shown == sum(s is not None for _, s in seen)
    # No byte is read twice: a keystroke costs at most one step, as in the server.
    assert typist.completer.snapshots.stats.bytes_read <= seen[-1][0]
    # And the ghost text is the one a fresh completer gives for the prefix read whole.
    data = text.encode()
    for offset, s in seen[::5]:
        fresh = Completer(OneModel("python", runtime))
        want = fresh.ghost_text(TextAt("eval:///fresh", "python", 1, data[:offset], offset), 48)
        assert s == (want or None)


def test_evaluate_keystrokes_reports_both_side_by_side(runtime):
    texts = [("a.py", b"alpha = 1\nalpha = alpha + 1\n"), ("b.py", b"def f(x):\n    return x\n")]
    r = evaluate_keystrokes(runtime, "python", texts)
    assert r["files"] == 2 and r["chars"] == 28 + 19
    for s in (r["charcode"], r["charcode"]["partial_accept"], r["word_baseline"]):
        assert 0 <= s["keystrokes_saved"] < 1 and 0 <= s["acceptance_rate"] <= 1
        assert s["chars"] == r["chars"] and s["latency_ms"]["p50"] <= s["latency_ms"]["p95"]
        assert s["latency_ms"]["calls"] == s["keystrokes"]  # one request before each keystroke
    assert r["charcode"]["latency_ms"]["calls"] > 0
    assert [row["file"] for row in r["per_file"]] == ["a.py", "b.py"]
    # The word baseline on a.py: "alpha" completes twice at its first letter (2 x 3 saved)...
    # minus nothing: 28 characters in 22 keys.
    words = type_text(Script.of(texts[0][1]), WordCompleter(), "u")
    assert words.keystrokes == 22 and r["per_file"][0]["word_baseline"] == round(6 / 28, 4)


# ---------------------------------------------------------------- hallucinate and validators


def test_hallucination_summary_by_hand():
    rows = [
        {"seed": 0, "chars": 10, "stopped": "end_of_function", "valid": True, "error": ""},
        {"seed": 1, "chars": 20, "stopped": "end_of_function", "valid": False, "error": "x"},
        {"seed": 2, "chars": 30, "stopped": "length", "valid": False, "error": "y"},
        {"seed": 3, "chars": 40, "stopped": "end_of_function", "valid": True, "error": ""},
    ]
    for r in rows:
        r["text"] = "t"
    s = hallucination_summary("python", rows, "ast", None, 0.8, 100)
    assert s["validity_rate"] == 0.5
    assert s["validity_rate_stopped_by_rule"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["stop_rule_share"] == 0.75 and s["mean_chars"] == 25.0
    assert s["stopped"] == {"end_of_function": 3, "length": 1}
    assert [e["seed"] for e in s["invalid_examples"]] == [1, 2]
    none = hallucination_summary("go", rows, None, "no checker", 0.8, 100)
    assert none["validity_rate"] is None and none["checker_unavailable"] == "no checker"


def test_evaluate_hallucinate_uses_the_core_path(runtime):
    r = evaluate_hallucinate(runtime, "python", seeds=3, max_chars=80)
    assert r["seeds"] == 3 and sum(r["stopped"].values()) == 3
    assert r["checker"].startswith("ast")
    for f in r["functions"]:
        assert f["chars"] >= len("def ") and f["stopped"] in ("end_of_function", "length")
    again = evaluate_hallucinate(runtime, "python", seeds=3, max_chars=80)
    assert again["functions"] == r["functions"]  # seeded: the same functions


VALID = {
    "python": "def f(x):\n    return [i for i in x if i]\n",
    "c": "static int f(const char *s) {\n    int n = 0;\n    while (*s++) n++;\n    return n;\n}\n",
    "lua": "local function f(t)\n  local n = 0\n  for _ in pairs(t) do n = n + 1 end\n  return n\nend\n",
}
INVALID = {
    "python": "def f(x:\n    return x\n",
    "c": "static int f(int x) {\n    return x + ;\n",
    "lua": "local function f(x)\n  if x then return 1\nend\n",
}


@pytest.mark.parametrize("language", ["python", "c", "lua"])
def test_validators(language):
    try:
        checker(language)
    except Unavailable as e:
        pytest.skip(str(e))
    assert check(language, VALID[language]).valid
    bad = check(language, INVALID[language])
    assert not bad.valid and bad.error.startswith("line ")


def test_validator_for_unknown_language_is_unavailable():
    with pytest.raises(Unavailable):
        checker("cobol")


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "python.safetensors"
    save_checkpoint(path, tiny_model(steps=15), {"language": "python", "extensions": [".py"]})
    return path


def run_cli(capsys, *argv: str):
    from charcode.server.command_line import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_keystrokes_json(tmp_path, checkpoint, capsys):
    (tmp_path / "a.py").write_text(TEXT)
    (tmp_path / "b.py").write_text("x = 1\n")
    code, out, _ = run_cli(
        capsys, "eval", "--task", "keystrokes", "--model", str(checkpoint), "--json",
        "--max-files", "1", "--max-chars", "40", str(tmp_path),
    )  # fmt: skip
    assert code == 0
    r = json.loads(out)
    for key in ("keystrokes_saved", "acceptance_rate"):
        assert 0 <= r["charcode"][key] <= 1 and 0 <= r["word_baseline"][key] <= 1
    assert set(r["charcode"]["latency_ms"]) >= {"p50", "p95"}
    assert r["files"] == 1 and r["settings"]["max_chars"] == 40
    assert r["chars"] <= 40 and "partial_accept" in r["charcode"]


def test_cli_hallucinate_json(checkpoint, capsys):
    code, out, _ = run_cli(
        capsys, "eval", "--task", "hallucinate", "--model", str(checkpoint), "--json",
        "--seeds", "2", "--max-chars", "40",
    )  # fmt: skip
    assert code == 0
    r = json.loads(out)
    assert r["seeds"] == 2 and 0 <= r["stop_rule_share"] <= 1 and "validity_rate" in r


def test_cli_bits_json_and_plot(tmp_path, checkpoint, capsys):
    (tmp_path / "a.py").write_text(TEXT)
    png = tmp_path / "bits.png"
    code, out, err = run_cli(
        capsys, "eval", "--model", str(checkpoint), "--json", "--plot", str(png), str(tmp_path)
    )
    assert code == 0
    r = json.loads(out)
    assert r["files"] == 1 and r["bits_per_char"] > 0
    if "matplotlib" in err:
        assert not png.exists()  # said why, wrote nothing, still answered
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert sum(b["chars"] for b in r["by_position"]) == len(TEXT)


def test_cli_errors_are_one_line(tmp_path, checkpoint, capsys):
    code, _, err = run_cli(capsys, "eval", "--task", "keystrokes", "--model", str(checkpoint))
    assert code == 2 and "give the files or folders" in err
    code, _, err = run_cli(capsys, "eval", "--task", "keystrokes", "--model", str(checkpoint), "x")
    assert code == 2 and "x does not exist" in err
    code, _, err = run_cli(
        capsys, "eval", "--task", "hallucinate", "--model", str(checkpoint), "--temperature", "9"
    )
    assert code == 2 and "--temperature" in err and "Traceback" not in err


def test_file_choice_spread_and_held_out_split(tmp_path):
    from charcode.server.cli_eval import find_eval_files as _eval_files
    from charcode.training.corpus import split_files

    for i in range(10):
        (tmp_path / f"m{i}.py").write_text(f"x = {i}\n" * (i + 1))
    every = _eval_files([tmp_path], "python")
    assert [p.name for p in every] == [f"m{i}.py" for i in range(10)]
    assert [p.name for p in _eval_files([tmp_path], "python", max_files=3)] == [
        "m1.py", "m5.py", "m8.py",
    ]  # fmt: skip
    held = _eval_files([tmp_path], "python", split="val", val_fraction=0.3)
    is_val = split_files([p.name for p in every], 0.3)
    assert held == [p for p, v in zip(every, is_val, strict=True) if v] and held


def test_bits_by_position_agrees_with_bits_per_char(runtime):
    """Each file is scored whole from its start; the bins add up to the same total, and the
    NumPy scorer agrees with the torch model read the same way."""
    from charcode.server.measure.bits import bits_by_position, file_bits, position_bins

    assert position_bins(10) == [(0, 1), (1, 3), (3, 7), (7, 10)]
    doc = TEXT.encode()
    per_file = [file_bits(runtime, doc), file_bits(runtime, doc[:50])]
    bins = bits_by_position(per_file)
    assert sum(b["chars"] for b in bins) == len(doc) + 50
    mean = sum(b["bits_per_char"] * b["chars"] for b in bits_by_position(per_file[:1])) / len(doc)
    assert mean == pytest.approx(per_file[0].mean(), abs=1e-3)
    model = tiny_model(steps=15)
    with torch.inference_mode():
        logits, _ = model(torch.tensor([[256, *doc]]))
    ref = -torch.log_softmax(logits[0, :-1], -1)[torch.arange(len(doc)), torch.tensor(list(doc))]
    assert per_file[0] == pytest.approx(ref.numpy() / math.log(2), abs=1e-3)


def test_head_cuts_at_a_line_end():
    assert head(b"ab\ncd\nef", 7) == b"ab\ncd\n"
    assert head(b"abcdef", 3) == b"abc"
    assert head("é\né".encode(), 10) == "é\né".encode()


def test_held_out_files_of_the_checkpoints_own_corpus(tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    for i in range(6):
        (repo / f"m{i}.py").write_text(f"value_{i} = {i}\nvalue_{i} += 1\n")
    ckpt = tmp_path / "python.safetensors"
    meta = {"language": "python", "training": {"corpus": {"roots": [str(repo)]}}}
    save_checkpoint(ckpt, tiny_model(), meta)
    code, out, err = run_cli(
        capsys, "eval", "--task", "keystrokes", "--model", str(ckpt), "--split", "val",
        "--val-fraction", "0.3", "--json",
    )  # fmt: skip
    assert code == 0 and str(repo) in err
    from charcode.training.corpus import split_files

    names = sorted(p.name for p in repo.iterdir())
    held = [n for n, v in zip(names, split_files(names, 0.3), strict=True) if v]
    assert [Path(row["file"]).name for row in json.loads(out)["per_file"]] == held
