"""Model work off the message loop: one inference thread, cancellable, latest request wins.

``await runner.run(key, fn, *args)`` runs ``fn(*args, should_stop=...)`` on
the runner's own single-thread executor (pygls reads stdin on its thread pool,
so that pool must stay free). ``should_stop()`` turns true when the request is
cancelled (``$/cancelRequest`` cancels the awaiting task), when a newer
request with the same key arrives, or when the caller's ``stale()`` says the
document has changed; decoders check it every step. A job that is already
stale when the thread reaches it is skipped without touching the model, so a
burst of keystrokes computes only what is still current.

Background jobs (``background=True``: learning the text the user has left) also
stop as soon as any other job is waiting, so they only fill the thread's idle
time and never delay a keystroke by more than one of their small steps.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass
class RunnerStats:
    computed: int = 0  # jobs that ran
    skipped: int = 0  # jobs dropped before running: superseded, stale or cancelled
    cancelled: int = 0  # requests cancelled by the client while queued or running
    stopped: int = 0  # jobs that started and were stopped part way


class Ticket:
    def __init__(
        self,
        stale: Callable[[], bool] | None,
        kind: str,
        others_waiting: Callable[[], bool] | None = None,
    ):
        self.cancel = threading.Event()
        self._stale = stale
        self._others_waiting = others_waiting
        self.kind = kind
        self.waiting = False  # counted in the runner's waiting foreground jobs

    def should_stop(self) -> bool:
        return (
            self.cancel.is_set()
            or (self._others_waiting is not None and self._others_waiting())
            or (self._stale is not None and self._stale())
        )


class Runner:
    def __init__(self, initializer: Callable[[], None] | None = None):
        self._pool = ThreadPoolExecutor(
            1, thread_name_prefix="charcode-inference", initializer=initializer
        )
        self._latest: dict[Hashable, Ticket] = {}
        self._active: set[Ticket] = set()
        self._waiting = 0  # foreground jobs submitted and not yet started
        self._waiting_lock = threading.Lock()
        self.stats = RunnerStats()
        self.closed = False
        # (kind, wall seconds, inference-thread CPU seconds) of recent jobs, for benchmarks
        self.timings: collections.deque[tuple[str, float, float]] = collections.deque(maxlen=20_000)

    async def run(
        self,
        key: Hashable | None,
        fn: Callable[..., Any],
        *args: Any,
        stale: Callable[[], bool] | None = None,
        count: bool = True,
        background: bool = False,
    ) -> Any:
        """fn's result, or None if the job was skipped or stopped. Raises CancelledError if cancelled.

        A ``background`` job stops (or is skipped) whenever a foreground job waits."""
        if self.closed:
            return None  # the server is ending: a late job (a lesson after idle) is dropped
        kind = str(key[-1]) if isinstance(key, tuple) else str(key)
        ticket = Ticket(stale, kind, self._others_waiting if background else None)
        self._active.add(ticket)
        if key is not None:
            old = self._latest.get(key)
            if old is not None:
                old.cancel.set()  # superseded
            self._latest[key] = ticket
        loop = asyncio.get_running_loop()
        if not background:
            with self._waiting_lock:
                self._waiting += 1
                ticket.waiting = True
        try:
            return await loop.run_in_executor(self._pool, self._call, ticket, fn, args, count)
        except asyncio.CancelledError:
            ticket.cancel.set()
            self.stats.cancelled += 1
            raise
        finally:
            self._not_waiting(ticket)  # a job cancelled before it started
            self._active.discard(ticket)
            if key is not None and self._latest.get(key) is ticket:
                del self._latest[key]

    def _others_waiting(self) -> bool:
        return self._waiting > 0

    def _not_waiting(self, ticket: Ticket) -> None:
        with self._waiting_lock:
            if ticket.waiting:
                ticket.waiting = False
                self._waiting -= 1

    def _call(self, ticket: Ticket, fn: Callable[..., Any], args: tuple, count: bool) -> Any:
        self._not_waiting(ticket)
        if ticket.should_stop():
            if count:
                self.stats.skipped += 1
            return None
        if count:
            self.stats.computed += 1
        wall, cpu = time.perf_counter(), time.thread_time()
        result = fn(*args, should_stop=ticket.should_stop)
        if count:
            self.timings.append((ticket.kind, time.perf_counter() - wall, time.thread_time() - cpu))
            if result is None and ticket.should_stop():
                self.stats.stopped += 1
        return result

    def shutdown(self) -> None:
        """Drop queued jobs and stop the running one at its next step."""
        self.closed = True
        for ticket in list(self._active):
            ticket.cancel.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
