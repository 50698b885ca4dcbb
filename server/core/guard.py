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
- C, C++, Java, JavaScript, TypeScript, Go, Rust: the language's tree-sitter
  grammar (validity.GRAMMARS). A prefix is judged at a line end outside strings,
  comments and brackets (but in a block inside brackets, a callback's body),
  after closing what is open, as the stop rule lists it (``}``, ``)``, ``]``);
  valid when the tree has no ERROR and no MISSING node but MISSING
  ones after the text (a ``;`` after ``x = {`` closed by ``}``). Per language
  (BRACE_SYNTAX) a line ending in ``;``, ``{`` or ``}`` must pass (False if
  not); one that may end a statement without them (an identifier, ``)``, a
  literal, ``,``: Go, JS, TS, a Rust tail) is approved when it passes and not
  judged when it does not (``if (x)`` waits for its statement); a block
  opened by ``do`` or ``try`` is closed with what it needs (``} while (0);``,
  ``} finally {}``); a failure in a callback's body is no verdict (the
  expression around it may want more); lines in the header, a ``}`` alone (a
  catch may follow), C and C++ ``#`` lines and lines inside ``#if`` are not
  judged. C keeps the guard its bundled model was measured with: only ``;{}``
  lines outside brackets, ``}`` closes every block, no MISSING allowed.
- Shell: the stop rule tracks the compound commands open (if, loops, case,
  ``{``); a line end inside the function body, not in a string, heredoc or
  ``$( )`` and not continued (``|``, ``&&``, ``\\``), is closed with ``fi``,
  ``done``, ``esac``, ``}`` as needed, and checked by tree-sitter-bash and
  ``bash -n``: True when both accept, False when bash finds the error in the
  text itself, else None. Before the body's ``{``, only a function header
  (``name()``, ``function name``) may have been written. A whole function
  must pass both.
- Lua: the tree-sitter grammar (pip ``tree-sitter-lua``); a prefix is judged
  only at the end of a statement, after closing its open blocks with the
  ``end`` the stop rule counts. Where Lua 5.4's ``luac`` is
  installed, ``luac -p`` must also accept it (``break`` outside a loop parses
  but does not compile). A Lua line no deeper than the function's header,
  while the function is open, is sampled again: Lua accepts a whole file's
  top-level code inside a body, and the model, having left the function,
  goes on writing one. Without tree-sitter (or its grammar) there is no guard.

``guard_for`` returns None for a language without a guard: sampling is plain.
"""

from __future__ import annotations

import ast
import codeop
import functools
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from .stoprules import LexerState, StopRule
from .validity import grammar_parser

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


# ---------------------------------------------------------------- tree-sitter (brace languages, Lua)


def _clean(parser, text: bytes) -> bool:
    """No ERROR and no MISSING node in the tree."""
    return not parser.parse(text).root_node.has_error


def _in_code(rule: StopRule | None) -> bool:
    return _lexer(rule).in_code


def _clean_prefix(parser, text: bytes, closers: bytes) -> bool:
    """``text + closers`` parses, but for MISSING nodes after the text: the closers end
    what the text opened, and ``x = {`` closed by ``}`` lacks the `;` the text would
    write next."""
    root = parser.parse(text + closers).root_node
    if not root.has_error:
        return True
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing and node.start_byte < len(text):
            return False
        if node.has_error:
            stack.extend(node.children)
    return True


@dataclass(frozen=True)
class BraceSyntax:
    """Where a brace language's guard judges a line, and how."""

    language: str  # its grammar in validity.GRAMMARS
    # After these last bytes a statement or block has ended: a prefix that does not parse
    # once its blocks are closed cannot go on (False).
    hard: bytes = b";{}"
    # After these (or `++`, `--`, a comment) a statement may have ended: parsing approves
    # the prefix (True), failing tells nothing (None: `if (x)` waits for its statement).
    soft: bytes = b",abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_)]\"'`"
    directives: bool = False  # C, C++: `#` lines, and lines inside #if ... #endif, not judged
    try_closer: bytes = b"} finally {}"  # ends a `try {` block (C++: a catch)
    # C's guard as its bundled model was measured: `}` closes every block, a MISSING
    # node anywhere is an error, lines inside #if are judged, no soft line ends
    measured_c: bool = False


BRACE_SYNTAX = {
    "c": BraceSyntax("c", soft=b"", directives=True, measured_c=True),
    "cpp": BraceSyntax("cpp", directives=True, try_closer=b"} catch (...) {}"),
    "java": BraceSyntax("java"),
    "javascript": BraceSyntax("javascript"),
    "typescript": BraceSyntax("typescript"),
    "go": BraceSyntax("go"),
    "rust": BraceSyntax("rust"),
}
_IF_DIRECTIVE = re.compile(rb"^[ \t]*#[ \t]*(if|endif)", re.MULTILINE)


def _inside_if_directive(text: bytes) -> bool:
    """An #if, #ifdef or #ifndef is open at the end of the text."""
    depth = 0
    for m in _IF_DIRECTIVE.finditer(text):
        depth = depth + 1 if m.group(1) == b"if" else max(0, depth - 1)
    return depth > 0


