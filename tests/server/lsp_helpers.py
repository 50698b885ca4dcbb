"""Helpers for the language server tests: tiny checkpoints, workspaces, and a client that edits.

Models are tiny (1x32) and trained for a moment with a plain torch loop on a
small Python text, so they are quick to build and say something; the tests
never depend on them being good. The server runs as a real subprocess
(``python -m charcode.server``) driven by pytest-lsp's client; the client
plays the editor: it keeps its own copy of each open document, applies
``workspace/applyEdit`` to it and reports the change back with didChange.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from charcode.training.checkpoint import save_checkpoint
from charcode.training.model import CharLSTM, ModelConfig
from charcode.training.symbols import BOUNDARY

SERVER = [sys.executable, "-m", "charcode.server"]


def unbundled_language() -> str:
    """A language of the table with no bundled model (tests of "no model" need one)."""
    from charcode.training.languages import LANGUAGES
    from charcode.training.registry import bundled_models_dir

    bundled = {
        p.name.removesuffix(".safetensors") for p in bundled_models_dir().glob("*.safetensors")
    }
    free = [
        lang
        for lang in ("rust", "go", "java", "javascript", "typescript", "lua")
        if lang not in bundled
    ]
    free += [lang for lang in LANGUAGES if lang not in bundled]
    if not free:
        pytest.skip("every language has a bundled model")
    return free[0]


TRAIN_TEXT = "import os\n\n\n" + "".join(
    f"def {name}_{i}(items):\n"
    f"    result = []\n"
    f"    for item in items:\n"
    f"        result.append(item)\n"
    f"    return result\n\n\n"
    for i, name in enumerate(["parse", "load", "count", "merge", "split", "render"] * 3)
)


def numpy_runtime(model: CharLSTM):
    """The core's NumPy runtime for a torch model (the tests build models with torch)."""
    from charcode.server.core.lstm import NumpyLSTM

    weights = {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}
    return NumpyLSTM(model.config, weights)


def tiny_model(
    seed: int = 0, steps: int = 0, text: str = TRAIN_TEXT, size: str = "tiny"
) -> CharLSTM:
    """A model with a fixed seed, optionally trained for a few steps on text."""
    torch.manual_seed(seed)
    model = CharLSTM(ModelConfig.named(size))
    if steps:
        data = torch.tensor([BOUNDARY] + list(text.encode()), dtype=torch.long)
        opt = torch.optim.Adam(model.parameters(), lr=0.02)
        seq = 64
        for step in range(steps):
            starts = torch.randint(
                0, len(data) - seq - 1, (16,), generator=torch.Generator().manual_seed(step)
            )
            x = torch.stack([data[s : s + seq] for s in starts])
            y = torch.stack([data[s + 1 : s + seq + 1] for s in starts])
            logits, _ = model(x)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def write_checkpoint(path: Path, model: CharLSTM, language: str = "python") -> Path:
    meta = {
        "language": language,
        "extensions": [".py"] if language == "python" else [],
        "training": {
            "steps": 150,
            "val_bits_per_char": 2.5,
            "corpus": {"files": 1, "bytes": len(TRAIN_TEXT), "sha256": "0" * 64},
        },
    }
    save_checkpoint(path, model, meta)
    return path


def make_workspace(root: Path, checkpoint: Path, language: str = "python") -> Path:
    models = root / ".charcode" / "models"
    models.mkdir(parents=True, exist_ok=True)
    shutil.copy(checkpoint, models / f"{language}.safetensors")
    return root


