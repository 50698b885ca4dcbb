"""Stop rules: where a sampled function ends, per language."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charcode.server.core.stoprules import (
    DECLARATION,
    END,
    RULES,
    StopResult,
    cut_function,
    make_stop_rule,
)
from charcode.training.languages import LANGUAGES

# ---------------------------------------------------------------- hand cases
# (language, prime, function, text after it): the rule keeps exactly `function`.

BRACES = [
    ("c", "static int ", "f(void) {\n  if (x) { return '{'; }\n  return 0;\n}", "\nint g(void) {}"),
    ("c", "static int ", "f(void) { c = '}'; d = '\\''; e = '\"'; }", "}}"),
    ("c", "static int ", 'f(void) { s = "}\\"}"; /* } */ // }\n}', "\n"),
    ("c", "static int ", "f(void)\n/* { */\n{\n  return 1; // {\n}", "x"),
    ("c", "int f(void) {\n", "  return 1;\n}", "\nstatic"),
    ("c", "int a(void) { return 0; }\nint b;\nint ", "c(void) { return 1; }", " int d;"),
    ("cpp", "", "A::A() : x{1}, y{2} {\n  z = 3;\n}", "\n"),
    ("cpp", "static void ", "f(std::function<void()> g = []{}) {\n}", "}"),
    ("java", "    public static int ", "f(int[] a) {\n        return a['}' - '}'];\n    }", "\n}"),
    ("javascript", "function ", "f(a = {}, {b}) {\n  return `}${ {c: `{`}.c }}` + '}';\n}", "}"),
    ("javascript", "function ", "f() {\n  const s = 'it\\'s }';\n}", "\n"),
    ("typescript", "function ", "f(x: {a: number}): {b: string} {\n  return {b: '}'};\n}", "\n"),
    (
        "go",
        "func ",
        "f(x interface{}) map[string]interface{} {\n\ts := `C:\\`\n\treturn nil\n}",
        "}",
    ),
    ("go", "func ", "(r *T) f() rune {\n\treturn '}'\n}", "\n"),
    ("rust", "fn ", "f<'a>(x: &'a str) -> [u8; 4] {\n    let c = '}';\n    [0; 4]\n}", "}"),
    ("rust", "fn ", 'f() {\n    let s = r#"}"#;\n    let t = "multi\n}";\n}', "\n"),
    (
        "rust",
        "fn ",
        "f() {\n    /* /* } */ } */\n    let c = '\\u{7d}';\n    let d = '字';\n}",
        "}",
    ),
    ("shellscript", "function ", "f {\n  echo \"}\" '{' $# ${#a[@]} # }\n}", "\n}"),
    (
        "shellscript",
        "",
        'f() {\n  x="$(echo "}")"\n  y="${z:-"}"}"\n  echo $\'it\\\'s }\'\n}',
        "\n",
    ),
    ("shellscript", "", "f() {\n  cat <<EOF\ndon't }\nEOF\n  cat <<-'E'\n\tit's {\n\tE\n}", "\n"),
]


@pytest.mark.parametrize(("language", "prime", "function", "after"), BRACES)
def test_braces_cut_at_the_closing_brace(language, prime, function, after):
    result = cut_function("braces", prime.encode(), (function + after).encode(), language)
    assert result == StopResult(len(function.encode()), END)


@pytest.mark.parametrize(
    ("language", "prime", "declaration"),
    [
        ("c", "static int ", "f(int a[3], char *b);"),
        ("c", "static int ", "f(void) /* { */;"),
        ("rust", "fn ", "f(&self) -> [u8; 4];"),
        ("typescript", "function ", "f(x: string): number;"),
    ],
)
def test_braces_report_a_declaration(language, prime, declaration):
    result = cut_function(
        "braces", prime.encode(), (declaration + "\nint g() {}").encode(), language
    )
    assert result == StopResult(len(declaration.encode()), DECLARATION)


PYTHON = [
    ("def ", "f():\n    return 1\n", "x = 2\n"),
    ("def ", "f():\n    return 1\n", "\n  \n\ndef g():\n    pass\n"),
    ("def ", "f(): return 1\n", "x = 2\n"),
    ("def ", "f(a,\nb):\n    '''Doc\nat column 0\n'''\n    return a\n", "\n# next\nx\n"),
    ("def ", "f():\n    x = (1,\n2)\n    y = 1 + \\\n2\n    z = 'a\\\nb'\n    return x\n", "f()"),
    ("def ", "f():\n    s = '#' + \"'\" + '\"'  # ''' (\n    return s\n", "\nx"),
    (
        "def ",
        "f():\n    x = 1\n# commented out at column 0\n    return x\n",
        "\n\n# about g\ng = 1\n",
    ),
    ("def ", "f():\n    x = 1\n    # a deeper comment stays\n", "\nx"),
    ("def ", "f():\n    def g():\n        return 1\n\n    return g\n", "\n\nprint(f())\n"),
    ("def ", "f():\n\tif x:\n\t\treturn 1\n", "x"),
    ("def ", "f():\r\n    x = 1 + \\\r\n2\r\n    return x\r\n", "\r\nx = 1\r\n"),
    ("async def ", "f():\n    await g()\n", "x"),
    ("@app.route('/')\ndef ", "f():\n    return 1\n", "\n\n@other\ndef g(): pass\n"),
    ("", "@dec(\n  ')')\n@dec2\ndef f():\n    pass\n", "x\n"),
    ("import os\n\n", "def f():\n    pass\n", "x = 1\n"),
    ("    def ", "m(self):\n        return 1\n", "\n    def n(self):\n        pass\n"),
    ("class A:\n    def ", "m(self):\n        pass\n", "    x = 1\n"),
    ("class ", "A:\n    x = 1\n\n    def m(self):\n        pass\n", "\nprint(A)\n"),
    ("def f():\n    return 1\n\n\ndef ", "g():\n    return 2\n", "g()\n"),
    ("def f():\n    def g():\n        pass\n    x = 1\n", "    return x\n", "y\n"),
]


@pytest.mark.parametrize(("prime", "function", "after"), PYTHON)
def test_indent_cuts_before_the_dedented_line(prime, function, after):
    result = cut_function("indent", prime.encode(), (function + after).encode())
    assert result == StopResult(len(function.encode()), END)


def test_indent_waits_for_the_dedent():
    assert cut_function("indent", b"def ", b"f():\n    return 1\n\n") is None
    assert cut_function("indent", b"def ", b'f():\n    """doc\nx = 1\n') is None
    assert cut_function("indent", b"def ", b"f(a,\nb=1):\n    return (\n1)\n") is None


