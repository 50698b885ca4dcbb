"""What the engine learned from the user's workspace, per language: read, kept, persisted.

After ``configure`` (the server's initialize, or a settings change) a background
thread reads, per language that has a model, the workspace's files of that
language with the training corpus's filters (git-aware, .gitignore, vendored,
generated, minified, binary, huge files and symlinks skipped, so nothing outside
the roots is read) and teaches each to an ``adaptive.AdaptiveModel``. Saved
files are learned again when they change (``file_changed``). The learned state
persists in the user cache folder, keyed by the workspace roots, the language
and the model file, written atomically with a list of the files it holds; on
the next start only new or changed files are read. A stale or corrupt cache is
rebuilt with a log line.

``get(language)`` is what the Completer asks: the model, once it has learned
something, or None (adaptation off, or nothing learned yet).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from charcode.training.checkpoint import atomic_write
from charcode.training.corpus import default_cache_dir, iter_source_files

from .adaptive import AdaptiveModel, AdaptiveStateError

log = logging.getLogger(__name__)

DEFAULT_MEMORY_MB = 64
MAX_FILE_BYTES = 1_000_000
CACHE_FORMAT = 1


@dataclass
class Learned:
    """One language's learned state and what it holds."""

    model: AdaptiveModel
    files: dict[str, list[int]] = field(default_factory=dict)  # path -> [size, mtime_ns]
    bytes: int = 0
    state: str = "learning"  # learning | ready | off
    seconds: float = 0.0
    cache: Path | None = None

    def summary(self) -> dict:
        return {
            "state": self.state,
            "files": len(self.files),
            "bytes": self.bytes,
            "seconds": round(self.seconds, 2),
            "memory_bytes": self.model.stats.get("memory_bytes"),
            # text of open documents learned as the user left it (in the server's idle time)
            "document_bytes": self.model.stats.get("bytes_scored", 0),
        }


def cache_root() -> Path:
    """$CHARCODE_CACHE_DIR or the platform cache folder, /adaptive."""
    return default_cache_dir().parent / "adaptive"


def _yield_cpu_to_typing() -> None:
    """Lower this thread's CPU priority (Linux schedules threads apart; elsewhere the call
    would lower the whole server): on a small machine, reading the workspace must not
    make keystrokes wait for a core."""
    if sys.platform != "linux":
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + 10))
    except OSError as e:
        log.debug("cannot lower the learning thread's priority: %s", e)