def _brace_closers(syntax: BraceSyntax, lexer: LexerState) -> bytes:
    """What closes the blocks open, innermost first: `}`, or what a do/try block needs."""
    if syntax.measured_c:
        return b"\n" + b"}" * lexer.depth
    ends = {"do": b"\n} while (0);", "try": b"\n" + syntax.try_closer, "(": b")", "[": b"]"}
    return b"".join(ends.get(block, b"\n}") for block in reversed(lexer.blocks))


def _make_brace_guard(syntax: BraceSyntax) -> Guard | None:
    parser = grammar_parser(syntax.language)
    if parser is None:
        return None

    def brace_guard(text: bytes, final: bool, rule: StopRule | None = None) -> bool | None:
        if final:
            return _clean(parser, text)
        lexer = _lexer(rule)
        if rule is None or not lexer.in_code or lexer.substitutions:
            return None  # inside a string, a comment or a template's ${ }
        if lexer.parens and (syntax.measured_c or lexer.blocks[-1:] in ((), ("(",), ("[",))):
            return None  # inside brackets, not in a block inside them (f(function () {)
        stripped = text.rstrip()
        last_line = stripped.rsplit(b"\n", 1)[-1].lstrip()
        if syntax.directives and last_line.startswith(b"#"):
            return None
        if not syntax.measured_c and (
            not lexer.depth or syntax.directives and _inside_if_directive(text)
        ):
            return None  # in the header (`: a{1},`), or the grammar wants the #endif
        last = stripped[-1:]
        hard = last and last in syntax.hard
        soft = (
            syntax.soft
            and last
            and (
                last in syntax.soft
                or stripped.endswith((b"++", b"--", b"*/"))
                or b"//" in last_line  # a comment line, or one that ends in a comment
            )
        )
        if not (hard or soft):
            return None  # mid-statement
        closers = _brace_closers(syntax, lexer)
        if syntax.measured_c:
            ok = _clean(parser, text + closers)
        else:
            ok = _clean_prefix(parser, text, closers)
        if ok:
            return True
        # A `}` line that ends a try block (a catch follows) or a do block (`while`
        # on the next line) has the grammar wait: the lines before were judged already.
        # In a block inside brackets (a callback) the expression around it may need
        # more than its closing brackets (`c ? f(function () {` wants its `: d`).
        if syntax.measured_c or hard and last_line != b"}" and not lexer.parens:
            return False if hard else None
        return None

    return brace_guard


# ---------------------------------------------------------------- shell


# What ends each block open (LexerState.blocks) so that the text can be checked: a body
# gets a `:` (bash wants a command there).
_SHELL_CLOSERS = {
    "if": b"\nthen :\nfi",
    "then": b"\n:\nfi",
    "loop": b"\ndo :\ndone",
    "do": b"\n:\ndone",
    "case": b"\nesac",
    "{": b"\n:\n}",
}
# `name()` or `function name [()]`, its `{` on a later line
_SHELL_HEADER = re.compile(
    rb"\s*(?:function\s+[^\s(){}<>|&;$]+(?:\s*\(\s*\))?|[^\s(){}<>|&;$]+\s*\(\s*\))"
    rb"[ \t]*(?:#[^\n]*)?\s*"
)
_SHELL_GOES_ON = (b"|", b"&&", b"\\")  # a line ending so goes on in the next


def _make_shell_guard() -> Guard | None:
    from .validity import bash, bash_check

    parser = grammar_parser("shellscript")
    if parser is None:
        return None

    def shell_guard(text: bytes, final: bool, rule: StopRule | None = None) -> bool | None:
        if final:
            return _clean(parser, text) and bash_check(text)[0]
        lexer = _lexer(rule)
        if rule is None or not lexer.in_code or lexer.parens or lexer.substitutions:
            return None  # in a string, a heredoc, $( ) or ( )
        if "{" not in lexer.blocks:  # the body has not opened: only a header may be here
            return None if _SHELL_HEADER.fullmatch(text) else False
        if "${" in lexer.blocks:
            return None  # a ${ } spans lines
        if text.rstrip().endswith(_SHELL_GOES_ON):
            return None  # the command goes on
        closers = b"".join(_SHELL_CLOSERS[block] for block in reversed(lexer.blocks))
        if not _clean_prefix(parser, text, closers + b"\n"):
            return None  # tree-sitter-bash trips on valid text at times: no judgement
        if bash() is None:
            return True
        ok, line = bash_check(text + closers + b"\n")
        if ok:
            return True
        # bash's error in the text itself is the text's; in the closers, perhaps the
        # blocks were misread (a keyword used as a word): no judgement
        return False if 0 < line <= text.count(b"\n") else None

    return shell_guard


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
    parser = grammar_parser("lua")
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
    "lua": _make_lua_guard,
    "shellscript": _make_shell_guard,
    **{language: functools.partial(_make_brace_guard, s) for language, s in BRACE_SYNTAX.items()},
}
