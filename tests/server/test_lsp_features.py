"""End to end over LSP (the real server process): capabilities, inline completion, completion, modelInfo."""

from __future__ import annotations

import re

import pytest
import pytest_asyncio
from lsp_helpers import (
    expected_inline,
    expected_words,
    in_process_runtime,
    make_workspace,
    position_of,
    server_env,
    start_editor,
    stop_editor,
    unbundled_language,
)
from lsprotocol import types

pytestmark = pytest.mark.asyncio(loop_scope="module")

CASES = {
    "word": (
        "import os\n\n\ndef load_1(items):\n    result = []\n    for item in items:\n        re",
        None,
    ),
    "line": ("def parse_2(items):\n    ", None),
    "cjk": ("名前 = '中文'\ndef 関数(items):\n    re", None),
    "emoji": ("s = '😀😀'  # 😀\nfor item in it", None),
    "crlf": ("def f(items):\r\n    result = []\r\n    for item in items:\r\n        re", None),
    "middle": ("def count_3(items):\n    return result\n", 26),  # after "re" in "return"
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(trained_checkpoint, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("features")
    ws = make_workspace(tmp / "ws", trained_checkpoint)
    editor, init = await start_editor(ws, tmp, env=server_env(tmp, CHARCODE_DEBUG="1"))
    yield editor, init, in_process_runtime(trained_checkpoint), ws
    await stop_editor(editor)


async def test_capabilities_are_advertised(session):
    _, init, _, _ = session
    caps = init.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert caps.text_document_sync.open_close
    assert {"charcode.hallucinateFunction", "charcode.train", "charcode.modelInfo"} <= set(
        caps.execute_command_provider.commands
    )
    assert caps.position_encoding == "utf-16"
    assert init.server_info.name == "charcode"


@pytest.mark.parametrize("case", CASES)
async def test_inline_completion_matches_in_process_decoding(session, case):
    editor, _, rt, ws = session
    text, index = CASES[case]
    index = len(text) if index is None else index
    uri = (ws / f"inline_{case}.py").as_uri()
    editor.open(uri, text)
    cursor = position_of(text, index, "utf-16")
    got = await editor.inline(uri, cursor)
    want = expected_inline(rt, text, index)
    if not want:
        assert not got.items
        return
    assert [item.insert_text for item in got.items] == [want]
    assert got.items[0].range == types.Range(start=cursor, end=cursor)


@pytest.mark.parametrize("case", ["word", "cjk", "emoji", "crlf"])
async def test_completion_items_replace_the_typed_word(session, case):
    editor, _, rt, ws = session
    text, _ = CASES[case]
    uri = (ws / f"complete_{case}.py").as_uri()
    editor.open(uri, text)
    cursor = position_of(text, len(text), "utf-16")
    got = await editor.complete(uri, cursor)
    typed = re.search(r"\w*$", text).group(0)
    start = position_of(text, len(text) - len(typed), "utf-16")
    want = [typed + w for w in expected_words(rt, text, len(text))]
    assert got.is_incomplete
    assert [item.label for item in got.items] == want
    assert want, "the trained model should propose words here"
    for rank, item in enumerate(got.items):
        assert item.text_edit == types.TextEdit(
            range=types.Range(start=start, end=cursor), new_text=item.label
        )
        assert item.sort_text == f"{rank:04d}"
    probs = [float(item.detail.split()[-1].rstrip("%")) for item in got.items]
    assert probs == sorted(probs, reverse=True)


async def test_typing_reads_only_the_new_bytes(session):
    editor, _, rt, ws = session
    uri = (ws / "typing.py").as_uri()
    text = "import os\n\n\ndef load_1(items):\n    "
    editor.open(uri, text)
    await editor.inline(uri, position_of(text, len(text), "utf-16"))
    before = (await editor.stats())["cache"]
    for ch in "result = [] # zz":
        cursor = editor.type(uri, ch)
        got = await editor.inline(uri, cursor)
        want = expected_inline(rt, editor.texts[uri], len(editor.texts[uri]))
        assert [i.insert_text for i in got.items] == ([want] if want else [])
    after = (await editor.stats())["cache"]
    # each keystroke reads its one byte, or takes the state from the last ghost text's path
    read, reused = after["bytes_read"] - before["bytes_read"], after["reused"] - before["reused"]
    assert read + reused == len("result = [] # zz")
    server_copy = await editor.command("charcode.debugDocument", {"uri": uri})
    assert server_copy["text"] == editor.texts[uri]


async def test_model_info(session):
    editor, _, _, ws = session
    info = await editor.command("charcode.modelInfo")
    py = info["languages"]["python"]
    assert py["path"] == str(ws / ".charcode" / "models" / "python.safetensors")
    assert (py["source"], py["layers"], py["hidden"], py["val_bits_per_char"]) == (
        "workspace",
        1,
        32,
        2.5,
    )
    assert py["corpus"]["files"] == 1 and py["size_bytes"] > 0 and py["name"] == "Python"
    one = await editor.command("charcode.modelInfo", {"language": "python"})
    assert one == {"languages": {"python": py}}
    lang = unbundled_language()
    none = await editor.command("charcode.modelInfo", {"language": lang})
    assert "no model" in none["languages"][lang]["error"]


async def test_multi_line_ghost_text_uses_the_documents_line_breaks(trained_checkpoint, tmp_path):
    """inlineMaxLines 4 over LSP: at the end of a line that opens a block the ghost text may run
    over the block's lines; in a CRLF document its line breaks are CRLF; it is what the core
    proposes at that cursor."""
    from charcode.server.core.completer import Completer, OneModel, TextAt

    ws = make_workspace(tmp_path / "ws", trained_checkpoint)
    options = {"charcode": {"inlineMaxLines": 4, "adaptation": False}}
    editor, _ = await start_editor(ws, tmp_path, init_options=options, env=server_env(tmp_path))
    try:
        rt = in_process_runtime(trained_checkpoint)
        for eol in ("\n", "\r\n"):
            text = eol.join(["import os", "", "", "def load_1(items):"])
            uri = (ws / f"multi_{len(eol)}.py").as_uri()
            editor.open(uri, text)
            got = await editor.inline(uri, position_of(text, len(text), "utf-16"))
            data = text.encode()
            want = Completer(OneModel("python", rt)).ghost_text(
                TextAt(uri, "python", 1, data, len(data)), 48, max_lines=4
            )
            want = want.decode().replace("\n", eol)
            assert want.count(eol) >= 1, "the block's lines are proposed"
            assert [i.insert_text for i in got.items] == [want]
    finally:
        await stop_editor(editor)


async def test_inline_min_probability_decides_how_far_ghost_text_goes(trained_checkpoint, tmp_path):
    """inlineMinProbability 0 over LSP: the whole greedy line; the default ends it where its
    probability falls below 0.5 (a prefix of it, at a token end)."""
    ws = make_workspace(tmp_path / "ws", trained_checkpoint)
    rt = in_process_runtime(trained_checkpoint)
    text = "import os\n\n\ndef load_1(items):\n    "
    lengths = {}
    for min_prob in (0.0, 0.5):
        options = {"charcode": {"inlineMinProbability": min_prob, "adaptation": False}}
        editor, _ = await start_editor(ws, tmp_path, init_options=options, env=server_env(tmp_path))
        try:
            uri = (ws / "confidence.py").as_uri()
            editor.open(uri, text)
            got = await editor.inline(uri, position_of(text, len(text), "utf-16"))
            want = expected_inline(rt, text, len(text), min_prob=min_prob)
            assert [i.insert_text for i in got.items] == ([want] if want else [])
            lengths[min_prob] = want
        finally:
            await stop_editor(editor)
    assert lengths[0.0].startswith(lengths[0.5])
