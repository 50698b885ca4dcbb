"""initialize, initialized, workspace/didChangeConfiguration, shutdown: settings and lifetime."""

from __future__ import annotations

import logging

from lsprotocol import types

from .core.settings import parse_settings
from .server import CharcodeServer
from .train import stop_all_trainers

log = logging.getLogger(__name__)


def initialize(ls: CharcodeServer, params: types.InitializeParams) -> None:
    ls.remember_loop()
    settings, problems = parse_settings(params.initialization_options)
    ls.apply_settings(settings, problems)


async def initialized(ls: CharcodeServer, params: types.InitializedParams) -> None:
    """Adaptation starts reading the workspace for every language that has a model."""
    await start_learning(ls)


async def start_learning(ls: CharcodeServer) -> None:
    if not ls.settings.adaptation:
        return

    def start(*, should_stop) -> None:  # inference thread: it looks models up
        for language in ls.models.languages_with_checkpoints():
            ls.completer.predictor(language)

    await ls.runner.run(None, start, count=False)


async def did_change_configuration(
    ls: CharcodeServer, params: types.DidChangeConfigurationParams
) -> None:
    raw = params.settings
    if not (isinstance(raw, dict) and "charcode" in raw) and _can_pull(ls):
        try:
            pulled = await ls.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section="charcode")])
            )
            raw = pulled[0] if pulled else None
        except Exception as e:  # a client that advertises but fails: keep what we have
            log.warning("workspace/configuration failed: %s", e)
            return
    if raw is None:
        return  # the client has no charcode settings (eglot answers [null]): keep the current
    settings, problems = parse_settings(raw)
    ls.apply_settings(settings, problems)
    await start_learning(ls)


def _can_pull(ls: CharcodeServer) -> bool:
    ws = ls.client_capabilities.workspace
    return bool(ws and ws.configuration)


def did_change_workspace_folders(
    ls: CharcodeServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    ls.apply_settings(ls.settings, [])  # the first folder decides the workspace models folder


def shutdown(ls: CharcodeServer, params: None) -> None:
    for task in list(ls.trainings.values()):
        task.cancel()
    stop_all_trainers(ls)
    ls.runner.shutdown()


def setup(server: CharcodeServer) -> None:
    server.feature(types.INITIALIZE)(initialize)
    server.feature(types.INITIALIZED)(initialized)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration)
    server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(did_change_workspace_folders)
    server.feature(types.SHUTDOWN)(shutdown)
