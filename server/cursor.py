"""A request's view of a document at the moment it was made, with the cursor in LSP units."""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types

from .core.completer import TextAt
from .core.language_ids import canonical_language
from .document import Document


@dataclass(frozen=True)
class Cursor(TextAt):
    position: types.Position  # the cursor in the client's encoding

    @classmethod
    def at(cls, doc: Document, position: types.Position, encoding: str) -> Cursor:
        offset = doc.offset_at(position, encoding)
        return cls(
            doc.uri,
            canonical_language(doc.language_id),
            doc.version,
            doc.data,
            offset,
            doc.position_at(offset, encoding),
        )