LUA = [
    ("f()\n  return 1\nend", "\nlocal x = 1 end"),
    ("f(a)\n  if a then return 1 elseif b then return 2 else return 3 end\nend", " end"),
    (
        "f()\n  repeat x = x + 1 until x > 3\n  while x do x = nil end\n  for i = 1, 2 do end\nend",
        "",
    ),
    ("f()\n  local s = \"end\" .. 'do \\' end' .. [[ end ]] .. [==[ ]] end ]=] ]==]\nend", "\n"),
    ("f() -- end\n  --[[ end\n  ]] --[==[ ]] end ]==]\n  x = y--[[end]]+1\nend", "(end)"),
    ("f()\n  local endx, x_end, ending, done = 1, 2, 3, 4\nend", ";end"),
    (
        "f()\n  local function g() return function() end end\n  do local t = {a = g} end\nend",
        "\nend",
    ),
    ("f()\n  t[ [[end]] ] = 'a\\\nend'\nend", "\n"),
]


@pytest.mark.parametrize(("function", "after"), LUA)
def test_lua_cuts_after_the_matching_end(function, after):
    result = cut_function("lua_end", b"local function ", (function + after).encode())
    assert result == StopResult(len(function.encode()), END)


def test_lua_needs_a_word_boundary_after_end():
    rule = make_stop_rule("lua_end", b"function ")
    assert rule.feed(b"f() return 1 end") is None  # could still be `ending`
    assert rule.feed(b"\n") == StopResult(16, END)
    assert cut_function("lua_end", b"function ", b"f() endx = 1 end") == StopResult(16, END)


def test_the_default_primes_work_with_their_rules():
    bodies = {"braces": "f() {\n}", "indent": "f():\n    pass\n", "lua_end": "f()\nend", "none": ""}
    for lang in LANGUAGES.values():
        function = bodies[lang.stop_rule]
        rule = make_stop_rule(lang.stop_rule, lang.function_prime.encode(), lang.id)
        result = rule.feed((function + "\nx\n").encode())
        if lang.stop_rule == "none":
            assert result is None
        else:
            assert result == StopResult(len(function), END), lang.id


