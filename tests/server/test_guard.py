"""Syntax guards (guard.py) and how the sampler uses them: resample what cannot be valid."""

from __future__ import annotations

import pytest
from lsp_helpers import numpy_runtime, tiny_model

from charcode.server.core.guard import guard_for, python_guard
from charcode.server.core.sampler import sample_function
from charcode.server.core.stoprules import make_stop_rule

NEVER = lambda: False  # noqa: E731


@pytest.fixture(scope="module")
def trained():
    return numpy_runtime(tiny_model(seed=0, steps=120))


def rule_after(rule: str, language: str, text: bytes):
    r = make_stop_rule(rule, b"", language)
    r.feed(text)
    return r


@pytest.mark.parametrize(
    "text, final, ok",
    [
        (b"def f(x):\n", False, True),  # a body may follow
        (b"def f(x):\n    return (1,\n", False, True),  # an open bracket may close later
        (b'def f(x):\n    """doc\n', False, True),
        (b"def f(x):\n    return 1)\n", False, False),
        (b"def f(x):\n  a\n    b\n", False, False),  # an indent no block opened
        (b"def f(x):\n    if x:\n", True, False),  # a block with no body is not a function
        (b"def f(x):\n    if x:\n        pass\n", True, True),
        (b"    def f(self):\n        return 1\n", True, True),  # a method, as written in a class
        (b"def f(x):\n    return '\\d'\n", True, True),  # a warning is not an error
        (b"def f(x):\n    return '\xff'\n", True, False),  # not UTF-8
    ],
)
def test_python_guard(text, final, ok):
    assert python_guard(text, final) is ok


C_PREFIX = b"static int f(int x)\n{\n"


@pytest.mark.parametrize(
    "body, ok",
    [
        (b"\tint y = 1;\n", True),
        (b"\tif (x) {\n\t\ty = 2;\n", True),  # two blocks open: closed for the check
        (b"\tint y = 1 +;\n", False),
        (b"\t} else {\n", False),  # closes the function's own block: no if before it
        (b"\ty = foo(a,\n", None),  # inside parentheses: no judgement
        (b"\treturn x\n", None),  # mid-statement
        (b"#define A(x) (x\n", None),  # a directive: anything goes
    ],
)
def test_c_guard_judges_at_statement_ends(body, ok):
    guard = guard_for("c")
    assert guard is not None
    text = C_PREFIX + body
    assert guard(text, False, rule_after("braces", "c", text)) is ok


def test_c_guard_final_wants_a_whole_function():
    guard = guard_for("c")
    assert guard(C_PREFIX + b"\treturn x;\n}", True, None) is True
    assert guard(C_PREFIX + b"\treturn x\n}", True, None) is False  # MISSING ;
    assert guard(C_PREFIX + b"\treturn x;\n", True, None) is False  # MISSING }


@pytest.mark.parametrize(
    "body, ok",
    [
        (b"  local y = 1\n", True),
        (b"  if x then\n    y = 2\n", True),  # two blocks open: closed for the check
        (b"  local y = = 1\n", False),
        (b"  y = foo(a,\n", None),  # goes on in the next line
        (b"  local y = a and\n", None),
        # no deeper than the header while the function is open: the model left it
        (b"local y = 1\n", False),
        (b"  if x then\n    y = 2\nend\n", False),  # closes the `if`, looks like the function's
        (b"  local y = a and\nb\n", False),
        (b"  local s = [[\nabc]]\n", True),  # a long string's last line is not code
        (b"  local y = 1\n\n", True),  # a blank line
    ],
)
def test_lua_guard_judges_complete_lines(body, ok):
    guard = guard_for("lua")
    assert guard is not None
    text = b"local function f(x)\n" + body
    assert guard(text, False, rule_after("lua_end", "lua", text)) is ok


def test_lua_guard_measures_depth_from_the_header():
    guard = guard_for("lua")
    method = b"  helper = function(x)\n    return x\n"
    assert guard(method, False, rule_after("lua_end", "lua", method)) is True
    left = b"  helper = function(x)\n  return x\n"
    assert guard(left, False, rule_after("lua_end", "lua", left)) is False


def test_lua_guard_final():
    guard = guard_for("lua")
    assert guard(b"local function f(x)\n  return 1\nend\n", True, None) is True
    assert guard(b"local function a.b(x)\nend\n", True, None) is False


def test_lua_guard_rejects_what_luac_does_not_compile():
    from charcode.server.core.validity import Unavailable, luac

    try:
        luac()
    except Unavailable as e:
        pytest.skip(str(e))
    guard = guard_for("lua")
    outside = b"local function f(x)\n  if x then\n    break\n"  # parses, does not compile
    assert guard(outside, False, rule_after("lua_end", "lua", outside)) is False
    inside = b"local function f(x)\n  while x do\n    break\n"
    assert guard(inside, False, rule_after("lua_end", "lua", inside)) is True
    assert guard(b"local function f(x)\n  return ...\nend\n", True, None) is False
    assert guard(b"local function f(...)\n  return ...\nend\n", True, None) is True


def test_every_language_of_the_table_has_a_guard_and_others_none():
    from charcode.training.languages import LANGUAGES

    assert all(guard_for(language) is not None for language in LANGUAGES)
    assert guard_for("cobol") is None


