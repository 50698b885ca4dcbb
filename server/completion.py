"""textDocument/completion: a few ranked continuations of the word at the cursor.

A batched beam search (width 5) over identifier bytes from the LSTM state at
the cursor; a candidate's probability is that of its bytes followed by a
character that ends the word. Each item's textEdit replaces the typed part
of the word with the whole word; sortText keeps the model's order. The list
is marked incomplete: the next keystroke asks again.
"""

from __future__ import annotations

from lsprotocol import types

from .core.beam import Candidate, describe_probability
from .cursor import Cursor
from .document import decode
from .server import CharcodeServer

EMPTY = types.CompletionList(is_incomplete=True, items=[])


async def completion(ls: CharcodeServer, params: types.CompletionParams) -> types.CompletionList:
    doc = ls.documents.get(params.text_document.uri)
    if doc is None or not ls.settings.enabled_for(doc.language_id):
        return EMPTY
    cursor = Cursor.at(doc, params.position, ls.encoding)
    start = cursor.word_start()
    candidates = await ls.runner.run(
        (cursor.uri, "completion"),
        word_candidates,
        ls,
        cursor,
        stale=lambda: ls.documents.version(cursor.uri) != cursor.version,
    )
    ls.learn_when_idle(cursor)
    if not candidates or ls.documents.version(cursor.uri) != cursor.version:
        return EMPTY
    typed = cursor.data[start : cursor.offset]
    where = types.Range(start=doc.position_at(start, ls.encoding), end=cursor.position)
    items = []
    for rank, cand in enumerate(candidates):
        word = decode(typed + cand.text)
        items.append(
            types.CompletionItem(
                label=word,
                kind=types.CompletionItemKind.Text,
                detail=f"charcode {describe_probability(cand.logprob)}",
                sort_text=f"{rank:04d}",
                filter_text=word,
                text_edit=types.TextEdit(range=where, new_text=word),
                # the word as it is: a client must not re-indent the line (lsp-mode does)
                insert_text_mode=types.InsertTextMode.AsIs,
            )
        )
    return types.CompletionList(is_incomplete=True, items=items)


def word_candidates(ls: CharcodeServer, cursor: Cursor, *, should_stop) -> list[Candidate] | None:
    """Inference thread: the best word continuations at the cursor, or None."""
    return ls.completer.words(cursor, should_stop)


def setup(server: CharcodeServer) -> None:
    server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())(completion)
