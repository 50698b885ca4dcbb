"""LSTM state snapshots along each open document, so a keystroke re-reads bytes, not the file.

For a document the model reads the boundary symbol and then the document's
UTF-8 bytes. The cache keeps the state after reading the first X bytes for X
on a grid (every ``interval`` bytes) and at the last few request positions.
An edit at byte e leaves the snapshots with X <= e valid and drops the rest.
A request at byte p resumes from the nearest valid snapshot <= p and reads
on to p, leaving snapshots behind. Typing at the end of a line therefore
costs one step per keystroke, and a jump costs at most ``interval`` bytes
once the text before it has been read.

Two bounds keep every request cheap:

- ``horizon``: the model never reads more than this many bytes for one
  request. If the nearest snapshot is further back, reading starts fresh
  (boundary symbol) at a line start ``horizon`` bytes before the cursor. An
  LSTM's memory of text that far back is weak, so this changes predictions
  little, and it bounds the first request in a 10,000-line file.
- ``cap_bytes``: the total size of all snapshots. Over it, the documents
  used least recently lose theirs first, then the current document keeps
  those nearest the cursor.

Edits arrive on the message loop and requests run on the inference thread;
a lock guards the cache and a snapshot made from an old version of a
document is never stored.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from charcode.training.symbols import is_continuation

from .predictor import Predictor, State

DEFAULT_INTERVAL = 256
DEFAULT_HORIZON = 2048
READ_STEP = 32  # bytes read between checks of should_stop (about 1.5 ms)
DEFAULT_CAP_BYTES = 64 * 1024 * 1024
CURSOR_SNAPSHOTS = 8


@dataclass
class _Cache:
    runtime: Predictor
    version: int
    offsets: list[int] = field(default_factory=list)  # sorted
    states: dict[int, State] = field(default_factory=dict)
    cursors: list[int] = field(default_factory=list)  # off-grid offsets, oldest first
    pinned: int | None = None  # a cursor snapshot kept however many come after it
    used: int = 0
    nbytes: int = 0


@dataclass
class SnapshotStats:
    requests: int = 0
    bytes_read: int = 0
    exact_hits: int = 0  # requests answered from a snapshot at the cursor
    fresh_starts: int = 0  # requests that read from a fresh state within the horizon
    reused: int = 0  # states handed over by a decoder that had read the same bytes


class SnapshotCache:
    def __init__(
        self,
        interval: int = DEFAULT_INTERVAL,
        horizon: int = DEFAULT_HORIZON,
        cap_bytes: int = DEFAULT_CAP_BYTES,
    ):
        self.interval = interval
        self.horizon = horizon
        self.cap_bytes = cap_bytes
        self.stats = SnapshotStats()
        self._lock = threading.Lock()
        self._caches: dict[str, _Cache] = {}
        self._clock = itertools.count(1)
        self._total = 0

    # ---- message loop side

    def edited(self, uri: str, version: int, offset: int) -> None:
        """The document changed from byte offset on and is now at version."""
        with self._lock:
            cache = self._caches.get(uri)
            if cache is None:
                return
            cache.version = version
            self._drop_after(cache, offset)

    def forget(self, uri: str) -> None:
        with self._lock:
            cache = self._caches.pop(uri, None)
            if cache is not None:
                self._total -= cache.nbytes

    def clear(self) -> None:
        with self._lock:
            self._caches.clear()
            self._total = 0

    def summary(self) -> dict:
        with self._lock:
            return {
                "documents": len(self._caches),
                "snapshots": sum(len(c.offsets) for c in self._caches.values()),
                "bytes": self._total,
                "cap_bytes": self.cap_bytes,
                "interval": self.interval,
                "horizon": self.horizon,
                **self.stats.__dict__,
            }

    # ---- inference thread side

    def state_at(
        self,
        uri: str,
        version: int,
        data: bytes,
        offset: int,
        runtime: Predictor,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> State | None:
        """The model state after the boundary and data[:offset]; None if stopped or stale."""
        offset = max(0, min(offset, len(data)))
        with self._lock:
            cache = self._caches.get(uri)
            if cache is None or cache.runtime is not runtime or cache.version < version:
                if cache is not None:
                    self._total -= cache.nbytes
                cache = self._caches[uri] = _Cache(runtime, version)
            if cache.version != version:
                return None  # the document has moved on since this request was made
            cache.used = next(self._clock)
            i = bisect.bisect_right(cache.offsets, offset) - 1
            pos = cache.offsets[i] if i >= 0 else -1
            state = cache.states[pos] if i >= 0 else None
        self.stats.requests += 1
        if pos == offset and state is not None:
            self.stats.exact_hits += 1
            return state
        if state is None or offset - pos > self.horizon:
            pos, state = self._fresh_start(data, offset), runtime.start
            if pos > 0:
                self.stats.fresh_starts += 1
        made: list[tuple[int, State]] = []
        while pos < offset:
            if should_stop():
                # keep where the reading got to (off the grid too), so that a job stopped
                # again and again between keystrokes still makes progress
                self._store(uri, version, made, made[-1][0] if made else offset)
                return None
            # at most READ_STEP bytes between checks of should_stop: a newer request never
            # waits long for a stale one; only grid points and the cursor are kept
            nxt = min(offset, (pos // self.interval + 1) * self.interval, pos + READ_STEP)
            state = runtime.read(state, data[pos:nxt])
            self.stats.bytes_read += nxt - pos
            pos = nxt
            made.append((pos, state))
        self._store(uri, version, made, offset)
        return state

    def holds(self, uri: str, version: int, offset: int, runtime: Predictor) -> bool:
        """Whether the cache has a valid snapshot at offset for this version (the text before
        offset has not changed since it was made)."""
        with self._lock:
            cache = self._caches.get(uri)
            return (
                cache is not None
                and cache.runtime is runtime
                and cache.version == version
                and offset in cache.states
            )

    def pin(self, uri: str, offset: int) -> None:
        """Keep the cursor snapshot at offset (until an edit before it or the memory cap drops it)."""
        with self._lock:
            cache = self._caches.get(uri)
            if cache is not None:
                cache.pinned = offset

    def remember(self, uri: str, version: int, offset: int, state: State) -> None:
        """Keep a state computed elsewhere (by a decoder that read the same bytes)."""
        self.stats.reused += 1
        self._store(uri, version, [(offset, state)], offset)

    def _fresh_start(self, data: bytes, offset: int) -> int:
        """Where to start reading from scratch: the document start, or a line start within reach."""
        if offset <= self.horizon:
            return 0
        lo = offset - self.horizon
        nl = data.find(b"\n", lo, offset)
        if nl >= 0:
            return nl + 1
        while lo < offset and is_continuation(data[lo]):
            lo += 1  # do not start inside a character
        return lo

    def _store(self, uri: str, version: int, made: list[tuple[int, State]], cursor: int) -> None:
        with self._lock:
            cache = self._caches.get(uri)
            if cache is None or cache.version != version or not made:
                return
            for pos, state in made:
                on_grid = pos % self.interval == 0
                if not on_grid and pos != cursor:
                    continue
                if pos in cache.states:
                    continue
                bisect.insort(cache.offsets, pos)
                cache.states[pos] = state
                size = cache.runtime.nbytes(state)
                cache.nbytes += size
                self._total += size
                if not on_grid:
                    cache.cursors.append(pos)
            while len(cache.cursors) > CURSOR_SNAPSHOTS:
                oldest = cache.cursors[0] if cache.cursors[0] != cache.pinned else cache.cursors[1]
                self._remove(cache, oldest)
            self._enforce_cap(cache, cursor)

    def _drop_after(self, cache: _Cache, offset: int) -> None:
        i = bisect.bisect_right(cache.offsets, offset)
        for pos in cache.offsets[i:]:
            size = cache.runtime.nbytes(cache.states.pop(pos))
            cache.nbytes -= size
            self._total -= size
        del cache.offsets[i:]
        cache.cursors = [p for p in cache.cursors if p <= offset]

    def _remove(self, cache: _Cache, pos: int) -> None:
        state = cache.states.pop(pos, None)
        if state is None:
            return
        cache.offsets.remove(pos)
        if pos in cache.cursors:
            cache.cursors.remove(pos)
        size = cache.runtime.nbytes(state)
        cache.nbytes -= size
        self._total -= size

    def _enforce_cap(self, current: _Cache, cursor: int) -> None:
        if self._total <= self.cap_bytes:
            return
        # 1) whole documents, least recently used first
        for uri, cache in sorted(self._caches.items(), key=lambda kv: kv[1].used):
            if self._total <= self.cap_bytes:
                return
            if cache is not current:
                self._total -= cache.nbytes
                del self._caches[uri]
        # 2) the current document keeps the snapshots nearest the cursor
        for pos in sorted(current.offsets, key=lambda p: -abs(p - cursor)):
            if self._total <= self.cap_bytes:
                return
            self._remove(current, pos)
