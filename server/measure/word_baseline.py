"""The word baseline for `charcode eval --task keystrokes`: VS Code's built-in word suggestions.

While an identifier is being typed (at least one identifier character before the
cursor), it suggests the words already in the document before that identifier
that start with the typed prefix (case-sensitive, longer than it), most recent
first; the top one is the suggestion. Identifier characters are the server's
(``decode.is_word_byte``: ASCII letters, digits, underscore, any non-ASCII), so
numbers are words too, as in VS Code's default word pattern. By default it sees the
current document only. Given the words of the workspace's other files (``charcode
eval --task keystrokes --workspace``, a stronger baseline than VS Code's default, which
looks at open documents), it falls back to them when the document has no match: the
most frequent first.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterator

from charcode.server.core.utf8 import is_word_byte


def word_spans(data: bytes | bytearray, start: int = 0) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of word bytes (an identifier or a number) from start on;
    the last run may end at the end of the data."""
    i, n = start, len(data)
    while i < n:
        if not is_word_byte(data[i]):
            i += 1
            continue
        j = i
        while j < n and is_word_byte(data[j]):
            j += 1
        yield i, j
        i = j


def words_of(data: bytes) -> Counter:
    """How often each word (identifier or number) occurs in the text."""
    return Counter(data[i:j] for i, j in word_spans(data))


class WordCompleter:
    """Word suggestions on a document typed at its end; same interface as the charcode one."""

    name = "word_baseline"

    def __init__(self, workspace_words: Counter | None = None):
        self.workspace = sorted(workspace_words or ())
        self.frequency = workspace_words or Counter()
        self._best_in_workspace: dict[bytes, bytes | None] = {}
        self.start("")

    def start(self, uri: str) -> None:
        """A new, empty document."""
        self.text = bytearray()
        self.scanned = 0  # words before this offset are indexed
        self.last_seen: dict[bytes, int] = {}  # word -> offset of its latest occurrence
        self.latencies: list[float] = []

    def insert(self, data: bytes) -> None:
        """Text typed or accepted at the end of the document."""
        self.text += data
        self._index()

    def suggest(self) -> bytes | None:
        """The text the top suggestion would insert at the cursor, or None (timed)."""
        t = time.perf_counter()
        s = self.suggestion()
        self.latencies.append(time.perf_counter() - t)
        return s

    def finish(self) -> None:
        pass

    def suggestion(self) -> bytes | None:
        prefix = bytes(self.text[self.scanned :])  # the identifier being typed (may be empty)
        if not prefix:
            return None
        best, best_at = None, -1
        for word, at in self.last_seen.items():
            if at > best_at and len(word) > len(prefix) and word.startswith(prefix):
                best, best_at = word, at
        if best is None and self.workspace:
            best = self._workspace_word(prefix)
        return None if best is None else best[len(prefix) :]

    def _workspace_word(self, prefix: bytes) -> bytes | None:
        """The workspace's most frequent word that extends prefix (memoized per prefix)."""
        if prefix not in self._best_in_workspace:
            lo = bisect.bisect_right(self.workspace, prefix)
            hi = bisect.bisect_left(self.workspace, prefix + b"\xff\xff\xff\xff")
            words = self.workspace[lo:hi]
            self._best_in_workspace[prefix] = (
                max(words, key=lambda w: (self.frequency[w], w)) if words else None
            )
        return self._best_in_workspace[prefix]

    def _index(self) -> None:
        """Index every word that is complete (followed by a non-word byte) and leave
        ``scanned`` at the start of the identifier at the cursor."""
        n = len(self.text)
        scanned = n
        for i, j in word_spans(self.text, self.scanned):
            if j == n:
                scanned = i  # the identifier at the cursor: not a word of the document yet
                break
            self.last_seen[bytes(self.text[i:j])] = i
        self.scanned = scanned
