"""workspace/executeCommand charcode.hallucinateFunction: write a whole function at the cursor.

Argument ``{uri, position, temperature?, maxChars?, seed?, syntaxCheck?}``; result ``{text}``.
The model samples from its state at the cursor (it has read the document up
to there; in a document blank up to the cursor it first reads the language's
``lead_in``, e.g. the ``}`` of a previous C function). On a line with nothing
but indentation before the cursor, the text starts with the language's
function prime (``def `` for Python). The
language's stop rule, primed with the line before the cursor, ends the
function. Where the language has a syntax guard (guard.py: Python, C, Lua) and
``syntaxCheck`` is not false, a line that cannot be part of a valid function
is sampled again. The text is inserted through ``workspace/applyEdit`` one line at a
time as it is sampled (when the client supports applyEdit), with the
document's line breaks. The same seed on the same text gives the same
function; without a seed each call differs.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from dataclasses import dataclass

from lsprotocol import types

from .arguments import bad, field, position, single_object
from .core.completer import FunctionRequest, function_request
from .core.sampler import Sampled
from .cursor import Cursor
from .document import decode, units, with_eol
from .server import CharcodeServer

COMMAND = "charcode.hallucinateFunction"
DEFAULT_MAX_CHARS = 3000
APPLY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Request:
    cursor: Cursor
    function: FunctionRequest
    eol: str


async def hallucinate_function(ls: CharcodeServer, *args) -> dict:
    req = _parse(ls, args)
    loop = asyncio.get_running_loop()
    versions: asyncio.Queue[str | None] = asyncio.Queue()
    streaming = _can_apply(ls)

    def on_text(text: bytes) -> None:  # inference thread: the function so far
        loop.call_soon_threadsafe(versions.put_nowait, with_eol(decode(text), req.eol))

    job = asyncio.ensure_future(
        ls.runner.run(None, sample, ls, req, on_text if streaming else None, count=False)
    )
    job.add_done_callback(lambda _: loop.call_soon_threadsafe(versions.put_nowait, None))
    msg_id = ls.protocol.msg_id
    unhook = ls.protocol.on_cancel(msg_id, job.cancel) if msg_id is not None else (lambda: None)
    inserted = ""
    try:
        done, first = not streaming, True
        while not done:
            text, done = await versions.get(), False
            # The first line goes out as it is, however fast sampling goes on: the user sees
            # the function start at once. After it, the editor may be slower than sampling.
            while text is not None and not first and not versions.empty():
                newer = versions.get_nowait()  # the editor is slower: show only the latest
                text, done = (text, True) if newer is None else (newer, False)
            if text is None:
                break
            if text != inserted and not await _replace_tail(ls, req.cursor, inserted, text):
                job.cancel()  # the client refused the edit: stop sampling
                break
            inserted, first = text, False
        result: Sampled | None = await job
    finally:
        unhook()
        job.cancel()
    if result is None:
        return {"text": inserted}
    text = with_eol(decode(result.text), req.eol)
    if not streaming:
        return {"text": text}
    if text != inserted and await _replace_tail(ls, req.cursor, inserted, text):
        return {"text": text}
    return {"text": inserted}


def _parse(ls: CharcodeServer, args: tuple) -> Request:
    obj = single_object(COMMAND, args)
    uri = field(COMMAND, obj, "uri", str)
    pos = position(COMMAND, obj)
    temperature = field(
        COMMAND,
        obj,
        "temperature",
        (int, float),
        default=ls.settings.temperature,
        check=lambda v: 0 <= v <= 5,
    )
    max_chars = field(
        COMMAND, obj, "maxChars", int, default=DEFAULT_MAX_CHARS, check=lambda v: 1 <= v <= 100_000
    )
    seed = field(COMMAND, obj, "seed", int, default=None, check=lambda v: 0 <= v < 2**63)
    syntax_check = field(COMMAND, obj, "syntaxCheck", bool, default=True)
    doc = ls.documents.get(uri)
    if doc is None:
        raise bad(COMMAND, f"{uri} is not open (send textDocument/didOpen first)")
    cursor = Cursor.at(doc, pos, ls.encoding)
    function = function_request(
        cursor,
        temperature=temperature,
        max_chars=max_chars,
        seed=seed if seed is not None else random.randrange(2**31),
        syntax_check=syntax_check,
    )
    return Request(cursor=cursor, function=function, eol=doc.eol())


def sample(ls: CharcodeServer, req: Request, on_text, *, should_stop) -> Sampled | None:
    """Inference thread: sample the function (None if there is no model or it was stopped)."""
    return ls.completer.function(req.cursor, req.function, on_text, should_stop)


def _can_apply(ls) -> bool:
    ws = ls.client_capabilities.workspace
    return bool(ws and ws.apply_edit)


def end_position(start: types.Position, text: str, encoding: str) -> types.Position:
    """Where text inserted at start ends, in the client's units."""
    lines = re.split(r"\r\n|\r|\n", text)
    if len(lines) == 1:
        return types.Position(line=start.line, character=start.character + units(text, encoding))
    return types.Position(line=start.line + len(lines) - 1, character=units(lines[-1], encoding))


async def _replace_tail(ls, cursor: Cursor, inserted: str, text: str) -> bool:
    """Make the text inserted so far into `text` with one edit (mostly an append;
    a replacement when sampling backed up or cut the function back)."""
    same = len(os.path.commonprefix([inserted, text]))
    start = end_position(cursor.position, inserted[:same], ls.encoding)
    end = end_position(cursor.position, inserted, ls.encoding)
    return await _edit(ls, cursor.uri, types.Range(start=start, end=end), text[same:])


async def _edit(ls, uri: str, where: types.Range, new_text: str) -> bool:
    edit = types.WorkspaceEdit(changes={uri: [types.TextEdit(range=where, new_text=new_text)]})
    params = types.ApplyWorkspaceEditParams(edit=edit, label="charcode: hallucinate a function")
    try:
        result = await asyncio.wait_for(ls.workspace_apply_edit_async(params), APPLY_TIMEOUT_S)
    except (asyncio.TimeoutError, Exception):
        return False
    return bool(result and result.applied)


def setup(server: CharcodeServer) -> None:
    server.command(COMMAND)(hallucinate_function)
