"""textDocument/inlineCompletion: ghost text, the most likely continuation to a natural end.

Greedy decoding from the LSTM state at the cursor: to the end of the
identifier when the cursor follows an identifier character (on to the end of
the line if the identifier is already complete), else to the end of the line;
at most ``inlineMaxLength`` characters. Nothing is offered in the middle of a
word.
"""

from __future__ import annotations

from lsprotocol import types

from .cursor import Cursor
from .decode import greedy_line
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


def ghost_text(ls, cursor: Cursor, max_chars: int, *, should_stop) -> str | None:
    """Inference thread: the ghost text at the cursor, or None."""
    model = ls.models.get(cursor.language)
    if model is None:
        return None
    state = ls.engine.state_at(
        cursor.uri, cursor.version, cursor.data, cursor.offset, model.runtime, should_stop
    )
    if state is None:
        return None
    out = greedy_line(
        model.runtime,
        state,
        word=cursor.after_word_char(),
        max_chars=max_chars,
        should_stop=should_stop,
    )
    return None if out is None else decode(out)


def setup(server) -> None:
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(
        inline_completion
    )
