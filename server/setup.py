"""setup(server): wire every feature module into the server."""

from __future__ import annotations

from . import completion, debug, hallucinate, inline, lifecycle, model_info, sync, train
from .protocol import INVALID_NOTIFICATION, INVALID_REQUEST, invalid_notification, invalid_request


def setup(server) -> None:
    for feature in (lifecycle, sync, inline, completion, hallucinate, train, model_info, debug):
        feature.setup(server)
    server.feature(INVALID_REQUEST)(invalid_request)
    server.feature(INVALID_NOTIFICATION)(invalid_notification)
