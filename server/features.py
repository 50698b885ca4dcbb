"""build_server(): the language server with every feature module wired in."""

from __future__ import annotations

from . import completion, debug, hallucinate, inline, lifecycle, model_info, sync, train
from .protocol import INVALID_NOTIFICATION, INVALID_REQUEST, invalid_notification, invalid_request
from .server import CharcodeServer


def build_server() -> CharcodeServer:
    server = CharcodeServer()
    setup(server)
    return server


def setup(server: CharcodeServer) -> None:
    for feature in (lifecycle, sync, inline, completion, hallucinate, train, model_info, debug):
        feature.setup(server)
    server.feature(INVALID_REQUEST)(invalid_request)
    server.feature(INVALID_NOTIFICATION)(invalid_notification)
