"""textDocument/didOpen, didChange (incremental), didClose: keep the DocumentStore and the cache in step."""

from __future__ import annotations

import logging

from lsprotocol import types

log = logging.getLogger(__name__)


def did_open(ls, params: types.DidOpenTextDocumentParams) -> None:
    ls.documents.open(params.text_document)
    ls.snapshots.forget(params.text_document.uri)


def did_change(ls, params: types.DidChangeTextDocumentParams) -> None:
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


def did_close(ls, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.close(params.text_document.uri)
    ls.snapshots.forget(params.text_document.uri)


def setup(server) -> None:
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)
