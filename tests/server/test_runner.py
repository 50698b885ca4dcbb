"""The inference thread's job runner: background jobs yield to every request."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from charcode.server.runner import Runner


def _wait(event: threading.Event, what: str) -> None:
    assert event.wait(10), f"timed out waiting for {what}"


async def test_a_background_job_stops_as_soon_as_a_request_waits():
    runner = Runner()
    started, stopped = threading.Event(), threading.Event()
    steps: list[int] = []

    def learn(*, should_stop):
        started.set()
        deadline = time.monotonic() + 10
        while not should_stop() and time.monotonic() < deadline:
            steps.append(1)
            time.sleep(0.001)
        stopped.set()
        return "stopped" if should_stop() else "ran out"

    def answer(*, should_stop):
        assert stopped.is_set()  # the request ran after the background job gave way
        return "answer"

    background = asyncio.ensure_future(runner.run(("doc", "learn"), learn, background=True))
    await asyncio.to_thread(_wait, started, "the background job")
    assert await runner.run(("doc", "inline"), answer) == "answer"
    assert await background == "stopped"
    runner.shutdown()


async def test_a_background_job_queued_behind_a_request_runs_when_it_is_done():
    runner = Runner()
    gate = threading.Event()

    def busy(*, should_stop):
        _wait(gate, "the gate")
        return "busy"

    def learn(*, should_stop):
        return "learned" if not should_stop() else None

    first = asyncio.ensure_future(runner.run(("doc", "inline"), busy))
    background = asyncio.ensure_future(runner.run(("doc", "learn"), learn, background=True))
    await asyncio.sleep(0)
    gate.set()
    assert await first == "busy"
    assert await background == "learned"
    runner.shutdown()


async def test_a_request_cancelled_before_it_started_does_not_hold_back_background_jobs():
    runner = Runner()
    gate = threading.Event()

    def busy(*, should_stop):
        _wait(gate, "the gate")

    def never_runs(*, should_stop):
        raise AssertionError("a cancelled job ran")

    first = asyncio.ensure_future(runner.run(("a", "inline"), busy))
    cancelled = asyncio.ensure_future(runner.run(("b", "inline"), never_runs))
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.set()
    await first
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled
    ran = await runner.run(
        ("c", "learn"), lambda *, should_stop: not should_stop(), background=True
    )
    assert ran is True
    runner.shutdown()


async def test_a_job_after_shutdown_is_dropped_without_an_error():
    """A lesson scheduled after idle may fire once the server has shut down: it is dropped
    (None), not an error from the closed thread pool."""
    runner = Runner()
    assert await runner.run(("doc", "inline"), lambda *, should_stop: "answer") == "answer"
    runner.shutdown()
    ran = []
    got = await runner.run(("doc", "learn"), lambda *, should_stop: ran.append(1), background=True)
    assert got is None and not ran
