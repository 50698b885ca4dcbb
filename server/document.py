"""Open documents as the model sees them: UTF-8 bytes, a line index, exact LSP positions.

The text is kept as immutable ``bytes`` (UTF-8, lone surrogates passed through)
so that the inference thread can hold a version of it without copying while
the message loop applies the next edit. Lines end at ``\\n``, ``\\r\\n`` or a
lone ``\\r`` (the LSP definition; not ``str.splitlines``, which also breaks at
form feeds and U+2028). Positions are converted in the negotiated encoding
(UTF-16 code units by default, UTF-8 bytes or UTF-32 code points) with
C-speed fast paths, so an edit or a request costs the same on line 10 and on
line 10,000.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from lsprotocol import types

from charcode.training.symbols import is_continuation

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"
_NL, _CR = 10, 13


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def line_break_ends(data: bytes, base: int = 0) -> np.ndarray:
    """Offsets (plus base) just after each line break in data: a line starts there."""
    arr = np.frombuffer(data, dtype=np.uint8)
    nl = arr == _NL
    lone_cr = arr == _CR
    lone_cr[:-1] &= ~nl[1:]
    return np.flatnonzero(nl | lone_cr).astype(np.int64) + (base + 1)


def with_eol(text: str, eol: str) -> str:
    """Text written with "\\n" line breaks, in the document's own ("\\r\\n" in a CRLF file)."""
    return re.sub(r"(?<!\r)\n", "\r\n", text) if eol == "\r\n" else text


def units(text: str, encoding: str) -> int:
    """Length of text in the encoding's code units."""
    if encoding == UTF32:
        return len(text)
    if encoding == UTF8:
        return len(encode(text))
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _utf16_prefix_chars(text: str, n_units: int) -> int:
    """How many code points of text fit in n_units UTF-16 units (a split pair rounds down)."""
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    ends = np.cumsum(1 + (cps > 0xFFFF))
    return int(np.searchsorted(ends, n_units, side="right"))


def column_to_bytes(line: bytes, character: int, encoding: str) -> int:
    """Byte offset in a line (without its line break) of an LSP character, clamped to the line."""
    character = max(0, character)
    if line.isascii():
        return min(character, len(line))
    if encoding == UTF8:
        col = min(character, len(line))
        while 0 < col < len(line) and is_continuation(line[col]):
            col -= 1  # inside a character: round down to its start
        return col
    text = decode(line)
    if encoding == UTF32 or len(text) == len(text.encode("utf-16-le", "surrogatepass")) // 2:
        n = min(character, len(text))
    else:
        n = _utf16_prefix_chars(text, character)
    return len(encode(text[:n]))


@dataclass
class Document:
    uri: str
    language_id: str
    version: int
    data: bytes
    starts: np.ndarray = field(repr=False)  # byte offset of each line start; starts[0] == 0

    @classmethod
    def from_text(cls, uri: str, language_id: str, version: int, text: str) -> Document:
        data = encode(text)
        return cls(uri, language_id, version, data, cls._index(data))

    @staticmethod
    def _index(data: bytes) -> np.ndarray:
        return np.concatenate([np.zeros(1, np.int64), line_break_ends(data)])

    @property
    def text(self) -> str:
        return decode(self.data)

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def line_span(self, line: int) -> tuple[int, int]:
        """Byte offsets of a line's content, its line break excluded."""
        start = int(self.starts[line])
        end = int(self.starts[line + 1]) if line + 1 < len(self.starts) else len(self.data)
        if end > start and self.data[end - 1] == _NL:
            end -= 1
        if end > start and self.data[end - 1] == _CR:
            end -= 1
        return start, end

    def line_of(self, offset: int) -> int:
        return int(np.searchsorted(self.starts, offset, side="right")) - 1

    def offset_at(self, position: types.Position, encoding: str) -> int:
        """Byte offset of an LSP position; past the end of a line or the file, clamped to it."""
        if position.line < 0:
            return 0
        if position.line >= len(self.starts):
            return len(self.data)
        start, end = self.line_span(position.line)
        return start + column_to_bytes(self.data[start:end], position.character, encoding)

    def position_at(self, offset: int, encoding: str) -> types.Position:
        """LSP position of a byte offset (which must not split a character)."""
        offset = max(0, min(offset, len(self.data)))
        line = self.line_of(offset)
        start = int(self.starts[line])
        return types.Position(line=line, character=units(decode(self.data[start:offset]), encoding))

    def line_prefix(self, offset: int, limit: int = 1 << 16) -> bytes:
        """The bytes of offset's line before it (at most limit bytes)."""
        start = max(int(self.starts[self.line_of(offset)]), offset - limit)
        return self.data[start:offset]

    def eol(self) -> str:
        """The document's line break (that of its first line), "\\n" when it has none."""
        end = int(self.starts[1]) if len(self.starts) > 1 else 0
        return "\r\n" if self.data[max(0, end - 2) : end] == b"\r\n" else "\n"

    def apply(self, change: types.TextDocumentContentChangeEvent, encoding: str) -> int:
        """Apply one content change; return the byte offset where the text first differs."""
        if not isinstance(change, types.TextDocumentContentChangePartial):
            new = encode(change.text)
            a = common_prefix_length(self.data, new)
            self.data, self.starts = new, self._index(new)
            return a
        a = self.offset_at(change.range.start, encoding)
        b = self.offset_at(change.range.end, encoding)
        a, b = min(a, b), max(a, b)
        ins = encode(change.text)
        old = self.data
        self.data = new = old[:a] + ins + old[b:]
        # A position's line-start status depends on the bytes just before and at it, so only
        # positions a .. a+len(ins) need a fresh look; the rest keep or shift theirs.
        hi = a + len(ins)
        lo = max(a - 1, 0)
        mid = line_break_ends(new[lo : hi + 1], base=lo)
        mid = mid[(mid >= max(a, 1)) & (mid <= hi)]
        starts = self.starts
        keep = starts[: max(1, int(np.searchsorted(starts, a, side="left")))]  # 0 always starts
        tail = starts[int(np.searchsorted(starts, b, side="right")) :] + (hi - b)
        self.starts = np.concatenate([keep, mid, tail])
        return a


def common_prefix_length(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    x = np.frombuffer(a, np.uint8, count=n)
    y = np.frombuffer(b, np.uint8, count=n)
    return int(np.argmax(x != y))


class DocumentStore:
    """The open documents, by URI; changed only on the message loop."""

    def __init__(self):
        self._docs: dict[str, Document] = {}

    def open(self, item: types.TextDocumentItem) -> Document:
        doc = Document.from_text(item.uri, item.language_id, item.version, item.text)
        self._docs[item.uri] = doc
        return doc

    def close(self, uri: str) -> Document | None:
        return self._docs.pop(uri, None)

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def version(self, uri: str) -> int | None:
        doc = self._docs.get(uri)
        return None if doc is None else doc.version

    def __len__(self) -> int:
        return len(self._docs)

    def __iter__(self):
        return iter(list(self._docs.values()))
