"""Document and file sync: didOpen, didChange (incremental), didClose keep the DocumentStore and
the cache in step; didSave and didChangeWatchedFiles keep what the engine learned current."""

from __future__ import annotations

import logging
from pathlib import Path

from lsprotocol import types
from pygls.uris import to_fs_path

from charcode.training.languages import language_of_path

from .core.language_ids import canonical_language
from .server import CharcodeServer

log = logging.getLogger(__name__)


def did_open(ls: CharcodeServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.documents.open(params.text_document)
    ls.snapshots.forget(params.text_document.uri)


def did_change(ls: CharcodeServer, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    doc = ls.documents.get(uri)
    if doc is None:
        log.warning("didChange for %s, which is not open; ignored", uri)
        return
    first = len(doc.data)
    for change in params.content_changes:
        first = min(first, doc.apply(change, ls.encoding))
    doc.version = params.text_document.version
    ls.snapshots.edited(uri, doc.version, first)


def did_close(ls: CharcodeServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.close(params.text_document.uri)
    ls.completer.forget(params.text_document.uri)


def did_save(ls: CharcodeServer, params: types.DidSaveTextDocumentParams) -> None:
    """A saved file is text that has stopped changing: the engine learns it again."""
    doc = ls.documents.get(params.text_document.uri)
    path = to_fs_path(params.text_document.uri)
    if doc is not None and path:
        language = canonical_language(doc.language_id)
        ls.workspace_memory.file_changed(language, Path(path))


def did_change_watched_files(ls: CharcodeServer, params: types.DidChangeWatchedFilesParams) -> None:
    """Files changed on disk (another tool, a checkout): learn the new text of those that
    belong to a language the engine is learning."""
    for change in params.changes:
        path = to_fs_path(change.uri)
        if not path or change.type == types.FileChangeType.Deleted:
            continue
        language = language_of_path(Path(path))
        if language:
            ls.workspace_memory.file_changed(language, Path(path))


def setup(server: CharcodeServer) -> None:
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)
    server.feature(types.TEXT_DOCUMENT_DID_SAVE)(did_save)
    server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(did_change_watched_files)