class WorkspaceMemory:
    def __init__(self, cache_dir: Path | None = None):
        self.cache_dir = cache_dir
        self.roots: list[Path] = []
        self.enabled = True
        self.memory_bytes = DEFAULT_MEMORY_MB << 20
        self._learned: dict[str, Learned] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # ---- settings and lifetime (message loop)

    def configure(self, roots: list[Path], enabled: bool, memory_mb: float) -> None:
        """New workspace or settings: forget what no longer applies (learning starts again
        on the next ``start``)."""
        roots = sorted({Path(r).resolve() for r in roots})
        memory = int(memory_mb * 2**20)
        with self._lock:
            if roots != self.roots or enabled != self.enabled or memory != self.memory_bytes:
                self._learned.clear()
            self.roots, self.enabled, self.memory_bytes = roots, enabled, memory

    def start(self, language: str, model_path: Path | None) -> None:
        """Learn the workspace's files of the language in the background (once per
        configuration); model_path names the LSTM the mixture learns to weigh."""
        with self._lock:
            if not self.enabled or not self.roots or language in self._learned:
                return
            learned = self._learned[language] = Learned(AdaptiveModel(self.memory_bytes))
            learned.cache = self._cache_path(language, model_path)
            roots = list(self.roots)
        thread = threading.Thread(
            target=self._learn_workspace,
            args=(language, learned, roots),
            name=f"charcode-learn-{language}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Stop reading and save what was learned (shutdown)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        with self._lock:
            learned = list(self._learned.values())
        for one in learned:
            if one.state == "ready":
                self._save(one)

    # ---- what the Completer asks (inference thread)

    def get(self, language: str, model_path: Path | None = None) -> AdaptiveModel | None:
        """The learned model (None until it holds something); starts learning the language's
        workspace files on first use."""
        if language not in self._learned:
            self.start(language, model_path)
        learned = self._learned.get(language)
        if learned is None or not self.enabled or learned.bytes == 0:
            return None
        return learned.model

    def summary(self) -> dict:
        with self._lock:
            return {lang: one.summary() for lang, one in self._learned.items()}

    # ---- keeping current

    def file_changed(self, language: str, path: Path, read: Callable[[], bytes] | None = None):
        """A file of the workspace was saved or changed on disk: learn its new text (in the
        caller's thread; it is fast). Files outside the roots are ignored."""
        learned = self._learned.get(language)
        if learned is None or learned.state != "ready" or not self._inside(path):
            return
        try:
            st = path.lstat()
            if not path.is_file() or path.is_symlink() or st.st_size > MAX_FILE_BYTES:
                return
            data = read() if read is not None else path.read_bytes()
        except OSError:
            return  # vanished or unreadable: nothing to learn
        key = [st.st_size, st.st_mtime_ns]
        if learned.files.get(str(path)) == key or not data or b"\0" in data[:8192]:
            return
        learned.model.learn(data)
        learned.files[str(path)] = key
        learned.bytes += len(data)

    # ---- the background reader

    def _learn_workspace(self, language: str, learned: Learned, roots: list[Path]) -> None:
        _yield_cpu_to_typing()
        t = time.perf_counter()
        cached = self._load(learned)
        try:
            for f, data in iter_source_files(roots, language, MAX_FILE_BYTES):
                if self._stop.is_set():
                    return
                key = [f.size, f.mtime_ns]
                if cached.get(str(f.path)) == key:
                    continue  # already in the loaded state
                learned.model.learn(data)
                learned.files[str(f.path)] = key
                learned.bytes += len(data)
        except Exception as e:  # a strange workspace must not take the server down
            log.warning("learning the %s files of the workspace stopped: %s", language, e)
        learned.seconds = time.perf_counter() - t
        log.info(
            "learned %d %s files (%d bytes) in %.1f s",
            len(learned.files),
            language,
            learned.bytes,
            learned.seconds,
        )
        self._save(learned)
        learned.state = "ready"  # predictions use the model before: it is only the status

    def _inside(self, path: Path) -> bool:
        try:
            real = path.resolve()
        except OSError:
            return False
        return any(real.is_relative_to(r) for r in self.roots)

    # ---- persistence

    def _cache_path(self, language: str, model_path: Path | None) -> Path:
        model_key = ""
        if model_path is not None:
            try:
                st = model_path.stat()
                model_key = f"{model_path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                model_key = str(model_path)
        key = json.dumps([CACHE_FORMAT, language, [str(r) for r in self.roots], model_key])
        name = hashlib.sha256(key.encode()).hexdigest()[:24]
        return (self.cache_dir or cache_root()) / f"{language}-{name}.state"

    def _load(self, learned: Learned) -> dict[str, list[int]]:
        """The cached state, when there is a usable one: the files it holds."""
        path = learned.cache
        index = path.with_suffix(".json") if path else None
        if path is None or not path.exists() or not index.exists():
            return {}
        try:
            saved = json.loads(index.read_text())
            files = {str(p): [int(k[0]), int(k[1])] for p, k in saved["files"].items()}
            total = int(saved.get("bytes", 0))
            model = AdaptiveModel.load(path)
            if model.stats.get("memory_cap") != learned.model.stats.get("memory_cap"):
                raise AdaptiveStateError("made with another memory cap")
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            IndexError,
            AttributeError,
            AdaptiveStateError,
        ) as e:
            log.warning("the adaptive cache %s cannot be used (%s); learning again", path, e)
            return {}
        learned.model, learned.files, learned.bytes = model, files, total
        return dict(learned.files)

    def _save(self, learned: Learned) -> None:
        path = learned.cache
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            learned.model.save(path)
            index = {"files": learned.files, "bytes": learned.bytes, "format": CACHE_FORMAT}
            atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(index)))
        except OSError as e:
            log.warning("could not save the adaptive state to %s: %s", path, e)
