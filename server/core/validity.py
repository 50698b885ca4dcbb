"""Is a piece of code syntactically valid? One checker per language, for `charcode eval`.

- Python: ``ast.parse`` (the grammar of the running interpreter).
- C: the tree-sitter C grammar (pip ``tree-sitter`` and ``tree-sitter-c``); valid when
  the tree has no ERROR and no MISSING node. The function is parsed on its own, without
  headers or macro definitions: the grammar is the judge, not a compiler.
- Lua: ``luac -p`` of Lua 5.4 (Debian's ``lua5.4`` package installs ``luac5.4``).

A checker whose tool is missing is reported as unavailable, never guessed.
"""

from __future__ import annotations

import ast
import functools
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    valid: bool
    error: str = ""  # the first problem, one line


@dataclass(frozen=True)
class Checker:
    language: str
    tool: str  # what judges, e.g. "tree-sitter-c 0.24.2"
    check: Callable[[str], Verdict]


class Unavailable(Exception):
    """No checker for this language here; the message says what to install."""


def checker(language: str) -> Checker:
    """The checker for an LSP language id, or Unavailable."""
    make = _CHECKERS.get(language)
    if make is None:
        known = ", ".join(sorted(_CHECKERS))
        raise Unavailable(f"no syntax checker for {language!r} (there are checkers for {known})")
    return make()


def check(language: str, text: str) -> Verdict:
    return checker(language).check(text)


# ---------------------------------------------------------------- Python


def _check_python(text: str) -> Verdict:
    try:
        ast.parse(text)
    except SyntaxError as e:
        return Verdict(False, f"line {e.lineno}: {e.msg}")
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes, absurd nesting
        return Verdict(False, f"{type(e).__name__}: {e}")
    return Verdict(True)


def _python() -> Checker:
    import platform

    return Checker("python", f"ast (Python {platform.python_version()})", _check_python)


# ---------------------------------------------------------------- C (tree-sitter)


@functools.cache
def tree_sitter_parser(module: str):
    """A parser for the grammar in the given module (``tree_sitter_c``, ...); None when
    tree-sitter or the grammar is not installed. One per grammar, shared by guard and checker."""
    try:
        import importlib

        import tree_sitter

        grammar = importlib.import_module(module)
    except ImportError:
        return None
    return tree_sitter.Parser(tree_sitter.Language(grammar.language()))


def _c_parser():
    parser = tree_sitter_parser("tree_sitter_c")
    if parser is None:
        raise Unavailable("checking C needs tree-sitter: pip install tree-sitter tree-sitter-c")
    return parser


def _first_problem(node) -> str:
    """Where the first ERROR or MISSING node is (depth first, in text order)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n.is_missing:
            return f"line {n.start_point[0] + 1}: missing {n.type!r}"
        if n.is_error:
            return f"line {n.start_point[0] + 1}: syntax error"
        if n.has_error:
            stack.extend(reversed(n.children))
    return "syntax error"


def _check_c(text: str) -> Verdict:
    tree = _c_parser().parse(text.encode("utf-8", "surrogatepass"))
    if tree.root_node.has_error:
        return Verdict(False, _first_problem(tree.root_node))
    return Verdict(True)


def _c() -> Checker:
    from importlib.metadata import version

    _c_parser()
    return Checker("c", f"tree-sitter-c {version('tree-sitter-c')}", _check_c)


# ---------------------------------------------------------------- Lua (luac -p)


@functools.cache
def luac() -> str:
    """Path of a Lua 5.4 compiler (Unavailable when there is none)."""
    for name in ("luac5.4", "luac"):
        path = shutil.which(name)
        if path is None:
            continue
        try:
            out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "Lua 5.4" in out.stdout + out.stderr:
            return path
    raise Unavailable("checking Lua needs luac 5.4: apt-get install lua5.4 (binary luac5.4)")


def _luac_parse(source: bytes) -> subprocess.CompletedProcess:
    """``luac -p`` on the source, read from stdin."""
    return subprocess.run([luac(), "-p", "-"], input=source, capture_output=True, timeout=30)


def lua_compiles(text: bytes) -> bool:
    """luac -p accepts the text (it also rejects what the grammar allows but Lua
    does not compile: ``break`` outside a loop, ``...`` outside a vararg function)."""
    try:
        return _luac_parse(text).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: the grammar's verdict stands


def _check_lua(text: str) -> Verdict:
    out = _luac_parse(text.encode("utf-8", "surrogatepass"))
    if out.returncode == 0:
        return Verdict(True)
    lines = out.stderr.decode("utf-8", "replace").strip().splitlines()
    message = lines[0] if lines else f"luac exited with {out.returncode}"
    return Verdict(False, re.sub(r"^.*?stdin:(\d+):", r"line \1:", message))


def _lua() -> Checker:
    return Checker("lua", f"luac -p ({luac()})", _check_lua)


_CHECKERS: dict[str, Callable[[], Checker]] = {"python": _python, "c": _c, "lua": _lua}
