"""Adaptation in the core: the mixture as a predictor, what teaches it, the workspace reader."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from lsp_helpers import numpy_runtime, tiny_model

from charcode.server.core.adaptive import AdaptiveModel
from charcode.server.core.completer import Completer, OneModel, TextAt
from charcode.server.core.mixture import MixedPredictor
from charcode.server.core.workspace_memory import WorkspaceMemory

WORD = b"frobnicate_the_widget"
PROJECT = b"".join(
    b"def handler_%d(x):\n    return %s(x, %d)\n\n\n" % (i, WORD, i) for i in range(60)
)


@pytest.fixture(scope="module")
def lstm():
    return numpy_runtime(tiny_model(seed=0, steps=60))


class Learned:
    def __init__(self, model):
        self.model = model

    def get(self, language, model_path=None):
        return self.model if language == "python" else None


def logsumexp(v: np.ndarray) -> float:
    m = v.max()
    return float(m + np.log(np.exp(v - m).sum()))


def test_the_mixture_is_a_predictor_with_proper_distributions(lstm):
    model = AdaptiveModel(16 << 20)
    model.learn(PROJECT)
    mixed = MixedPredictor(lstm, model)
    state = mixed.read(mixed.start, b"def f(x):\n    return frob")
    scores = mixed.logits(state)
    assert scores.shape == (1, lstm.vocab)
    assert abs(logsumexp(scores[0].astype(np.float64))) < 1e-4  # log-probabilities
    # stepping and reading agree
    stepped = mixed.start
    for b in b"def f(x):\n    return frob":
        step_scores, stepped = mixed.step([b], stepped)
    assert np.allclose(step_scores, scores, atol=1e-4)
    # a batch of rows, as the beam uses it
    batch = mixed.select(state, [0, 0, 0])
    out, _ = mixed.step([ord("n"), ord("x"), ord("(")], batch)
    assert out.shape == (3, lstm.vocab)


def test_ghost_text_knows_the_workspace_after_learning_it(lstm):
    at = TextAt("file:///new.py", "python", 1, b"def g(y):\n    return frob", 25)
    static = Completer(OneModel("python", lstm)).ghost_text(at, 48)
    model = AdaptiveModel(16 << 20)
    model.learn(PROJECT)
    adaptive = Completer(OneModel("python", lstm), adaptive=Learned(model))
    assert adaptive.ghost_text(at, 48) == WORD[4:]
    assert static != WORD[4:]  # the tiny LSTM alone has never seen the word


def test_predicting_never_teaches_only_the_lines_left_do(lstm):
    model = AdaptiveModel(16 << 20)
    model.learn(PROJECT)
    completer = Completer(OneModel("python", lstm), adaptive=Learned(model))
    first = TextAt("file:///a.py", "python", 1, b"x = frob", 8)
    before = dict(model.stats)
    for _ in range(3):
        completer.ghost_text(first, 48)
        completer.words(first)
        completer.learn_document(first)  # the cursor is on the first line: nothing left yet
    assert model.stats == before
    # two lines left behind: requests alone learn nothing; learn_document learns them once,
    # however often it is called
    data = b"import os\nvalue = 1\nx = frob"
    for version in (2, 3):
        completer.snapshots.edited("file:///a.py", version, 0)
        at = TextAt("file:///a.py", "python", version, data, len(data))
        scored = model.stats.get("bytes_scored", 0)
        completer.ghost_text(at, 48)
        completer.words(at)
        assert model.stats.get("bytes_scored", 0) == scored
        completer.learn_document(at)
    assert model.stats["bytes_scored"] - before.get("bytes_scored", 0) == len(
        b"import os\nvalue = 1\n"
    )


def test_document_learning_stops_between_steps_when_told(lstm):
    from charcode.server.core.completer import DOC_LEARN_HORIZON, DOC_LEARN_STEP

    model = AdaptiveModel(16 << 20)
    model.learn(PROJECT)
    completer = Completer(OneModel("python", lstm), adaptive=Learned(model))
    big = PROJECT * 3 + b"x = "
    at = TextAt("file:///big.py", "python", 1, big, len(big))

    def stop_after_one_step() -> bool:
        return model.stats["bytes_scored"] > 0

    completer.learn_document(at, stop_after_one_step)
    assert 0 < model.stats["bytes_scored"] <= DOC_LEARN_STEP
    completer.learn_document(at)  # goes on where it stopped, to the horizon
    assert model.stats["bytes_scored"] <= DOC_LEARN_HORIZON
    assert model.stats["bytes_scored"] > DOC_LEARN_HORIZON - 100  # whole lines: from one
    done = model.stats["bytes_scored"]
    completer.learn_document(at)
    assert model.stats["bytes_scored"] == done


def make_workspace(root: Path, outside: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_bytes(PROJECT)
    (root / "pkg" / "b.py").write_bytes(b"import os\n" * 50)
    (root / "binary.py").write_bytes(b"\0\1\2" * 100)
    (root / "huge.py").write_bytes(b"x = 1\n" * 300_000)  # over the 1 MB file cap
    (root / "node_modules").mkdir()
    (root / "node_modules" / "vendored.py").write_bytes(b"vendored = True\n")
    outside.mkdir()
    (outside / "secret.py").write_bytes(b"password = 'hunter2'\n")
    (root / "link.py").symlink_to(outside / "secret.py")
    (root / "outside").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    unreadable = root / "unreadable.py"
    unreadable.write_bytes(b"y = 2\n")
    unreadable.chmod(0)
    return root


def wait_ready(memory: WorkspaceMemory, language: str = "python") -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        summary = memory.summary().get(language, {})
        if summary.get("state") == "ready":
            return summary
        time.sleep(0.05)
    raise AssertionError(f"learning never finished: {memory.summary()}")


def test_the_workspace_reader_keeps_to_the_roots_and_the_filters(tmp_path):
    ws = make_workspace(tmp_path / "ws", tmp_path / "elsewhere")
    memory = WorkspaceMemory(cache_dir=tmp_path / "cache")
    memory.configure([ws], enabled=True, memory_mb=16)
    assert memory.get("python") is None  # starts learning; nothing yet
    summary = wait_ready(memory)
    learned = set(memory._learned["python"].files)
    expected = {str(ws / "pkg" / "a.py"), str(ws / "pkg" / "b.py")}
    if os.geteuid() != 0:  # root reads a chmod-0 file anyway
        assert learned == expected
    else:
        assert expected <= learned <= expected | {str(ws / "unreadable.py")}
    assert summary["bytes"] >= len(PROJECT) and memory.get("python") is not None
    # a file outside the roots is never learned, even when told it changed
    before = summary["bytes"]
    memory.file_changed("python", tmp_path / "elsewhere" / "secret.py")
    assert memory.summary()["python"]["bytes"] == before
    # a saved file inside is learned again
    (ws / "pkg" / "b.py").write_bytes(b"import sys\n" * 60)
    memory.file_changed("python", ws / "pkg" / "b.py")
    assert memory.summary()["python"]["bytes"] == before + len(b"import sys\n" * 60)
    memory.stop()


def test_learned_state_persists_and_a_corrupt_cache_is_rebuilt(tmp_path, caplog):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.py").write_bytes(PROJECT)
    cache = tmp_path / "cache"
    first = WorkspaceMemory(cache_dir=cache)
    first.configure([ws], enabled=True, memory_mb=16)
    first.start("python", None)
    wait_ready(first)
    first.stop()
    at = TextAt("file:///n.py", "python", 1, b"return frob", 11)
    lstm = numpy_runtime(tiny_model(seed=0, steps=60))
    want = Completer(OneModel("python", lstm), adaptive=first).ghost_text(at, 48)
    # a second session loads the state and reads no file again
    second = WorkspaceMemory(cache_dir=cache)
    second.configure([ws], enabled=True, memory_mb=16)
    second.start("python", None)
    wait_ready(second)
    assert second.summary()["python"]["files"] == 1
    assert Completer(OneModel("python", lstm), adaptive=second).ghost_text(at, 48) == want
    # a damaged cache: a log line, and learning from the files again
    (state,) = cache.glob("*.state")
    state.write_bytes(state.read_bytes()[:100])
    third = WorkspaceMemory(cache_dir=cache)
    third.configure([ws], enabled=True, memory_mb=16)
    with caplog.at_level(logging.WARNING, logger="charcode.server.core.workspace_memory"):
        third.start("python", None)
        summary = wait_ready(third)
    assert "cannot be used" in caplog.text
    assert summary["files"] == 1 and summary["bytes"] == len(PROJECT)


@pytest.mark.parametrize(
    "index", ['{"files": {"a.py": 3}}', "[1, 2]", '{"files": {"a.py": ["x"]}}', "not json"]
)
def test_a_hostile_cache_index_is_rebuilt(tmp_path, index):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.py").write_bytes(PROJECT)
    first = WorkspaceMemory(cache_dir=tmp_path / "cache")
    first.configure([ws], enabled=True, memory_mb=16)
    first.start("python", None)
    wait_ready(first)
    (saved,) = (tmp_path / "cache").glob("*.json")
    saved.write_text(index)
    again = WorkspaceMemory(cache_dir=tmp_path / "cache")
    again.configure([ws], enabled=True, memory_mb=16)
    again.start("python", None)
    summary = wait_ready(again)
    assert summary["files"] == 1 and summary["bytes"] == len(PROJECT)


def test_adaptation_off_learns_nothing(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.py").write_bytes(PROJECT)
    memory = WorkspaceMemory(cache_dir=tmp_path / "cache")
    memory.configure([ws], enabled=False, memory_mb=16)
    assert memory.get("python") is None
    assert memory.summary() == {}


async def test_the_server_learns_its_workspace_and_says_so(trained_checkpoint, tmp_path):
    """Over LSP: modelInfo and debugStats report what was learned; ghost text then knows the
    workspace's identifiers; with adaptation off nothing is learned."""
    from lsp_helpers import make_workspace, server_env, start_editor, stop_editor

    ws = make_workspace(tmp_path / "ws", trained_checkpoint)
    (ws / "handlers.py").write_bytes(PROJECT)
    editor, _ = await start_editor(ws, tmp_path, env=server_env(tmp_path))
    try:
        uri = (ws / "new.py").as_uri()
        editor.open(uri, "def g(y):\n    return frob")
        deadline = time.monotonic() + 60
        while True:
            info = await editor.command("charcode.modelInfo", {"language": "python"})
            learned = info["languages"]["python"]["learned"]
            if learned["state"] == "ready" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)  # polling, with the deadline above
        assert learned["state"] == "ready"
        assert learned["files"] == 1 and learned["bytes"] == len(PROJECT)
        from lsprotocol import types

        ghost = await editor.inline(uri, types.Position(line=1, character=len("    return frob")))
        assert ghost.items[0].insert_text == WORD[4:].decode()
        # after answering, the line the cursor has left is learned in the idle time
        while True:
            stats = await editor.command("charcode.debugStats")
            learned = stats["adaptation"]["python"]
            if learned["document_bytes"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)  # polling, with the deadline above
        assert learned["files"] == 1
        assert learned["document_bytes"] == len(b"def g(y):\n")
    finally:
        await stop_editor(editor)
    off, _ = await start_editor(
        ws, tmp_path, init_options={"charcode": {"adaptation": False}}, env=server_env(tmp_path)
    )
    try:
        info = await off.command("charcode.modelInfo", {"language": "python"})
        assert info["languages"]["python"]["learned"]["files"] == 0
    finally:
        await stop_editor(off)


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are Linux's")
def test_the_workspace_reader_yields_the_cpu_to_typing():
    from charcode.server.core.workspace_memory import _yield_cpu_to_typing

    seen = {}

    def reader():
        before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        _yield_cpu_to_typing()
        seen["reader"] = (before, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=reader)
    t.start()
    t.join(10)
    before, after = seen["reader"]
    assert after == min(19, before + 10)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
