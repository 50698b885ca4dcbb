"""The charcode language server's state; features.build_server() wires the features onto it."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from .core.completer import Completer, TextAt
from .core.lstm import single_threaded_blas
from .core.model_store import ERROR, INFO, WARNING, ModelStore, Where
from .core.once import Once
from .core.settings import Settings
from .core.snapshots import DEFAULT_CAP_BYTES, SnapshotCache
from .core.workspace_memory import WorkspaceMemory
from .document import DocumentStore
from .protocol import CharcodeProtocol
from .runner import Runner

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return metadata.version("charcode")
    except metadata.PackageNotFoundError:
        return "0"


LEARN_AFTER_IDLE_S = 0.05  # a document's lines are learned once no edit came for this long

_MESSAGE_TYPES = {
    INFO: types.MessageType.Info,
    WARNING: types.MessageType.Warning,
    ERROR: types.MessageType.Error,
}


def _init_inference_thread() -> None:
    # One BLAS thread: batch-1 steps gain nothing from more, and the message
    # loop and the other processes on a small machine need the other cores.
    single_threaded_blas()


class CharcodeServer(LanguageServer):
    """Per-session state; handlers in the feature modules receive it as ``ls``."""

    def __init__(self):
        super().__init__(
            "charcode",
            _version(),
            protocol_cls=CharcodeProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.settings = Settings()
        self.documents = DocumentStore()
        cap_mb = float(os.environ.get("CHARCODE_CACHE_MB", DEFAULT_CAP_BYTES / 2**20))
        self.snapshots = SnapshotCache(cap_bytes=int(cap_mb * 2**20))
        self.models = ModelStore(
            notify=lambda text, level: self.notify(text, _MESSAGE_TYPES[level])
        )
        self.workspace_memory = WorkspaceMemory()
        self.completer = Completer(self.models, self.snapshots, self.workspace_memory)
        self.on_shutdown: list[Callable[[CharcodeServer], None]] = [
            lambda ls: ls.workspace_memory.stop()
        ]
        self.runner = Runner(initializer=_init_inference_thread)
        self.trainings: dict[str, asyncio.Task] = {}
        self.trainer_pids: set[int] = set()
        self.debug = os.environ.get("CHARCODE_DEBUG") == "1"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._told = Once()
        self._background: set[asyncio.Task] = set()

    @property
    def encoding(self) -> str:
        enc = self.workspace.position_encoding or types.PositionEncodingKind.Utf16
        return getattr(enc, "value", enc)

    def workspace_path(self) -> Path | None:
        """The first workspace folder (or the root) as a path."""
        try:
            ws = self.workspace
        except RuntimeError:
            return None
        for folder in ws.folders.values():
            path = to_fs_path(folder.uri)
            if path:
                return Path(path)
        return Path(ws.root_path) if ws.root_path else None

    def workspace_roots(self) -> list[Path]:
        """Every workspace folder (or the root) as a path: what adaptation may read."""
        try:
            ws = self.workspace
        except RuntimeError:
            return []
        roots = [Path(p) for f in ws.folders.values() if (p := to_fs_path(f.uri))]
        if not roots and ws.root_path:
            roots = [Path(ws.root_path)]
        return roots

    def apply_settings(self, settings: Settings, problems: list[str]) -> None:
        self.settings = settings
        for problem in problems:
            self.notify(problem, types.MessageType.Warning)
        self.models.configure(Where(settings, self.workspace_path()))
        self.workspace_memory.configure(
            self.workspace_roots(), settings.adaptation, settings.adaptation_memory_mb
        )

    def learn_when_idle(self, at: TextAt) -> None:
        """After answering at a cursor: learn the document's lines before it in the
        inference thread's idle time (a background job: it yields to every request)."""
        if not self.settings.adaptation:
            return

        async def learn() -> None:
            try:
                # only once the user pauses: a burst of keystrokes learns nothing meanwhile
                await asyncio.sleep(LEARN_AFTER_IDLE_S)
                if self.documents.version(at.uri) != at.version:
                    return
                await self.runner.run(
                    (at.uri, "learn"),
                    self.completer.learn_document,
                    at,
                    stale=lambda: self.documents.version(at.uri) != at.version,
                    count=False,
                    background=True,
                )
            except asyncio.CancelledError:
                pass
            except Exception as e:  # noqa: BLE001 - a failed lesson must not end the session
                self.report_server_error(e, self.learn_when_idle)

        task = asyncio.ensure_future(learn())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def remember_loop(self) -> None:
        self._loop = asyncio.get_running_loop()

    def notify(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        """window/showMessage from any thread."""
        log.info("%s", message)
        params = types.ShowMessageParams(type=kind, message=message)
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None or loop is None:
            self.window_show_message(params)
        else:
            loop.call_soon_threadsafe(self.window_show_message, params)

    def notify_once(
        self, key: str, message: str, kind: types.MessageType = types.MessageType.Info
    ) -> None:
        if self._told.first(key):
            self.notify(message, kind)

    def shutdown(self) -> None:
        """The connection ended (with or without an LSP shutdown): stop model work and trainers."""
        self.runner.shutdown()
        for hook in self.on_shutdown:
            hook(self)
        super().shutdown()

    def report_server_error(self, error: Exception, source) -> None:
        # Unexpected errors go to the log, and once per kind to the user, not once per keystroke.
        log.error("%s: %s", getattr(source, "__name__", source), error)
        if source is FeatureRequestError:
            return  # the error is in the response already
        self.notify_once(
            f"error:{type(error).__name__}",
            f"charcode: internal error: {error}",
            types.MessageType.Error,
        )
