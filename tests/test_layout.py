"""DESIGN.md's layout rules, read from the source: dependency direction, no cycles, a core
without LSP or torch, no reaching into other packages' private names, no server subclasses.

Every import counts, including those inside functions (they run too, only later)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"charcode.training": ROOT / "training", "charcode.server": ROOT / "server"}


def _module_files() -> dict[str, Path]:
    modules = {}
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([prefix, *parts])] = path
    return modules


MODULES = _module_files()


def _package_of(module: str) -> str:
    """The package a module belongs to (a package's __init__ belongs to the package)."""
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(module).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, str | None, bool]]:
    """(imported module, imported name or None, at module level) for every import."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    for n in tree.body:  # imports under a module-level try/if still run at import time
        if isinstance(n, ast.Try | ast.If):
            top.update(id(m) for m in ast.walk(n))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, None, id(node) in top) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            out.extend((target, a.name, id(node) in top) for a in node.names)
    return out


def _edges(module: str, module_level_only: bool = False) -> set[str]:
    """The modules this one imports: charcode modules by name, others by top-level name."""
    found = set()
    for target, name, at_top in _imports(module):
        if module_level_only and not at_top:
            continue
        if name is not None and f"{target}.{name}" in MODULES:
            found.add(f"{target}.{name}")
        elif target in MODULES:
            found.add(target)
        elif not target.startswith("charcode"):
            found.add(target.split(".")[0])
    return found


GRAPH = {m: _edges(m) for m in MODULES}


def _reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for n in graph.get(m, ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def test_no_import_cycle_among_charcode_modules():
    cycles = sorted(m for m in MODULES if m in _reachable(m, GRAPH))
    assert cycles == [], f"modules on an import cycle: {cycles}"


def test_no_training_module_imports_the_server():
    offenders = {m: sorted(e for e in GRAPH[m] if "charcode.server" in e) for m in MODULES}
    assert {m: e for m, e in offenders.items() if e and m.startswith("charcode.training")} == {}


def test_the_core_imports_neither_pygls_nor_lsprotocol():
    core = [m for m in MODULES if m.startswith("charcode.server.core")]
    assert core
    for m in core:
        lsp = _reachable(m, GRAPH) & {"pygls", "lsprotocol"}
        assert not lsp, f"{m} reaches {lsp}"


def test_serving_modules_do_not_load_torch():
    """torch is for training and for device: cuda (core/lstm_cuda.py) only."""
    top_level = {m: _edges(m, module_level_only=True) for m in MODULES}
    serving = [
        m
        for m in MODULES
        if m.startswith("charcode.server") and m != "charcode.server.core.lstm_cuda"
    ]
    for m in serving:
        assert "torch" not in _reachable(m, top_level), f"{m} imports torch when it loads"


# Documented public APIs whose names start with an underscore.
PUBLIC_UNDERSCORE = {"os._exit"}


def test_no_module_uses_another_packages_private_names():
    offenders = []
    for m in MODULES:
        for target, name, _ in _imports(m):
            private = name is not None and name.startswith("_") and not name.startswith("__")
            if private and target in MODULES and _package_of(target) != _package_of(m):
                offenders.append(f"{m}: {target}.{name}")
        # module._name: attribute access on an imported module of another package
        imported = {}
        for node in ast.walk(ast.parse(MODULES[m].read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    imported[(a.asname or a.name).split(".")[0]] = a.name
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.value.id in imported
                and f"{imported[node.value.id]}.{node.attr}" not in PUBLIC_UNDERSCORE
            ):
                offenders.append(f"{m}: {imported[node.value.id]}.{node.attr}")
    assert offenders == []


def test_no_production_class_derives_from_the_server_class():
    subclasses = []
    for m, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name != "CharcodeServer":
                bases = {ast.unparse(b).split(".")[-1] for b in node.bases}
                if bases & {"CharcodeServer", "LanguageServer"}:
                    subclasses.append(f"{m}.{node.name}")
    assert subclasses == []


def test_no_two_modules_share_a_name():
    """Confusable names (decode.py beside a decode function's module, evaluate beside
    evaluation) made the code hard to find one's way in: every module name is unique."""
    names: dict[str, list[str]] = {}
    for m, path in MODULES.items():
        if path.name not in ("__init__.py", "__main__.py"):
            names.setdefault(path.stem, []).append(m)
    assert {n: ms for n, ms in names.items() if len(ms) > 1} == {}


def test_the_training_cli_loads_without_the_server():
    code = (
        "import sys, charcode.training.cli as c, charcode.training.trainer, "
        "charcode.training.evaluate;"
        "print(sorted(m for m in sys.modules if m.startswith('charcode.server')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
