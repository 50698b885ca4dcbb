"""workspace/executeCommand charcode.modelInfo: the model in use per language.

Arguments: none (every language that has a checkpoint) or ``{language}``.
Result: ``{languages: {<id>: {name, path, source, layers, hidden,
val_bits_per_char, corpus, size_bytes} | {error}}}``.
"""

from __future__ import annotations

from .arguments import field, single_object
from .server import CharcodeServer

COMMAND = "charcode.modelInfo"


async def model_info(ls: CharcodeServer, *args) -> dict:
    obj = single_object(COMMAND, args, optional=True)
    language = field(COMMAND, obj, "language", str, default=None)
    result = await ls.runner.run(None, describe, ls, language, count=False)
    return {"languages": result or {}}


def describe(ls: CharcodeServer, language: str | None, *, should_stop) -> dict:
    """Inference thread (it may load models)."""
    languages = [language] if language else ls.models.languages_with_checkpoints()
    learned = ls.workspace_memory.summary()
    out = {}
    for lang in languages:
        out[lang] = info = ls.models.describe(lang)
        if "error" not in info:
            # what adaptation has learned from the workspace: {state, files, bytes, ...}
            info["learned"] = learned.get(
                lang,
                {
                    "state": "off" if not ls.settings.adaptation else "not started",
                    "files": 0,
                    "bytes": 0,
                },
            )
    return out


def setup(server: CharcodeServer) -> None:
    server.command(COMMAND)(model_info)