def test_a_result_is_final_and_unknown_rules_are_refused():
    rule = make_stop_rule("braces", b"int ")
    assert rule.feed(b"f() {}") == rule.feed(b"more") == StopResult(6, END)
    assert {lang.stop_rule for lang in LANGUAGES.values()} <= set(RULES)
    assert cut_function("none", b"int ", b"f() {}\nend\nx") is None
    with pytest.raises(ValueError, match="unknown stop rule"):
        make_stop_rule("parens", b"")


# ---------------------------------------------------------------- random well-formed functions
# Each strategy draws (rule, language, prime, function, text after it).

_BLOCKS = {
    "c": [("if (x) {", "}"), ("while (y) {", "}"), ("{", "}"), ("switch (z) {", "}")],
    "go": [("if x {", "}"), ("for {", "}"), ("switch y {", "}")],
    "rust": [("if x {", "}"), ("loop {", "}"), ("unsafe {", "}")],
    "shell": [("{", "}"), ("while true; do {", "}; done"), ("if x; then", "fi")],
}
_ATOMS = {
    "c": [
        "x = 1;",
        's = "a { b } \\" } c";',
        "c = '{'; d = '}'; e = '\\''; q = '\"';",
        "f(\"}\", '\\\\');",
        "/* } { ' \" /* */",
        "// } { ' \"",
        "a[i] = (b);",
        's = "it\'s";',
        "#define X(a) (a)",
    ],
    "go": [
        'x := "a } \\" {"',
        "r := '}'",
        "b := `raw \\`",
        "m := `{\nmulti`",
        "var i interface{} = nil",
        "// }",
    ],
    "rust": [
        "let x = 1;",
        'let s = r#"a "} b"#;',
        'let r = r"}\\";',
        "let c = '{'; let b = b'}'; let e = '\\''; let u = '\\u{7d}'; let k = '字';",
        "let l: &'a str = x;",
        "/* outer /* } */ still } */",
        'let s = "multi\n} line";',
        "// }",
    ],
    "shell": [
        'echo "a } \\" {"',
        "echo 'it{s' \"don't\"",
        "# } comment",
        "echo $# ${#arr[@]} a#b",
        'x="$(echo "}")"',
        'z="${x:-"}"}"',
        "cat <<EOF\ndon't } {\nEOF",
        "cat <<-'END'\n\tit's }\n\tEND",
        "echo \\{ \\\" \\'",
        "echo $'it\\'s }'",
        "y=`echo }`",
    ],
}
_ATOMS["js"] = _ATOMS["c"][:-1] + [
    't = `a ${ {b: "}"}.b } c ${`}`} {`;',
    "u = '}\\'';",
    "v = `multi\n}line`;",
]
_ATOMS["cpp"] = _ATOMS["c"] + [
    'r = R"(}" { )";',
    'q = u8R"end(")} )end" )end";',
    "n = 1'000'000 + 0x1'F;",
]
_ATOMS["java"] = _ATOMS["c"][:-1] + [
    's = """\n  } "{" \\""" \n  """;',
    'e = "" + \'"\';',
]
_ATOMS["js"] += [
    "r = /[}{]/g.test(s) || /\\}/.exec(t);",
    "if (x) return /'}/;",
    "y = a / b / (c);",
]
_ATOMS["shell"] += [
    "echo {a,b} }x x{ ${y:-}}",
    "{ echo a; }",
    "case $x in a) echo if;; (b|c) echo } ;; esac",
    "echo $((1 << 2))",
]
_DIALECT = {"c": "c", "cpp": "cpp", "java": "java", "javascript": "js", "typescript": "js"}
_DIALECT |= {"go": "go", "rust": "rust", "shellscript": "shell"}
_HEADERS = {
    "c": [("static int ", "f(int a, char *b) "), ("static int ", "f(void)\n")],
    "cpp": [("", "A::A() : x{1}, y{2} "), ("static void ", "f(std::function<void()> g = []{}) ")],
    "java": [("    public static int ", "f(int[] a) ")],
    "javascript": [("function ", "f(a = {}, {b, c}) "), ("function ", "g(x = `}`) ")],
    "typescript": [("function ", "f(x: {a: number}): {b: string} ")],
    "go": [("func ", "f(x interface{}) map[string]interface{} "), ("func ", "(r *T) m() ")],
    "rust": [("fn ", "f<'a>(x: &'a str) -> [u8; 4] "), ("fn ", "g() ")],
    "shellscript": [("function ", "f "), ("", "f() ")],
}


