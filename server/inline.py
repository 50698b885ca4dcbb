"""textDocument/inlineCompletion: ghost text, the most likely continuation to a natural end.

Completer.ghost_text (core/completer.py): greedy decoding from the model's
state at the cursor, to the end of the identifier or of the line, at most
``inlineMaxLength`` characters; nothing in the middle of a word.
"""

from __future__ import annotations

from lsprotocol import types

from .cursor import Cursor
from .document import decode, with_eol
from .server import CharcodeServer

EMPTY = types.InlineCompletionList(items=[])


async def inline_completion(
    ls: CharcodeServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
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
        ls.settings.inline_max_lines,
        ls.settings.inline_min_probability,
        stale=lambda: ls.documents.version(cursor.uri) != cursor.version,
    )
    ls.learn_when_idle(cursor)
    if not text or ls.documents.version(cursor.uri) != cursor.version:
        return EMPTY
    where = types.Range(start=cursor.position, end=cursor.position)
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(insert_text=with_eol(text, doc.eol()), range=where)]
    )


def ghost_text(
    ls: CharcodeServer,
    cursor: Cursor,
    max_chars: int,
    max_lines: int,
    min_prob: float,
    *,
    should_stop,
) -> str | None:
    """Inference thread: the ghost text at the cursor, or None."""
    out = ls.completer.ghost_text(cursor, max_chars, should_stop, max_lines, min_prob)
    return None if out is None else decode(out)


def setup(server: CharcodeServer) -> None:
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(
        inline_completion
    )
