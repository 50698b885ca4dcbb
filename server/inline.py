"""textDocument/inlineCompletion: ghost text, the most likely continuation to a natural end.

Greedy decoding from the LSTM state at the cursor: to the end of the
identifier when the cursor follows an identifier character (on to the end of
the line if the identifier is already complete), else to the end of the line;
at most ``inlineMaxLength`` characters. Nothing is offered in the middle of a
word.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types

from .cursor import Cursor
from .decode import GreedyPath, greedy_line
from .document import decode

EMPTY = types.InlineCompletionList(items=[])


async def inline_completion(ls, params: types.InlineCompletionParams) -> types.InlineCompletionList:
    doc = ls.documents.get(params.text_document.uri)
    if doc is None or not ls.settings.enabled_for(doc.language_id):
        return EMPTY
    cursor = Cursor.at(doc, params.position, ls.encoding)
    if cursor.after_word_char() and cursor.before_word_char():
        return EMPTY
    text = await ls.runner.run(
        (cursor.uri, "inline"),
        ghost_text,
        ls,
        cursor,
        ls.settings.inline_max_length,
        stale=lambda: ls.documents.version(cursor.uri) != cursor.version,
    )
    if not text or ls.documents.version(cursor.uri) != cursor.version:
        return EMPTY
    where = types.Range(start=cursor.position, end=cursor.position)
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(insert_text=text, range=where)]
    )


@dataclass
class LastGhost:
    """The greedy path behind the last ghost text, and where it started."""

    uri: str
    offset: int
    path: GreedyPath


def ghost_text(ls, cursor: Cursor, max_chars: int, *, should_stop) -> str | None:
    """Inference thread: the ghost text at the cursor, or None.

    When the user has typed the start of the previous ghost text, its path
    already holds the state and the rest of the text: nothing is recomputed.
    """
    model = ls.models.get(cursor.language)
    if model is None:
        return None
    rt = model.runtime
    last: LastGhost | None = ls.last_ghost
    start = 0
    if last is not None and _typed_along(ls, last, cursor, rt):
        path, start = last.path, cursor.offset - last.offset
        ls.engine.remember(cursor.uri, cursor.version, cursor.offset, path.state(start))
    else:
        state = ls.engine.state_at(
            cursor.uri, cursor.version, cursor.data, cursor.offset, rt, should_stop
        )
        if state is None:
            return None
        path = GreedyPath(rt, state)
        ls.last_ghost = LastGhost(cursor.uri, cursor.offset, path)
        ls.engine.pin(cursor.uri, cursor.offset)
    out = greedy_line(
        path,
        start=start,
        word=cursor.after_word_char(),
        max_chars=max_chars,
        should_stop=should_stop,
    )
    return None if out is None else decode(out)


def _typed_along(ls, last: LastGhost, cursor: Cursor, rt) -> bool:
    k = cursor.offset - last.offset
    return (
        last.uri == cursor.uri
        and last.path.runtime is rt
        and 0 <= k <= len(last.path.syms)
        and cursor.data[last.offset : cursor.offset] == bytes(last.path.syms[:k])
        and ls.engine.holds(cursor.uri, cursor.version, last.offset, rt)
    )


def setup(server) -> None:
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(
        inline_completion
    )
