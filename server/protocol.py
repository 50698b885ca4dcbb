"""pygls' LanguageServerProtocol with four changes charcode needs.

1. Document sync goes to charcode's own DocumentStore (server/document.py)
   instead of pygls' workspace documents, which rebuild the whole text and
   line list on every keystroke and treat form feeds as line breaks.
2. ``workspace/executeCommand`` makes its params (the client's
   ``workDoneToken``) visible to the command through ``command_params``.
3. ``$/cancelRequest`` for a command also runs the hooks the command
   registered (pygls cancels the request's future but not the task running
   the command).
4. A request whose params fail to deserialize gets an InvalidParams error
   response instead of no response at all.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import JsonRPCNotification, JsonRPCRequestMessage

INVALID_REQUEST = "charcode/invalidRequest"
INVALID_NOTIFICATION = "charcode/invalidNotification"

log = logging.getLogger(__name__)


class CharcodeProtocol(LanguageServerProtocol):
    def __init__(self, server, converter):
        super().__init__(server, converter)
        self.command_params: contextvars.ContextVar[types.ExecuteCommandParams | None] = (
            contextvars.ContextVar("command_params", default=None)
        )
        self.cancel_hooks: dict[object, list[Callable[[], None]]] = {}

    def _user(self, method: str, params):
        if (handler := self.fm.features.get(method)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        yield from self._user(types.TEXT_DOCUMENT_DID_CLOSE, params)

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    def lsp_workspace__execute_command(self, params: types.ExecuteCommandParams):
        self.command_params.set(params)
        return (yield from super().lsp_workspace__execute_command(params))

    def on_cancel(self, msg_id, hook: Callable[[], None]) -> Callable[[], None]:
        """Run hook if the client cancels request msg_id; returns a function that unregisters it."""
        self.cancel_hooks.setdefault(msg_id, []).append(hook)

        def remove():
            hooks = self.cancel_hooks.get(msg_id)
            if hooks and hook in hooks:
                hooks.remove(hook)
                if not hooks:
                    del self.cancel_hooks[msg_id]

        return remove

    def _handle_cancel_notification(self, msg_id):
        super()._handle_cancel_notification(msg_id)
        for hook in self.cancel_hooks.pop(msg_id, []):
            hook()

    def structure_message(self, data):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if not isinstance(data, dict) or "method" not in data:
                raise
            cause = exc.__cause__ or exc
            detail = {"method": data.get("method"), "error": str(cause).splitlines()[0][:500]}
            if "id" in data:
                return JsonRPCRequestMessage(
                    id=data["id"], method=INVALID_REQUEST, jsonrpc="2.0", params=detail
                )
            return JsonRPCNotification(method=INVALID_NOTIFICATION, jsonrpc="2.0", params=detail)


def invalid_request(ls, params) -> None:
    """The reply to a request whose params did not deserialize."""
    raise JsonRpcInvalidParams(f"invalid params for {params['method']}: {params['error']}")


def invalid_notification(ls, params) -> None:
    log.warning("ignored %s with invalid params: %s", params["method"], params["error"])
