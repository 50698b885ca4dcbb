"""Bad input over LSP: odd positions and URIs, huge and binary documents, malformed arguments,
keystroke bursts, many open documents, cancellation. The server answers and keeps serving."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import time
import uuid

import pytest
import pytest_asyncio
from lsp_helpers import end_of, make_workspace, server_env, start_editor, stop_editor
from lsprotocol import types
from pygls.exceptions import JsonRpcException

pytestmark = pytest.mark.asyncio(loop_scope="module")

CAP_MB = 1


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(trained_checkpoint, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robust")
    ws = make_workspace(tmp / "ws", trained_checkpoint)
    env = server_env(tmp, CHARCODE_DEBUG="1", CHARCODE_CACHE_MB=str(CAP_MB))
    editor, _ = await start_editor(ws, tmp, env=env)
    yield editor, ws
    await stop_editor(editor)


def pos(line, character):
    return types.Position(line=line, character=character)


async def test_positions_past_the_end_and_unknown_documents(session):
    editor, ws = session
    uri = (ws / "short.py").as_uri()
    editor.open(uri, "def f(items):\n    re")
    for p in (pos(0, 10_000), pos(99, 0), pos(2**31 - 1, 2**31 - 1)):
        await editor.inline(uri, p)
        await editor.complete(uri, p)
    for bad_uri in ("file:///nowhere/never-opened.py", "untitled:Untitled-1", "not a uri"):
        assert not (await editor.inline(bad_uri, pos(0, 0))).items
        assert not (await editor.complete(bad_uri, pos(0, 0))).items
    # a change for a document that is not open is ignored
    editor.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri="file:///ghost.py", version=3),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="x")],
        )
    )
    assert (await editor.complete(uri, end_of(editor.texts[uri], "utf-16"))).items


def raw_request(client, method: str, params) -> asyncio.Future:
    """Send a request as raw JSON (the typed client would refuse these params)."""
    proto = client.protocol
    msg_id = str(uuid.uuid4())
    fut = concurrent.futures.Future()
    proto._request_futures[msg_id] = fut
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}).encode()
    res = proto.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    if inspect.isawaitable(res):
        asyncio.ensure_future(res)
    return asyncio.wrap_future(fut)


@pytest.mark.parametrize(
    "method,params",
    [
        (
            "textDocument/completion",
            {"textDocument": {"uri": "file:///a.py"}, "position": {"line": -1}},
        ),
        ("textDocument/inlineCompletion", {"textDocument": {}, "position": None}),
        ("textDocument/completion", [1, 2, 3]),
    ],
)
async def test_invalid_request_params_get_an_error_not_silence(session, method, params):
    editor, _ = session
    with pytest.raises(JsonRpcException, match="nvalid params") as err:
        await asyncio.wait_for(raw_request(editor.client, method, params), 10)
    assert err.value.code == -32602


async def test_five_megabyte_single_line_file(session):
    editor, ws = session
    uri = (ws / "huge.py").as_uri()
    text = ("x = '中文😀' + items; " * 300_000)[:5_000_000]
    editor.open(uri, text)
    end = pos(0, len(text.encode("utf-16-le")) // 2)  # one line: its length in UTF-16 units
    t = time.monotonic()
    got = await editor.inline(uri, end)
    first = time.monotonic() - t
    await editor.complete(uri, end)
    editor.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=end, end=end), text=" re"
                )
            ],
        )
    )
    t = time.monotonic()
    await editor.inline(uri, pos(0, end.character + 3))
    typing = time.monotonic() - t
    assert first < 10 and typing < 2, (first, typing)
    assert all("\n" not in i.insert_text for i in got.items)
    server = await editor.command("charcode.debugDocument", {"uri": uri})
    assert server["text"] == text + " re"
    editor.close(uri)


async def test_binary_content(session):
    editor, ws = session
    uri = (ws / "blob.py").as_uri()
    text = "".join(chr(c) for c in range(0, 0x2FF)) + "\ud7ff\ue000\U0010fffd"
    editor.open(uri, text)
    end = end_of(text, "utf-16")
    got = await editor.inline(uri, end)
    for item in got.items:
        item.insert_text.encode("utf-8")  # valid text
    await editor.complete(uri, end)
    await editor.command(
        "charcode.hallucinateFunction",
        {"uri": uri, "position": {"line": 0, "character": 3}, "seed": 1, "maxChars": 50},
    )


@pytest.mark.parametrize(
    "command,args",
    [
        ("charcode.hallucinateFunction", []),
        ("charcode.hallucinateFunction", [1, 2]),
        ("charcode.hallucinateFunction", ["file:///a.py"]),
        ("charcode.hallucinateFunction", [{"uri": 5, "position": {"line": 0, "character": 0}}]),
        (
            "charcode.hallucinateFunction",
            [{"uri": "file:///not-open.py", "position": {"line": 0, "character": 0}}],
        ),
        ("charcode.hallucinateFunction", [{"uri": "file:///a.py", "position": {"line": "0"}}]),
        (
            "charcode.hallucinateFunction",
            [{"uri": "file:///a.py", "position": {"line": 0, "character": -4}}],
        ),
        (
            "charcode.hallucinateFunction",
            [{"uri": "file:///a.py", "position": [0, 0], "seed": "x"}],
        ),
        (
            "charcode.hallucinateFunction",
            [{"uri": "file:///a.py", "position": {"line": 0, "character": 0}, "syntaxCheck": 1}],
        ),
        ("charcode.train", [{}]),
        ("charcode.train", [{"language": "klingon", "roots": ["/"]}]),
        ("charcode.train", [{"language": "python", "roots": "/tmp"}]),
        ("charcode.train", [{"language": "python", "roots": ["/definitely/not/here"]}]),
        ("charcode.train", [{"language": "python", "roots": ["/tmp"], "minutes": -1}]),
        ("charcode.modelInfo", [{"language": 3}]),
        ("charcode.modelInfo", ["python"]),
        ("charcode.noSuchCommand", []),
    ],
)
async def test_malformed_command_arguments_get_invalid_params(session, command, args):
    editor, _ = session
    with pytest.raises(JsonRpcException) as err:
        await editor.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=command, arguments=args)
        )
    assert err.value.code == -32602


async def test_a_burst_of_keystrokes_computes_only_the_latest(session):
    editor, ws = session
    uri = (ws / "burst.py").as_uri()
    editor.open(uri, "def f(items):\n    ")
    await editor.inline(uri, end_of(editor.texts[uri], "utf-16"))
    before = (await editor.stats())["inference"]
    hold = asyncio.ensure_future(editor.command("charcode.debugHold", {"ms": 1500}))
    await asyncio.sleep(0.2)  # the inference thread is now busy
    requests = []
    for ch in ("result = [] ; " * 20)[:200]:
        cursor = editor.type(uri, ch)
        requests.append(editor.inline_now(uri, cursor))
    results = await asyncio.gather(*requests)
    await hold
    after = (await editor.stats())["inference"]
    assert after["computed"] - before["computed"] == 1
    assert after["skipped"] - before["skipped"] == 199
    assert all(not r.items for r in results[:-1])
    server = await editor.command("charcode.debugDocument", {"uri": uri})
    assert server["text"] == editor.texts[uri]


async def test_five_hundred_open_documents_stay_within_the_cache_cap(session):
    editor, ws = session
    uris = []
    for n in range(500):
        uri = (ws / f"many_{n}.py").as_uri()
        text = f"# file {n}\n" + "def f(items):\n    result = []\n" * 40 + "    re"
        editor.open(uri, text)
        uris.append(uri)
    for uri in uris[::5]:
        await editor.inline(uri, end_of(editor.texts[uri], "utf-16"))
    stats = await editor.stats()
    assert stats["documents"] >= 500
    assert 0 < stats["cache"]["bytes"] <= CAP_MB * 2**20
    assert stats["rss_bytes"] < 1.5 * 2**30
    for uri in uris:
        editor.close(uri)


def send(editor, method: str, params) -> tuple[str, asyncio.Future]:
    msg_id = str(uuid.uuid4())
    return msg_id, asyncio.wrap_future(
        editor.client.protocol.send_request(method, params, msg_id=msg_id)
    )


def cancel(editor, msg_id: str) -> None:
    editor.client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))


async def test_cancelling_a_hallucination_stops_it_within_a_step(session):
    editor, ws = session
    # a language without a stop rule, so only maxChars or a cancel ends the sampling
    model = str(ws / ".charcode" / "models" / "python.safetensors")
    editor.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"charcode": {"models": {"text": model}}})
    )
    uri = (ws / "cancel.txt").as_uri()
    editor.open(uri, "x = 1\n", language="text")
    before = (await editor.stats())["inference"]
    args = {"uri": uri, "position": {"line": 1, "character": 0}, "maxChars": 100_000, "seed": 1}
    msg_id, fut = send(
        editor,
        "workspace/executeCommand",
        types.ExecuteCommandParams(command="charcode.hallucinateFunction", arguments=[args]),
    )
    await asyncio.sleep(1.0)
    assert not fut.done()
    cancel(editor, msg_id)
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(fut, 5)
    assert err.value.code == -32800  # RequestCancelled
    t = time.monotonic()
    await editor.inline(uri, pos(0, 0))  # the inference thread is free again
    assert time.monotonic() - t < 1.0
    after = (await editor.stats())["inference"]
    assert after["cancelled"] == before["cancelled"] + 1
    streamed = editor.texts[uri]
    assert streamed.startswith("x = 1\n") and len(streamed) > 10  # lines arrived while sampling


async def test_cancelling_an_inline_request(session):
    editor, ws = session
    uri = (ws / "cancel2.py").as_uri()
    editor.open(uri, "def f(items):\n    re")
    hold = asyncio.ensure_future(editor.command("charcode.debugHold", {"ms": 500}))
    await asyncio.sleep(0.1)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=end_of(editor.texts[uri], "utf-16"),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )
    msg_id, fut = send(editor, "textDocument/inlineCompletion", params)
    await asyncio.sleep(0.1)
    cancel(editor, msg_id)
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(fut, 5)
    assert err.value.code == -32800
    await hold
    assert (await editor.complete(uri, end_of(editor.texts[uri], "utf-16"))).items