def server_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The server's environment: an empty user models folder, so a developer's models never leak
    in, and a cache folder of its own (corpora, what adaptation learned)."""
    user = tmp / "user-models"
    user.mkdir(exist_ok=True)
    return {
        **os.environ,
        "CHARCODE_MODELS_DIR": str(user),
        "CHARCODE_CACHE_DIR": str(tmp / "cache" / "corpora"),
        "OMP_NUM_THREADS": "1",
        **extra,
    }


# ---------------------------------------------------------------- positions, as an editor counts them


def split_lines(text: str) -> list[str]:
    """Lines with their breaks (\\n, \\r\\n, lone \\r), as LSP counts them; always at least one."""
    parts = re.split(r"(\r\n|\r|\n)", text)
    lines = [
        parts[i] + (parts[i + 1] if i + 1 < len(parts) else "") for i in range(0, len(parts), 2)
    ]
    return lines


def _char_units(ch: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(ch.encode("utf-8", "surrogatepass"))
    if encoding == "utf-16":
        return 2 if ord(ch) > 0xFFFF else 1
    return 1


def index_at(text: str, pos: types.Position, encoding: str) -> int:
    """Index into text of an LSP position (reference implementation: a plain loop)."""
    lines = split_lines(text)
    if pos.line >= len(lines):
        return len(text)
    start = sum(len(s) for s in lines[: pos.line])
    content = lines[pos.line].rstrip("\r\n")
    units = 0
    for i, ch in enumerate(content):
        if units >= pos.character:
            return start + i
        units += _char_units(ch, encoding)
        if units > pos.character:  # inside a character: round down
            return start + i
    return start + len(content)


def position_of(text: str, index: int, encoding: str) -> types.Position:
    lines = split_lines(text)
    start = 0
    for n, line in enumerate(lines):
        if index <= start + len(line.rstrip("\r\n")) or n == len(lines) - 1:
            col = sum(_char_units(ch, encoding) for ch in text[start:index])
            return types.Position(line=n, character=col)
        start += len(line)
    raise AssertionError("unreachable")


def end_of(text: str, encoding: str) -> types.Position:
    return position_of(text, len(text), encoding)


# ---------------------------------------------------------------- an editor-like client


@dataclass
class Editor:
    """What the test client knows about open documents, and how it talks to the server."""

    client: LanguageClient
    encoding: str
    texts: dict[str, str] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    applied: list[types.ApplyWorkspaceEditParams] = field(default_factory=list)

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.texts[uri] = text
        self.versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language, version=1, text=text
                )
            )
        )

    def close(self, uri: str) -> None:
        self.texts.pop(uri, None)
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    def edit(self, uri: str, start: types.Position, end: types.Position, new_text: str) -> None:
        text = self.texts[uri]
        a, b = index_at(text, start, self.encoding), index_at(text, end, self.encoding)
        self.texts[uri] = text[:a] + new_text + text[b:]
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=start, end=end), text=new_text
                    )
                ],
            )
        )

    def type(self, uri: str, text: str) -> types.Position:
        """Type text at the end of the document; the cursor afterwards."""
        at = end_of(self.texts[uri], self.encoding)
        self.edit(uri, at, at, text)
        return end_of(self.texts[uri], self.encoding)

    def apply_edit(self, params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        self.applied.append(params)
        for uri, edits in (params.edit.changes or {}).items():
            for e in edits:
                self.edit(uri, e.range.start, e.range.end, e.new_text)
        return types.ApplyWorkspaceEditResult(applied=True)

    async def command(self, name: str, *args):
        return await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=list(args))
        )

    async def stats(self) -> dict:
        return await self.command("charcode.debugStats")

    def inline_now(self, uri: str, pos: types.Position) -> asyncio.Future:
        """Send an inlineCompletion request right away (after the edits already sent)."""
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
        return asyncio.wrap_future(self.client.text_document_inline_completion(params))

    async def inline(self, uri: str, pos: types.Position) -> types.InlineCompletionList:
        return await self.inline_now(uri, pos)

    async def complete(self, uri: str, pos: types.Position) -> types.CompletionList:
        return await self.client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=pos
            )
        )


def capabilities(encodings: list[str] | None = None) -> types.ClientCapabilities:
    caps = client_capabilities("visual-studio-code")
    if encodings is not None:
        caps.general = types.GeneralClientCapabilities(position_encodings=encodings)
    return caps


async def start_editor(
    workspace: Path,
    tmp: Path,
    encodings: list[str] | None = None,
    init_options=None,
    env: dict[str, str] | None = None,
) -> tuple[Editor, types.InitializeResult]:
    """Start the server, initialize it with workspace as its only folder, and return the editor."""
    config = ClientServerConfig(server_command=SERVER, server_env=env or server_env(tmp))
    client = await config.start()
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(encodings),
            root_uri=workspace.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)],
            initialization_options=init_options,
        )
    )
    encoding = str(result.capabilities.position_encoding or "utf-16")
    editor = Editor(client, encoding)
    client.feature(types.WORKSPACE_APPLY_EDIT)(lambda params: editor.apply_edit(params))
    return editor, result


async def stop_editor(editor: Editor) -> None:
    await editor.client.shutdown_session()
    await editor.client.stop()


# ---------------------------------------------------------------- what the server should answer


def in_process_runtime(checkpoint: Path):
    from charcode.server.core.model_store import load_runtime

    return load_runtime(checkpoint)[1]


def expected_inline(
    rt, text: str, index: int, max_chars: int = 48, min_prob: float | None = None
) -> str:
    """The ghost text for a cursor at text[index], computed here by reading the prefix from scratch."""
    from charcode.server.core.completer import GHOST_MIN_PROB
    from charcode.server.core.ghost import GreedyPath, greedy_line
    from charcode.server.core.utf8 import is_word_byte

    data = text.encode("utf-8", "surrogatepass")
    before = text[:index].encode("utf-8", "surrogatepass")
    word = bool(before) and is_word_byte(before[-1])
    if word and len(before) < len(data) and is_word_byte(data[len(before)]):
        return ""
    path = GreedyPath(rt, rt.read(rt.start, before))
    out = greedy_line(
        path,
        word=word,
        max_chars=max_chars,
        should_stop=lambda: False,
        min_prob=GHOST_MIN_PROB if min_prob is None else min_prob,
    )
    return out.decode("utf-8")


def expected_words(rt, text: str, index: int) -> list[str]:
    from charcode.server.core.beam import beam_words

    before = text[:index].encode("utf-8", "surrogatepass")
    cands = beam_words(
        rt, rt.read(rt.start, before), width=5, max_bytes=32, should_stop=lambda: False
    )
    return [c.text.decode("utf-8") for c in cands]
