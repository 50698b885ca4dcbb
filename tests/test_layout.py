"""DESIGN.md's dependency direction: charcode.server may import charcode.training, never
the reverse, so the trainer runs (and torchrun launches it) without the server's code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[1] / "training"


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_training_module_imports_the_server():
    offenders = {
        str(p.relative_to(TRAINING)): sorted(m for m in _imported_modules(p) if "server" in m)
        for p in TRAINING.rglob("*.py")
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def test_the_training_cli_loads_without_the_server():
    code = (
        "import sys, charcode.training.cli as c, charcode.training.trainer, "
        "charcode.training.evaluate, charcode.training.sampling;"
        "c.build_parser();"
        "print(sorted(m for m in sys.modules if m.startswith('charcode.server')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