def _tree(leaves, shapes, min_size=0):
    """Statement trees: a leaf, or a block (opener, children, ..., closer or None)."""

    def blocks(children):
        kids = st.lists(children, min_size=min_size, max_size=3)

        def block(shape):  # opener, children, then (part, children) ..., closer
            parts = [st.just(shape[0])]
            for part in shape[1:]:
                parts += [kids, st.just(part)]
            return st.tuples(*parts)

        return st.one_of([block(shape) for shape in shapes])

    return st.recursive(st.sampled_from(leaves), blocks, max_leaves=8)


def _render(node, indent: str, step: str) -> str:
    if isinstance(node, str):  # "|" marks text that starts at column 0
        text = node[1:] if node.startswith("|") else indent + node
        return text.replace("<IND>", indent) + "\n"
    return "".join(
        _render(part, indent, step)
        if isinstance(part, str)
        else "".join(_render(child, indent + step, step) for child in part)
        for part in node
        if part is not None
    )


_BRACE_TREES = {d: _tree(_ATOMS[d], _BLOCKS.get(d, _BLOCKS["c"])) for d in _ATOMS}


@st.composite
def brace_functions(draw, language):
    dialect = _DIALECT[language]
    prime, header = draw(st.sampled_from(_HEADERS[language]))
    body = draw(st.lists(_BRACE_TREES[dialect], max_size=4))
    function = header + "{\n" + "".join(_render(n, "  ", "  ") for n in body) + "}"
    return "braces", language, prime, function, draw(st.text(max_size=20))


_PY_STATEMENTS = [
    "x = 1",
    "s = 'a # b \"' + \"it's\" + r'\\' '",
    "t = '''\nnot code:\nreturn\n'''",
    '"""Docstring that\ndedents to column 0\n  """',
    "y = (1,\n2,\n    3)",
    "w = 1 + \\\n2",
    "u = 'a\\\nb'",
    "d = {'a': '}', \"b\": '''{'''}",
    'f\'{x}\' """""" \'\'',
    "# a comment with ''' and (",
    "|# a comment at column 0\n<IND>v = 2",
    "|\n   \n<IND>k = 3",
]
_PY_BLOCKS = [
    "if x:",
    "for i in range(3):",
    "while (a and\nb):",
    "class C(Base):",
    "def g(a,\nb='#'):",
    "@decorator(')')\n<IND>def h():",
    "async def k():",
]


_PY_TREE = _tree(_PY_STATEMENTS, [(header, None) for header in _PY_BLOCKS], min_size=1)


@st.composite
def python_functions(draw):
    base = draw(st.sampled_from(["", "    "]))
    prime = draw(
        st.sampled_from([base + "def ", base + "@dec\n" + base + "def ", base + "async def "])
    )
    header = draw(st.sampled_from(["f():", "f(a,\nb=(1, 2)):", "f(x: int = 1) -> str:"]))
    body = draw(st.lists(_PY_TREE, min_size=1, max_size=4))
    function = header + "\n" + "".join(_render(n, base + "    ", "    ") for n in body)
    blank = draw(
        st.lists(st.sampled_from(["\n", "  \n", "\t\n", base + "# shallow\n"]), max_size=3)
    )
    first = draw(st.sampled_from(["", base])) + draw(st.sampled_from(list("xd@(')")))
    return "indent", None, prime, function, "".join(blank) + first + draw(st.text(max_size=20))


_LUA_STATEMENTS = [
    "local x = 1",
    'local s = "end \\" do"',
    "local t = 'then \\' end'",
    "local l = [[ end ]] .. [==[ ]] end ]=] ]==]",
    "-- end do function",
    "--[[ end\nfunction ]]",
    "--[==[ ]] end ]==]",
    "local endx, x_end, ending, done = 1, 2, 3, 4",
    "print(#t, a.b, c:d(), {e = 1})",
    "x = y--[[ end ]]+1",
    "local u = 'a\\\nend'",
    "t[ [[end]] ] = 1",
]
_LUA_BLOCKS = [
    ("if c then", "end"),
    ("while c do", "end"),
    ("for i = 1, 2 do", "end"),
    ("for k, v in pairs(t) do", "end"),
    ("repeat", "until c"),
    ("do", "end"),
    ("local function g()", "end"),
    ("local f = function(a)", "end"),
    ("if c then", "elseif d then", "else", "end"),
]


