"""workspace/executeCommand charcode.debugStats; with CHARCODE_DEBUG=1 also debugHold, debugDocument.

debugStats reports the inference counters (jobs computed, skipped as stale,
cancelled), the snapshot cache (documents, snapshots, bytes, cap), open
documents, loaded models and the process's resident memory. debugHold keeps
the inference thread busy for ``ms`` milliseconds; tests use it to queue work
deterministically. debugDocument returns the server's copy of a document's text;
debugTimings the wall and CPU time of recent inference jobs (bench/lsp_latency.py).
"""

from __future__ import annotations

import resource
import time

from .arguments import field, single_object
from .server import CharcodeServer


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def debug_stats(ls: CharcodeServer, *args) -> dict:
    return {
        "inference": dict(ls.runner.stats.__dict__),
        "cache": ls.snapshots.summary(),
        "adaptation": ls.workspace_memory.summary(),
        "documents": len(ls.documents),
        "models": {lang: str(m.path) for lang, m in ls.models.loaded().items()},
        "trainings": sorted(ls.trainings),
        "rss_bytes": _rss_bytes(),
        "position_encoding": ls.encoding,
    }


async def debug_hold(ls: CharcodeServer, *args) -> dict:
    obj = single_object("charcode.debugHold", args)
    ms = field("charcode.debugHold", obj, "ms", int, check=lambda v: 0 <= v <= 60_000)
    await ls.runner.run(None, _sleep, ms / 1000, count=False)
    return {}


def debug_document(ls: CharcodeServer, *args) -> dict:
    obj = single_object("charcode.debugDocument", args)
    doc = ls.documents.get(field("charcode.debugDocument", obj, "uri", str))
    return (
        {"text": None, "version": None}
        if doc is None
        else {"text": doc.text, "version": doc.version}
    )


def debug_timings(ls: CharcodeServer, *args) -> dict:
    """Wall and CPU milliseconds of the inference jobs since the last call, by kind."""
    out: dict[str, dict[str, list[float]]] = {}
    while ls.runner.timings:
        kind, wall, cpu = ls.runner.timings.popleft()
        entry = out.setdefault(kind, {"wall_ms": [], "cpu_ms": []})
        entry["wall_ms"].append(round(wall * 1000, 3))
        entry["cpu_ms"].append(round(cpu * 1000, 3))
    return out


def _sleep(seconds: float, *, should_stop) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not should_stop():
        time.sleep(0.005)
    return True


def setup(server: CharcodeServer) -> None:
    server.command("charcode.debugStats")(debug_stats)
    if server.debug:
        server.command("charcode.debugHold")(debug_hold)
        server.command("charcode.debugDocument")(debug_document)
        server.command("charcode.debugTimings")(debug_timings)