def sample(rt, guard, seed=0, max_chars=600, temperature=1.0):
    return sample_function(
        rt,
        rt.start,
        forced=b"def ",
        stop_rule=lambda extra: make_stop_rule("indent", extra, "python"),
        temperature=temperature,
        seed=seed,
        max_chars=max_chars,
        should_stop=NEVER,
        guard=guard,
    )


def test_a_guard_that_approves_everything_changes_only_the_cut_at_the_cap(trained):
    trimmed = 0
    for seed in range(4):
        plain = sample(trained, None, seed)
        approving = sample(trained, lambda text, final, rule: True, seed)
        if plain.reason == "length":  # every line end "ends a function": cut at the last one
            trimmed += 1
            assert approving.reason == "trimmed"
            assert approving.text == plain.text[: plain.text.rindex(b"\n")]
        else:
            assert approving == plain
    assert 0 < trimmed < 4  # both cases were seen


def test_rejected_lines_are_sampled_again(trained):
    def short_lines(text, final, rule):
        return final or len(text.rstrip(b"\n").rsplit(b"\n", 1)[-1]) <= 24

    plain_long = 0
    for seed in range(6):
        plain = sample(trained, None, seed).text.split(b"\n")
        plain_long += any(len(line) > 24 for line in plain[:-1])
        got = sample(trained, short_lines, seed)
        lines = got.text.split(b"\n")
        assert all(len(line) <= 24 for line in lines[:-1]), got.text  # the last may be cut
    assert plain_long  # the model alone does write long lines: the guard did something


def test_an_ending_the_guard_rejects_is_sampled_again(trained):
    def three_lines(text, final, rule):
        return not final or text.count(b"\n") >= 3

    ended = 0
    for seed in range(6):
        got = sample(trained, three_lines, seed, max_chars=1500)
        if got.reason == "end_of_function":
            ended += 1
            assert got.text.rstrip(b"\n").count(b"\n") >= 2, got.text
    assert ended


def test_an_impossible_guard_gives_up_and_sampling_goes_on(trained):
    got = sample(trained, lambda text, final, rule: False, 0, max_chars=200)
    assert got.reason in ("end_of_function", "length") and len(got.text) > len(b"def ")


def test_the_python_guard_makes_functions_parse(trained):
    import ast

    rates = []
    for guard in (None, python_guard):
        valid = 0
        for seed in range(12):
            got = sample(trained, guard, seed, max_chars=800)
            try:
                ast.parse(got.text.decode("utf-8"))
                valid += 1
            except SyntaxError:
                pass
        rates.append(valid)
    assert rates[1] > rates[0]


def test_a_docstring_longer_than_the_limit_is_sent_back():
    from charcode.server.core.guard import MAX_STRING_LINES

    def judge(lines: int) -> bool:
        text = b'def f(x):\n    """Doc.\n' + b"    more words\n" * lines
        rule = make_stop_rule("indent", b"", "python")
        rule.feed(text)
        return python_guard(text, False, rule)

    assert judge(MAX_STRING_LINES - 1) is True
    assert judge(MAX_STRING_LINES + 1) is False
    closed = b'def f(x):\n    """Doc.\n' + b"    w\n" * 30 + b'    """\n    return x\n'
    rule = make_stop_rule("indent", b"", "python")
    rule.feed(closed)
    assert python_guard(closed, False, rule) is True  # a long docstring already closed is fine


def test_lines_the_guard_cannot_judge_are_sampled_again_after_a_while(trained):
    from charcode.server.core.sampler import UNJUDGED_LINES

    def silent(text, final, rule):
        return True if final else None

    ended = 0
    for seed in range(6):
        got = sample(trained, silent, seed, max_chars=1500)
        if got.reason == "end_of_function":
            ended += 1
            assert got.text.rstrip(b"\n").count(b"\n") <= UNJUDGED_LINES + 1, got.text
    assert ended


def test_a_bracket_open_for_more_lines_than_the_limit_is_sent_back():
    from charcode.server.core.guard import MAX_BRACKET_LINES

    def judge(text: bytes) -> bool:
        rule = make_stop_rule("indent", b"def ", "python")
        rule.feed(text[len(b"def ") :])
        return python_guard(text, False, rule)

    header = b"def f(\n" + b"".join(b"    a%d,\n" % i for i in range(MAX_BRACKET_LINES - 1))
    assert judge(header) is True
    assert judge(header + b"    b,\n") is False
    call = b"def f(a):\n    x = g(\n" + b"        a,\n" * (MAX_BRACKET_LINES + 1)
    assert judge(call) is False
    closed = call + b"    )\n    return x\n"
    assert judge(closed) is True  # the bracket closed: the long call is fine


def test_backing_up_leaves_an_open_bracket_and_the_start_is_always_retried():
    from charcode.server.core.sampler import _back_to, _Mark
    from charcode.server.core.stoprules import LexerState

    class Rule:
        def __init__(self, brackets):
            self.brackets = brackets

        def lexer(self):
            return LexerState(in_code=True, brackets=self.brackets)

    def mark(length, brackets, tries=0):
        return _Mark(length, length, None, None, Rule(brackets), 0, 0, tries)

    marks = [mark(0, 0), mark(10, 0), mark(20, 1), mark(30, 1), mark(40, 1, tries=2)]
    # the newest is spent: back past every line end inside the bracket opened after 10
    assert _back_to(marks, retries=2).length == 10
    assert [m.length for m in marks] == [0, 10]
    marks = [mark(0, 0, tries=50)]
    assert _back_to(marks, retries=2).length == 0  # the start: as long as the budget lasts