_LUA_TREE = _tree(_LUA_STATEMENTS, _LUA_BLOCKS)


@st.composite
def lua_functions(draw):
    body = draw(st.lists(_LUA_TREE, max_size=4))
    function = "f(a, b)\n" + "".join(_render(n, "  ", "  ") for n in body) + "end"
    after = draw(st.sampled_from(["\n", " ", "(", ";"])) + draw(st.text(max_size=20))
    return "lua_end", None, "local function ", function, draw(st.sampled_from(["", after]))


_LANGS = sorted(_HEADERS)
any_function = st.one_of(
    [brace_functions(lang) for lang in _LANGS] + [python_functions(), lua_functions()]
)
_NOISE = st.text(alphabet="{}()[];:'\"`$#\\/*-=<@\n\r\t rbendfiotuplas字", max_size=60)
any_text = st.tuples(
    st.sampled_from([(r, None) for r in RULES] + [("braces", lang) for lang in _LANGS]),
    _NOISE,
    _NOISE,
).map(lambda t: (*t[0], t[1], "", t[2]))


@pytest.mark.parametrize("language", _LANGS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_braces_cut_random_functions_exactly(language, data):
    _, _, prime, function, after = data.draw(brace_functions(language))
    result = cut_function("braces", prime.encode(), (function + after).encode(), language)
    assert result == StopResult(len(function.encode()), END)


@settings(max_examples=100, deadline=None)
@given(python_functions())
def test_indent_cuts_random_functions_exactly(case):
    _, _, prime, function, after = case
    result = cut_function("indent", prime.encode(), (function + after).encode())
    assert result == StopResult(len(function.encode()), END)


@settings(max_examples=100, deadline=None)
@given(lua_functions())
def test_lua_cuts_random_functions_exactly(case):
    _, _, prime, function, after = case
    result = cut_function("lua_end", prime.encode(), (function + after).encode())
    assert result == StopResult(len(function.encode()), END)


@settings(max_examples=100, deadline=None)
@given(case=any_function | any_text, data=st.data())
def test_chunked_feeding_gives_the_same_result(case, data):
    rule_name, language, prime, function, after = case
    text = (function + after).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    rules = [make_stop_rule(rule_name, prime.encode(), language) for _ in range(3)]
    whole = rules[0].feed(text)
    results = [
        rules[1].feed(text[a:b]) for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)
    ]
    assert results[-1] == whole
    assert all(r is None or r == whole for r in results)
    for b in text:
        rules[2].feed(bytes([b]))
    assert rules[2].feed(b"") == whole
    assert rules[0].finish() == rules[1].finish() == rules[2].finish()


def test_rules_expose_their_lexer_state_for_the_guard():
    """The syntax guard reads this typed state, not the rules' private attributes."""
    from charcode.server.core.stoprules import LexerState

    py = make_stop_rule("indent", b"")
    py.feed(b'def f(x):\n    """doc\n')
    assert py.lexer().triple_string and py.lexer().quote == ord('"')
    py = make_stop_rule("indent", b"")
    py.feed(b"def f(x):\n    y = g(a,\n")
    state = py.lexer()
    assert state.brackets == 1 and not state.triple_string
    assert state.logical_line_bytes == len(b"    y = g(a,\n")
    c = make_stop_rule("braces", b"", "c")
    c.feed(b"int f(int x) {\n  if (g(x,")
    assert c.lexer() == LexerState(in_code=True, parens=2, depth=1, blocks=("{", "(", "("))
    c.feed(b' "s')
    assert not c.lexer().in_code
    js = make_stop_rule("braces", b"", "javascript")
    js.feed(b"function f() {\n  do {\n    try {\n      s = `${ {a: 1}.a }`;\n")
    assert js.lexer().blocks == ("{", "do", "try") and js.lexer().depth == 3
    js.feed(b"      t = `${")
    assert js.lexer().in_code and js.lexer().substitutions == 1
    lua = make_stop_rule("lua_end", b"")
    lua.feed(b"function f(x)\n  if x then\n")
    assert lua.lexer().depth == 2 and lua.lexer().in_code
