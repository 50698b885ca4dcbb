"""Position encodings over LSP: random incremental edits with emoji, CJK and CRLF keep the server's
text identical to the editor's, and completion ranges are exact, in UTF-8, UTF-16 and UTF-32."""

from __future__ import annotations

import random

import pytest
from lsp_helpers import (
    end_of,
    expected_words,
    in_process_runtime,
    make_workspace,
    position_of,
    server_env,
    start_editor,
    stop_editor,
)
from lsprotocol import types

PIECES = [
    "a",
    "re",
    "result",
    " ",
    "\n",
    "\r\n",
    "\r",
    "é",
    "中文",
    "😀",
    "𝔘x",
    "\t",
    "\x00",
    "\x0c",
    "\u2028",
]


def boundaries(text: str) -> list[int]:
    return [
        i
        for i in range(len(text) + 1)
        if not (0 < i < len(text) and text[i - 1] == "\r" and text[i] == "\n")
    ]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
async def test_random_edits_and_completion_ranges(encoding, trained_checkpoint, tmp_path):
    ws = make_workspace(tmp_path / "ws", trained_checkpoint)
    editor, init = await start_editor(
        ws, tmp_path, encodings=[encoding], env=server_env(tmp_path, CHARCODE_DEBUG="1")
    )
    try:
        assert init.capabilities.position_encoding == encoding
        rng = random.Random(encoding)
        uri = (ws / "edits.py").as_uri()
        editor.open(uri, "x = '😀'\r\nfor 中 in it")
        for _ in range(120):
            text = editor.texts[uri]
            ok = boundaries(text)
            i, j = sorted(rng.sample(ok, 2) if len(ok) > 1 else [0, 0])
            if rng.random() < 0.5:
                j = i  # insertions are the common case
            new = "".join(rng.choice(PIECES) for _ in range(rng.randrange(3)))
            editor.edit(uri, position_of(text, i, encoding), position_of(text, j, encoding), new)
        server = await editor.command("charcode.debugDocument", {"uri": uri})
        assert server == {"text": editor.texts[uri], "version": editor.versions[uri]}

        # completion after emoji and CJK on a CRLF line: the range covers exactly the typed word
        text = "s = '😀😀中'\r\nfor item in 😀 + it"
        uri2 = (ws / "ranges.py").as_uri()
        editor.open(uri2, text)
        cursor = end_of(text, encoding)
        got = await editor.complete(uri2, cursor)
        words = expected_words(in_process_runtime(trained_checkpoint), text, len(text))
        assert [i.label for i in got.items] == ["it" + w for w in words]
        start = position_of(text, len(text) - 2, encoding)
        for item in got.items:
            assert item.text_edit.range == types.Range(start=start, end=cursor)
        # a cursor past the end of the line is clamped to it
        far = types.Position(line=cursor.line, character=cursor.character + 50)
        got_far = await editor.complete(uri2, far)
        assert [i.label for i in got_far.items] == [i.label for i in got.items]
        assert all(i.text_edit.range.end == cursor for i in got_far.items)
    finally:
        await stop_editor(editor)
