"""Models over LSP: missing and broken checkpoints, settings, and picking up a new checkpoint."""

from __future__ import annotations

import asyncio
import json
import struct
import time

from lsp_helpers import (
    end_of,
    make_workspace,
    start_editor,
    stop_editor,
    tiny_model,
    unbundled_language,
    write_checkpoint,
)
from lsprotocol import types


async def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def hostile_header(path, layers=16, hidden=8192):
    meta = {
        "format_version": 1,
        "language": "c",
        "model": {"layers": layers, "hidden": hidden, "embedding": 8192},
    }
    header = json.dumps({"__metadata__": {"charcode": json.dumps(meta)}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)


async def test_missing_and_broken_models_are_reported_once(trained_checkpoint, tmp_path):
    ws = make_workspace(tmp_path / "ws", trained_checkpoint)
    models = ws / ".charcode" / "models"
    (models / "c.safetensors").write_bytes(
        b"\x80\x04\x95 not a safetensors file, maybe a pickle" * 10
    )
    hostile_header(models / "cpp.safetensors")
    editor, _ = await start_editor(ws, tmp_path)
    try:
        missing = unbundled_language()
        docs = {lang: (ws / f"f.{lang}").as_uri() for lang in (missing, "c", "cpp", "python")}
        for lang, uri in docs.items():
            editor.open(
                uri,
                "int x = 1;\nre" if lang != "python" else "def f(items):\n    re",
                language=lang,
            )
        for _ in range(3):
            for lang, uri in docs.items():
                pos = end_of(editor.texts[uri], "utf-16")
                inline = await editor.inline(uri, pos)
                words = await editor.complete(uri, pos)
                if lang == "python":
                    assert words.items, "python keeps working"
                else:
                    assert not inline.items and not words.items
        msgs = [m.message for m in editor.client.messages]
        assert sum(f"'{missing}'" in m for m in msgs) == 1
        assert sum("c model" in m and "c.safetensors" in m for m in msgs) == 1
        assert sum("cpp model" in m and "8192" in m for m in msgs) == 1
        assert len(msgs) == 3, msgs
        info = await editor.command("charcode.modelInfo")
        assert "error" in info["languages"]["c"] and "error" in info["languages"]["cpp"]
        assert info["languages"]["python"]["layers"] == 1
        assert missing not in info["languages"]
    finally:
        await stop_editor(editor)


async def test_invalid_settings_fall_back_with_a_message(trained_checkpoint, tmp_path):
    ws = make_workspace(tmp_path / "ws", trained_checkpoint)
    editor, _ = await start_editor(
        ws,
        tmp_path,
        init_options={
            "charcode": {"inlineMaxLength": "long", "device": "tpu", "languages": ["python"]}
        },
    )
    try:
        await wait_for(lambda: len(editor.client.messages) >= 2)
        text = " ".join(m.message for m in editor.client.messages)
        assert "charcode.inlineMaxLength" in text and "charcode.device" in text
        uri = (ws / "a.py").as_uri()
        editor.open(uri, "def f(items):\n    re")
        assert (await editor.complete(uri, end_of(editor.texts[uri], "utf-16"))).items
        # didChangeConfiguration: disable, then enable again with a bare object
        editor.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"charcode": {"enable": False}})
        )
        assert not (await editor.complete(uri, end_of(editor.texts[uri], "utf-16"))).items
        editor.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"charcode": {"inlineMaxLength": 3}})
        )
        got = await editor.inline(uri, end_of(editor.texts[uri], "utf-16"))
        assert all(len(i.insert_text) <= 3 for i in got.items)
    finally:
        await stop_editor(editor)


async def test_a_new_checkpoint_is_used_without_a_restart(trained_checkpoint, tmp_path):
    lang = unbundled_language()  # (the tiny model knows Python, but any id will do)
    ws = tmp_path / "ws"
    ws.mkdir()
    user = tmp_path / "models"
    editor, _ = await start_editor(ws, tmp_path, init_options={"modelsDir": str(user)})
    try:
        uri = (ws / "a.txt").as_uri()
        editor.open(uri, "def f(items):\n    re", language=lang)
        pos = end_of(editor.texts[uri], "utf-16")
        assert not (await editor.complete(uri, pos)).items
        write_checkpoint(user / f"{lang}.safetensors", tiny_model(seed=0, steps=150), language=lang)
        deadline = time.monotonic() + 10
        while not (await editor.complete(uri, pos)).items:
            assert time.monotonic() < deadline, "the new checkpoint was not picked up"
            await asyncio.sleep(0.3)
        info = await editor.command("charcode.modelInfo", {"language": lang})
        assert info["languages"][lang]["source"] == "user"
        # an explicit path in settings wins
        explicit = tmp_path / "explicit.safetensors"
        write_checkpoint(explicit, tiny_model(seed=9, size="tiny"), language=lang)
        editor.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"charcode": {"modelsDir": str(user), "models": {lang: str(explicit)}}}
            )
        )
        info = await editor.command("charcode.modelInfo", {"language": lang})
        assert info["languages"][lang]["path"] == str(explicit)
        assert info["languages"][lang]["source"] == "explicit"
    finally:
        await stop_editor(editor)
