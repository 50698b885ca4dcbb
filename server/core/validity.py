"""Is a piece of code syntactically valid? One checker per language, for `charcode eval`.

- Python: ``ast.parse`` (the grammar of the running interpreter).
- C, C++, JavaScript, TypeScript, Go, Rust, Java, shell: the language's tree-sitter
  grammar from PyPI (``tree-sitter-c``, ``tree-sitter-cpp``, ... ``tree-sitter-bash``,
  see GRAMMARS); valid when the tree has no ERROR and no MISSING node. The function is
  parsed on its own, without headers, imports or an enclosing class (the grammars of
  Go and Java accept a function at the top of a file): the grammar is the judge, not a
  compiler. A grammar is imported when its language is first checked, never before.
- Shell: tree-sitter-bash accepts much that bash does not (a stray ``fi``), so where
  bash is installed ``bash -n`` must accept the text too.
- Lua: ``luac -p`` of Lua 5.4 (Debian's ``lua5.4`` package installs ``luac5.4``).

A checker whose tool is missing is reported as unavailable, never guessed.
"""

from __future__ import annotations

import ast
import functools
import os
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


# ---------------------------------------------------------------- tree-sitter grammars

# language id -> (PyPI distribution, module, the module's function that returns the grammar)
GRAMMARS: dict[str, tuple[str, str, str]] = {
    "c": ("tree-sitter-c", "tree_sitter_c", "language"),
    "cpp": ("tree-sitter-cpp", "tree_sitter_cpp", "language"),
    "javascript": ("tree-sitter-javascript", "tree_sitter_javascript", "language"),
    "typescript": ("tree-sitter-typescript", "tree_sitter_typescript", "language_typescript"),
    "go": ("tree-sitter-go", "tree_sitter_go", "language"),
    "rust": ("tree-sitter-rust", "tree_sitter_rust", "language"),
    "java": ("tree-sitter-java", "tree_sitter_java", "language"),
    "shellscript": ("tree-sitter-bash", "tree_sitter_bash", "language"),
    "lua": ("tree-sitter-lua", "tree_sitter_lua", "language"),
}


@functools.cache
def tree_sitter_parser(module: str, function: str = "language"):
    """A parser for the grammar in the given module (``tree_sitter_c``, ...); None when
    tree-sitter or the grammar is not installed. One per grammar, shared by guard and checker."""
    try:
        import importlib

        import tree_sitter

        grammar = importlib.import_module(module)
    except ImportError:
        return None
    return tree_sitter.Parser(tree_sitter.Language(getattr(grammar, function)()))


def grammar_parser(language: str):
    """The tree-sitter parser of a language of GRAMMARS; None when it is not installed."""
    _, module, function = GRAMMARS[language]
    return tree_sitter_parser(module, function)


def _parser(language: str):
    parser = grammar_parser(language)
    if parser is None:
        package = GRAMMARS[language][0]
        raise Unavailable(
            f"checking {language} needs tree-sitter: pip install tree-sitter {package}"
        )
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


def _check_tree(parser, text: str) -> Verdict:
    tree = parser.parse(text.encode("utf-8", "surrogatepass"))
    if tree.root_node.has_error:
        return Verdict(False, _first_problem(tree.root_node))
    return Verdict(True)


def _tree_sitter_checker(language: str) -> Checker:
    from importlib.metadata import version

    parser = _parser(language)
    package = GRAMMARS[language][0]
    return Checker(
        language, f"{package} {version(package)}", functools.partial(_check_tree, parser)
    )


# ---------------------------------------------------------------- shell (and bash -n)


@functools.cache
def bash() -> str | None:
    """Path of bash, or None."""
    return shutil.which("bash")


def _bash_parse(source: bytes) -> subprocess.CompletedProcess:
    """``bash -n`` on the source, read from stdin: parses, runs nothing."""
    env = {k: v for k, v in os.environ.items() if k not in ("BASH_ENV", "ENV")}  # read nothing
    return subprocess.run(
        [bash(), "--norc", "--noprofile", "-n"],
        input=source,
        capture_output=True,
        timeout=30,
        env=env,
    )


def bash_check(text: bytes) -> tuple[bool, int]:
    """Does ``bash -n`` accept the text, and if not, the line of its first error (0 when
    it says none). True when there is no bash: the grammar's verdict stands."""
    if bash() is None:
        return True, 0
    try:
        out = _bash_parse(text)
    except (OSError, subprocess.TimeoutExpired):
        return True, 0
    if out.returncode == 0:
        return True, 0
    found = re.search(rb": line (\d+): ", out.stderr)
    return False, int(found.group(1)) if found else 0


def _check_shell(parser, text: str) -> Verdict:
    verdict = _check_tree(parser, text)
    if not verdict.valid or bash() is None:
        return verdict
    try:
        out = _bash_parse(text.encode("utf-8", "surrogatepass"))
    except (OSError, subprocess.TimeoutExpired):
        return verdict
    if out.returncode == 0:
        return verdict
    lines = out.stderr.decode("utf-8", "replace").strip().splitlines()
    message = lines[0] if lines else f"bash -n exited with {out.returncode}"
    return Verdict(False, re.sub(r"^.*?: line (\d+): ", r"line \1: ", message))


def _shell() -> Checker:
    checker = _tree_sitter_checker("shellscript")
    if bash() is None:
        return checker
    parser = _parser("shellscript")
    return Checker(
        "shellscript", f"{checker.tool} + bash -n", functools.partial(_check_shell, parser)
    )


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


_CHECKERS: dict[str, Callable[[], Checker]] = {
    "python": _python,
    "lua": _lua,
    "shellscript": _shell,
    **{
        language: functools.partial(_tree_sitter_checker, language)
        for language in ("c", "cpp", "javascript", "typescript", "go", "rust", "java")
    },
}
