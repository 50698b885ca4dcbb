"""Syntax guards: may a hallucinated function go on this way, and is it whole?

The sampler asks its guard at the end of every line it writes
(``final=False``): can the text so far still become a valid function? True
(yes: the sampler remembers this point), False (no: the lines since the last
such point are sampled again) or None (cannot tell here, e.g. inside an
expression that spans lines: go on). When the stop rule ends the function the
guard is asked whether the text is a complete, valid function
(``final=True``); if not, the ending is sampled again, so a function does not
end on ``if x:`` with no body.

- Python: the running interpreter's compiler; an incomplete prefix (open
  brackets, a block still waiting for its body) can go on, a syntax error
  cannot.
- C and Lua: the tree-sitter grammars (pip ``tree-sitter-c``,
  ``tree-sitter-lua``); a prefix is judged only at the end of a statement (for
  C, a line ending in ``;``, ``{`` or ``}`` outside brackets), after closing its
  open blocks with the ``}`` or ``end`` the stop rule counts; valid when the
  tree has no ERROR and no MISSING node. For Lua, where Lua 5.4's ``luac`` is
  installed, ``luac -p`` must also accept it (``break`` outside a loop parses
  but does not compile). A Lua line no deeper than the function's header,
  while the function is open, is sampled again: Lua accepts a whole file's
  top-level code inside a body, and the model, having left the function,
  goes on writing one. Without tree-sitter there is no guard.

``guard_for`` returns None for a language without a guard: sampling is plain.
"""

from __future__ import annotations

import ast
import codeop
import re
import warnings
from collections.abc import Callable

from .stoprules import LexerState, StopRule
from .validity import tree_sitter_parser

# guard(text, final, rule) -> True / False / None (see above); rule: the sampler's stop rule
Guard = Callable[[bytes, bool, "StopRule | None"], "bool | None"]


def guard_for(language: str) -> Guard | None:
    make = _GUARDS.get(language)
    return make() if make is not None else None


def _lexer(rule: StopRule | None) -> LexerState:
    """The stop rule's lexer state; outside code when there is no rule."""
    return rule.lexer() if rule is not None else LexerState(in_code=False)


# ---------------------------------------------------------------- Python


def _python_source(text: bytes) -> str | None:
    try:
        src = text.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # A function written inside a block (a method) is indented: give it a block to live in.
    return "if 1:\n" + src if src[:1] in (" ", "\t") else src


# A docstring (or any triple-quoted string) of more lines is sent back: at T=1 the model
# can write prose for thousands of characters and never close it. Stdlib docstrings of
# functions are rarely longer; the line is sampled again until the string closes.
MAX_STRING_LINES = 12


def _open_string_lines(text: bytes, rule: StopRule | None) -> int:
    """Lines of the triple-quoted string the stop rule is inside (0 when outside)."""
    lexer = _lexer(rule)
    if not lexer.triple_string:
        return 0
    opener = bytes([lexer.quote]) * 3
    return text[text.rfind(opener) :].count(b"\n")


# Likewise a bracket left open for more lines (a header's parameters, a call's
# arguments): inside one everything is an incomplete but valid prefix, and the model
# can wander there, never closing it, until the length cap.
MAX_BRACKET_LINES = 16


def _open_bracket_lines(text: bytes, rule: StopRule | None) -> int:
    """Lines of the logical line the stop rule is in, when a bracket is open in it."""
    lexer = _lexer(rule)
    if not lexer.brackets:
        return 0
    start = len(text) - lexer.logical_line_bytes  # the rule counts from its own prime
    return text[max(0, start) :].count(b"\n")


def python_guard(text: bytes, final: bool, rule: StopRule | None = None) -> bool:
    src = _python_source(text)
    if src is None:
        return False
    if not final and (
        _open_string_lines(text, rule) > MAX_STRING_LINES
        or _open_bracket_lines(text, rule) > MAX_BRACKET_LINES
    ):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. invalid escape sequences: valid syntax
        try:
            if final:
                ast.parse(src)
            else:
                # None (incomplete: more lines may follow) or a code object: both can go on.
                codeop.compile_command(src, "<hallucinated>", "exec")
        except (SyntaxError, ValueError, OverflowError):
            return False
    return True


# ---------------------------------------------------------------- tree-sitter (C, Lua)


def _clean(parser, text: bytes) -> bool:
    """No ERROR and no MISSING node in the tree."""
    return not parser.parse(text).root_node.has_error


def _last_code_byte(text: bytes) -> int:
    stripped = text.rstrip()
    return stripped[-1] if stripped else 0


def _in_code(rule: StopRule | None) -> bool:
    return _lexer(rule).in_code


def _make_c_guard() -> Guard | None:
    parser = tree_sitter_parser("tree_sitter_c")
    if parser is None:
        return None

    def c_guard(text: bytes, final: bool, rule: StopRule | None = None) -> bool | None:
        if final:
            return _clean(parser, text)
        if rule is None or not _in_code(rule) or _lexer(rule).parens:
            return None
        last_line = text.rstrip().rsplit(b"\n", 1)[-1].lstrip()
        if _last_code_byte(text) not in b";{}" or last_line.startswith(b"#"):
            return None  # mid-statement, or a directive (macros can be anything)
        return _clean(parser, text + b"\n" + b"}" * _lexer(rule).depth)

    return c_guard


_LUA_CONTINUES = frozenset(b",([{=+-*/%^<>.~:")  # a line ending so goes on in the next
_LUA_CONTINUING_WORDS = (b"and", b"or", b"not", b"local", b"return", b"in", b"function")


def _lua_compiler() -> Callable[[bytes], bool]:
    """luac -p where Lua 5.4 is installed (what the evaluation judges Lua by), else nothing."""
    from .validity import Unavailable, lua_compiles, luac

    try:
        luac()
    except Unavailable:
        return lambda text: True
    return lua_compiles


_LUA_LONG_BRACKET_CLOSE = re.compile(rb"\]=*\]")


def _indent(line: bytes) -> int:
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip())


def _lua_outdented(text: bytes, rule: StopRule | None) -> bool:
    """The line just written is no deeper than the function's header while the
    function is still open: the model has left the function (it goes on writing
    a whole file at the top level, which Lua accepts inside a body) or misplaced
    an ``end``. Lines that may close a long string are not judged."""
    if _lexer(rule).depth < 1:
        return False
    first, _, rest = text.partition(b"\n")
    last = rest.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    if not last.strip() or _LUA_LONG_BRACKET_CLOSE.search(last):
        return False
    return _indent(last) <= _indent(first)


def _make_lua_guard() -> Guard | None:
    parser = tree_sitter_parser("tree_sitter_lua")
    if parser is None:
        return None
    compiles = _lua_compiler()

    def valid(text: bytes) -> bool:
        return _clean(parser, text) and compiles(text)

    def lua_guard(text: bytes, final: bool, rule: StopRule | None = None) -> bool | None:
        if final:
            return valid(text)
        if rule is None or not _in_code(rule):
            return None
        if _lua_outdented(text, rule):
            return False
        stripped = text.rstrip()
        if not stripped or stripped[-1] in _LUA_CONTINUES:
            return None
        if stripped.endswith(_LUA_CONTINUING_WORDS):
            return None  # (or an identifier ending so: no judgement either way)
        return valid(text + b"\nend" * _lexer(rule).depth + b"\n")

    return lua_guard


_GUARDS: dict[str, Callable[[], Guard | None]] = {
    "python": lambda: python_guard,
    "c": _make_c_guard,
    "lua": _make_lua_guard,
}
