"""A request's view of a document at the moment it was made: the bytes, the cursor, the word."""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types

from .decode import is_word_byte
from .document import Document
from .language_ids import canonical_language

WORD_LOOKBACK = 256  # bytes: a longer run of word characters is not a word worth completing


@dataclass(frozen=True)
class Cursor:
    uri: str
    language: str
    version: int
    data: bytes  # the document's bytes at that version (immutable, shared)
    offset: int  # byte offset of the cursor
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

    def word_start(self) -> int:
        """Byte offset where the identifier ending at the cursor starts (the cursor if none)."""
        lo = max(0, self.offset - WORD_LOOKBACK)
        i = self.offset
        while i > lo and is_word_byte(self.data[i - 1]):
            i -= 1
        while i < self.offset and (self.data[i] & 0xC0) == 0x80:
            i += 1  # the look-back limit cut a character: start after it
        return i

    def after_word_char(self) -> bool:
        return self.offset > 0 and is_word_byte(self.data[self.offset - 1])

    def before_word_char(self) -> bool:
        return self.offset < len(self.data) and is_word_byte(self.data[self.offset])
