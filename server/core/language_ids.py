"""Client language ids to charcode's (the LSP ids in training/languages.py).

Editors name some languages differently: Neovim sends its filetype (``sh``),
VS Code has ``javascriptreact`` and ``typescriptreact``. Their models are the
same, so the server maps these ids before looking for a model.
"""

from __future__ import annotations

ALIASES = {
    "sh": "shellscript",
    "bash": "shellscript",
    "zsh": "shellscript",
    "javascriptreact": "javascript",
    "typescriptreact": "typescript",
    "jsx": "javascript",
    "tsx": "typescript",
    "objc": "c",
    "c++": "cpp",
    "cxx": "cpp",
    "python3": "python",
}


def canonical_language(language_id: str) -> str:
    return ALIASES.get(language_id, language_id)
