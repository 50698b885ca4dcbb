"""workspace/executeCommand charcode.modelInfo: the model in use per language.

Arguments: none (every language that has a checkpoint) or ``{language}``.
Result: ``{languages: {<id>: {name, path, source, layers, hidden,
val_bits_per_char, corpus, size_bytes} | {error}}}``.
"""

from __future__ import annotations

from .arguments import field, single_object

COMMAND = "charcode.modelInfo"


async def model_info(ls, *args) -> dict:
    obj = single_object(COMMAND, args, optional=True)
    language = field(COMMAND, obj, "language", str, default=None)
    result = await ls.runner.run(None, describe, ls, language, count=False)
    return {"languages": result or {}}


def describe(ls, language: str | None, *, should_stop) -> dict:
    """Inference thread (it may load models)."""
    languages = [language] if language else ls.models.languages_with_checkpoints()
    return {lang: ls.models.describe(lang) for lang in languages}


def setup(server) -> None:
    server.command(COMMAND)(model_info)
