"""The document store: incremental edits and position conversion against a plain reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsp_helpers import index_at, position_of, split_lines
from lsprotocol import types

from charcode.server.document import Document, column_to_bytes

ENCODINGS = ["utf-8", "utf-16", "utf-32"]
PIECES = [
    "a",
    "b",
    "_",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "é",
    "中",
    "😀",
    "𝔘",
    "\x00",
    "\x0c",
    "\u2028",
    "\x85",
]
texts = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


def ref_starts(text: str) -> list[int]:
    """Byte offsets of line starts (reference)."""
    out, pos = [], 0
    for line in split_lines(text):
        out.append(pos)
        pos += len(line.encode("utf-8", "surrogatepass"))
    return out


def boundaries(text: str) -> list[int]:
    """Indices that are valid cursor positions (not between \\r and \\n)."""
    return [
        i
        for i in range(len(text) + 1)
        if not (0 < i < len(text) and text[i - 1] == "\r" and text[i] == "\n")
    ]


def nbytes(s: str) -> int:
    return len(s.encode("utf-8", "surrogatepass"))


def check(doc: Document, text: str, encoding: str) -> None:
    assert doc.text == text
    assert doc.starts.tolist() == ref_starts(text)
    for i in boundaries(text):
        pos = position_of(text, i, encoding)
        assert doc.offset_at(pos, encoding) == nbytes(text[:i])
        assert doc.position_at(nbytes(text[:i]), encoding) == pos


edits = st.lists(
    st.tuples(st.floats(0, 1), st.floats(0, 1), texts),
    min_size=1,
    max_size=12,
)


@pytest.mark.parametrize("encoding", ENCODINGS)
@settings(max_examples=150, deadline=None)
@given(initial=texts, steps=edits)
def test_random_incremental_edits_match_reference(encoding, initial, steps):
    doc = Document.from_text("file:///a", "python", 1, initial)
    text = initial
    for version, (fa, fb, new) in enumerate(steps, start=2):
        ok = boundaries(text)
        i, j = sorted((ok[int(fa * (len(ok) - 1))], ok[int(fb * (len(ok) - 1))]))
        start, end = position_of(text, i, encoding), position_of(text, j, encoding)
        first = doc.apply(
            types.TextDocumentContentChangePartial(
                range=types.Range(start=start, end=end), text=new
            ),
            encoding,
        )
        assert first == nbytes(text[:i])
        text = text[:i] + new + text[j:]
        doc.version = version
        check(doc, text, encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_positions_past_the_end_are_clamped(encoding):
    text = "ab😀\r\nxyz"
    doc = Document.from_text("file:///a", "python", 1, text)
    assert doc.offset_at(types.Position(line=0, character=99), encoding) == nbytes("ab😀")
    assert doc.offset_at(types.Position(line=7, character=3), encoding) == nbytes(text)
    assert doc.offset_at(types.Position(line=1, character=99), encoding) == nbytes(text)


def test_utf16_position_inside_a_surrogate_pair_rounds_down():
    doc = Document.from_text("file:///a", "python", 1, "a😀b")
    assert doc.offset_at(types.Position(line=0, character=2), "utf-16") == 1
    assert doc.offset_at(types.Position(line=0, character=3), "utf-16") == 5


def test_utf8_position_inside_a_character_rounds_down():
    assert column_to_bytes("中x".encode(), 2, "utf-8") == 0
    assert column_to_bytes("中x".encode(), 3, "utf-8") == 3


def test_form_feed_and_line_separator_are_not_line_breaks():
    doc = Document.from_text("file:///a", "python", 1, "a\x0cb\u2028c\x85d\ne")
    assert doc.line_count == 2


def test_whole_document_change_reports_the_common_prefix():
    doc = Document.from_text("file:///a", "python", 1, "hello world\nline two\n")
    first = doc.apply(types.TextDocumentContentChangeWholeDocument(text="hello there\n"), "utf-16")
    assert first == len("hello ")
    assert doc.text == "hello there\n"
    assert doc.starts.tolist() == [0, 12]


def test_cr_then_lf_inserted_later_join_into_one_line_break():
    doc = Document.from_text("file:///a", "python", 1, "a\rb")
    assert doc.line_count == 2
    doc.apply(
        types.TextDocumentContentChangePartial(
            range=types.Range(
                start=types.Position(line=1, character=0), end=types.Position(line=1, character=0)
            ),
            text="\n",
        ),
        "utf-16",
    )
    assert doc.text == "a\r\nb"
    assert doc.line_count == 2
    assert index_at(doc.text, types.Position(line=1, character=0), "utf-16") == 3


def test_large_single_line_document_converts_quickly():
    import time

    text = ("x = '中文😀' + y\t" * 350_000)[:5_000_000]
    doc = Document.from_text("file:///big", "python", 1, text)
    t = time.perf_counter()
    end = doc.position_at(len(doc.data), "utf-16")
    assert doc.offset_at(end, "utf-16") == len(doc.data)
    assert time.perf_counter() - t < 2.0
    assert np.asarray(doc.starts).tolist() == [0]
