"""Hallucinated functions in the brace languages and shell: stop rules, validity, guards.

No trained model is needed: the stop rules read hand-written functions, the guards are
driven by a synthetic predictor that writes scripted lines.
"""

from __future__ import annotations

import numpy as np
import pytest

from charcode.server.core.guard import guard_for
from charcode.server.core.sampler import sample_function
from charcode.server.core.stoprules import END, StopResult, cut_function, make_stop_rule
from charcode.server.core.validity import Unavailable, check, checker
from charcode.training.languages import LANGUAGES

NEW = ["cpp", "javascript", "typescript", "go", "rust", "java", "shellscript"]


def _grammar(language: str) -> None:
    try:
        checker(language)
    except Unavailable as e:
        pytest.skip(str(e))


# ---------------------------------------------------------------- real-looking functions
# Several styles per language (K&R and Allman braces; tabs, 2 and 4 spaces) with the
# lexical traps of each: braces and quotes in strings, chars, comments, raw strings,
# template literals, regular expressions, text blocks, heredocs.

FUNCTIONS = {
    "cpp": [
        """template <typename T>
static int count_braces(const std::vector<T>& items) {
    auto pattern = R"re(\\{[^}]*"\\})re";
    int total = 1'000'000;
    auto add = [&total](int n) { total += n; };
    for (const auto& item : items) {
        if (item.name == "}") {
            add(1);  // a } in a comment
        }
    }
    /* { unbalanced */
    return total + '}';
}""",
        """int Parser::parse(std::string_view text)
{
	std::map<std::string, int> counts{{"{", 1}, {"}", 2}};
	switch (text[0])
	{
	case '{':
		return counts["{"];
	default:
		break;
	}
	const char *s = u8R"(})";
	return 0;
}""",
        """Widget::Widget(int w) : width_{w}, height_(w * 2) {
  if (w < 0) {
    throw std::invalid_argument("negative width: }");
  }
  const char *q = "\\"{";
  name_ = R"delim()" }delim" )delim";
}""",
    ],
    "javascript": [
        """function render(items, { indent = 2 } = {}) {
  const open = /[{]/g;
  const quote = /"|'/;
  const html = items.map((item) => `<li class="${item.done ? "done" : "todo"}">${item.text.replace(open, "}")}</li>`);
  if (!html.length) {
    return `{}`; // }
  }
  /* } */
  return html.join("\\n");
}""",
        """async function load(url) {
    const res = await fetch(url)
    const body = await res.json()
    const result = {
        ok: res.ok,
        size: body.length / 2,
        label: 'it\\'s {',
    }
    return result
}""",
        """function compare(a, b)
{
	if (a.key < b.key)
	{
		return -1;
	}
	else if (a.key > b.key) return 1;
	return a.text.split(/\\}/).length - 1;
}""",
    ],
    "typescript": [
        """export function groupBy<T extends { id: string }, K extends keyof T>(items: T[], key: K): { [k: string]: T[] } {
  const out: { [k: string]: T[] } = {};
  for (const item of items) {
    const k = String(item[key]);
    (out[k] ??= []).push(item);
  }
  return out;
}""",
        """async function fetchUser(id: number): Promise<{ name: string; age?: number }> {
    const res = await fetch(`/users/${id}?q=${encodeURIComponent("}")}`);
    if (!res.ok) {
        throw new Error(`status ${res.status} {`);
    }
    return (await res.json()) as { name: string };
}""",
        """function label(user: User | null): string
{
	if (!user)
	{
		return `anonymous {${"}"}}`;
	}
	const parts: string[] = [user.first, user.last].filter((p): p is string => !!p);
	return parts.join(" ").replace(/[{}]/g, "");
}""",
    ],
    "go": [
        """func (s *Server) handle(w http.ResponseWriter, r *http.Request) error {
	tmpl := `{{ .Name }} }`
	if r.Method != "POST" {
		return fmt.Errorf("bad method: %q}", r.Method)
	}
	m := map[string]interface{}{"a": '}', "b": struct{}{}}
	for k, v := range m {
		_ = k + "}" // }
		_ = v
	}
	/* { */
	return nil
}""",
        """func build(n int) []Item {
	items := []Item{
		{Name: "a", Size: 1},
		{Name: "}", Size: n},
	}
	sort.Slice(items, func(i, j int) bool {
		return items[i].Size < items[j].Size
	})
	switch {
	case n > 10:
		n--
	default:
	}
	return items
}""",
        """func Quote(s string) string {
    if strings.ContainsAny(s, "{}") {
        return "`" + s + "`"
    }
    return `"` + s + `\\"`
}""",
    ],
    "rust": [
        """pub fn parse<'a>(input: &'a str) -> Result<Vec<&'a str>, String> {
    let open = '{';
    let close = '}';
    let pattern = r#"{"key": "}"}"#;
    /* outer /* inner } */ still } */
    let mut out = Vec::new();
    for part in input.split(|c: char| c == open || c == close) {
        if !part.is_empty() {
            out.push(part);
        }
    }
    let _ = (pattern, b'}', '\\'', "\\"}");
    Ok(out)
}""",
        """fn largest<T>(items: &[T]) -> Option<&T>
where
  T: PartialOrd,
{
  let mut best = items.first()?;
  for item in items {
    match item.partial_cmp(best) {
      Some(std::cmp::Ordering::Greater) => best = item,
      _ => {}
    }
  }
  Some(best)
}""",
        """fn describe(v: &Value) -> String {
	let raw = br##"a "# } "##;
	match v {
		Value::Map(m) => format!("{{{}}}", m.len()),
		Value::Str(s) => format!("'{}'", s),
		_ => String::from_utf8_lossy(raw).into_owned(),
	}
}""",
    ],
    "java": [
        """    public static int countBraces(List<String> lines) {
        String template = \"\"\"
            { "key": "}" }
            \"\"\";
        int count = 0;
        for (String line : lines) {
            for (char c : line.toCharArray()) {
                if (c == '{' || c == '}') {
                    count++; // }
                }
            }
        }
        Runnable r = new Runnable() {
            @Override
            public void run() { System.out.println("}"); }
        };
        return count + template.length();
    }""",
        """	private static String join(String[] parts)
	{
		StringBuilder sb = new StringBuilder();
		for (int i = 0; i < parts.length; i++)
		{
			sb.append(parts[i]).append(i < parts.length - 1 ? "," : "}");
		}
		return sb.toString();
	}""",
        """  @Override
  public boolean equals(Object o) {
    if (!(o instanceof Point)) return false;
    Point p = (Point) o;
    String s = \"\"\"
      \\\"\"\" } \"\"\";
    return x == p.x && y == p.y && s != null;
  }""",
    ],
    "shellscript": [
        """function deploy {
  local target="${1:-prod}"
  # a comment with } and {
  case "$target" in
    prod|production)
      echo "deploying to } $target"
      ;;
    *)
      echo 'unknown {' >&2
      return 1
      ;;
  esac
  cat <<EOF > /tmp/config
{ "target": "$target" }
}
EOF
  result=$(printf '%s}' "$(date)")
  echo "${result%\\}}"
}""",
        """cleanup() {
	if [ -d "$TMP" ]; then
		rm -rf "$TMP"
	fi
	while read -r line; do
		echo "$line" | sed 's/{/}/g'
	done < "$1"
	cat <<-'END'
		it's a } and a {
	END
	return $((1 << 2))
}""",
        """usage()
{
    local -a opts=(--help --version)
    echo "usage: `basename $0` [${opts[*]}]"
    for o in "${opts[@]}"; do echo "$o"; done
    echo $'it\\'s }'
}""",
        """function upload-changes {
    git diff --quiet "$FILE" || \\
        { echo "no changes"; return; }
    inst_libdir_file \\
        {"tls/$arch/",tls/,}"libffi.so.*" ${x:-}}
    [ -n "$x" ] && { echo a; echo b; } >&2
}""",
    ],
}
AFTER = {  # what a model writes next: the rule must have stopped before it
    "cpp": "\n\nint main() {}\n",
    "javascript": "\n\nmodule.exports = { render };\n",
    "typescript": "\n\nexport default {};\n",
    "go": "\n\nfunc main() {}\n",
    "rust": "\n\nfn main() {}\n",
    "java": "\n}\n",
    "shellscript": '\n\nmain "$@"\n}\n',
}
CASES = [(lang, i) for lang in NEW for i in range(len(FUNCTIONS[lang]))]


def test_every_new_language_is_in_the_table():
    assert set(NEW) | {"c", "python", "lua"} == set(LANGUAGES)
    assert all(LANGUAGES[lang].stop_rule == "braces" for lang in NEW)


@pytest.mark.parametrize(("language", "i"), CASES)
def test_a_function_fed_byte_by_byte_stops_exactly_at_its_end(language, i):
    function = FUNCTIONS[language][i].encode()
    rule = make_stop_rule("braces", b"", language)
    text = function + AFTER[language].encode()
    for n, b in enumerate(text):
        result = rule.feed(bytes([b]))
        if n < len(function) - 1:
            assert result is None, (n, text[: n + 1].decode())
    assert result == StopResult(len(function), END)
    assert cut_function("braces", b"", text, language) == StopResult(len(function), END)


@pytest.mark.parametrize(("language", "i"), CASES)
def test_the_functions_are_valid_and_their_broken_copies_not(language, i):
    _grammar(language)
    function = FUNCTIONS[language][i]
    verdict = check(language, function)
    assert verdict.valid, verdict.error
    assert not check(language, function[: function.rindex("}")]).valid  # the end cut off
    assert guard_for(language)(function.encode(), True, None) is True


def test_the_default_prime_starts_a_function_that_the_rule_ends():
    for language in NEW:
        prime = LANGUAGES[language].function_prime
        function = next((f for f in FUNCTIONS[language] if f.startswith(prime)), None)
        if function is None:
            continue
        rest = function[len(prime) :] + AFTER[language]
        result = cut_function("braces", prime.encode(), rest.encode(), language)
        assert result == StopResult(len(function.encode()) - len(prime.encode()), END), language


# ---------------------------------------------------------------- lexical traps
# (language, text that must not end the function, its ending): no stop before the end.

TRAPS = [
    ("cpp", 'int f() {\n  auto s = R"(})";\n  auto t = R"x(")}")x";\n', "}"),
    ("cpp", "int f() {\n  int n = 1'000'000 + 0x1'0;\n  char c = '}';\n", "}"),
    ("cpp", 'int f() {\n  // }\n  /* } */\n  s = "\\"}";\n', "}"),
    ("java", 'int f() {\n  String s = """\n    }\n    "\\"""\n    """;\n', "}"),
    ("java", "int f() {\n  String e = \"\";\n  char c = '}';\n", "}"),
    ("java", "void f()\n    throws IOException{\n  g();\n", "}"),  # the body's {
    ("javascript", "function f() {\n  const s = `${ `}` + `${'}'}` }`;\n", "}"),
    ("javascript", "function f() {\n  return /}/.test(s) || /[/}]/.test(t);\n", "}"),
    ("javascript", "function f() {\n  if (x) return /'}/;\n  x = a / b / c;\n", "}"),
    ("typescript", "function f<T extends { a: 1 }>(x: T): Promise<{ b: 2 }> {\n  x;\n", "}"),
    ("typescript", "function f(): A & { b(): void } | { c: 1 } {\n  x;\n", "}"),
    ("go", "func f() {\n\ts := `}\n}`\n\tr := '}'\n", "}"),
    ("rust", "fn f<'a>(x: &'a str) {\n    let s = r##\"}\"# }\"##;\n    let c = '}';\n", "}"),
    ("rust", "fn f() {\n    let c = '\\'';\n    /* /* } */ } */\n", "}"),
    ("shellscript", "f() {\n  cat <<EOF\n}\nEOF\n  cat <<'X'\n  }\nX\n", "}"),
    ("shellscript", "f() {\n  echo \"$(echo '}')\" \"${x:-}}\" '}' \\}\n  # }\n", "}"),
    ("shellscript", "f() {\n  case $x in\n    a) echo }a ;;\n  esac\n", "}"),
]


@pytest.mark.parametrize(("language", "body", "end"), TRAPS)
def test_braces_in_strings_comments_and_raw_strings_do_not_end_the_function(language, body, end):
    rule = make_stop_rule("braces", b"", language)
    assert rule.feed(body.encode()) is None, body
    assert rule.feed(end.encode()) == StopResult(len((body + end).encode()), END)


def test_shell_blocks_are_tracked_for_the_guard():
    rule = make_stop_rule("braces", b"", "shellscript")
    rule.feed(b'f() {\n  if [ -n "$x" ]; then\n    for i in 1 2\n')
    assert rule.lexer().blocks == ("{", "then", "loop")
    rule.feed(b"    do\n      case $i in\n        1) echo if fi ;;\n")
    assert rule.lexer().blocks == ("{", "then", "do", "case")
    rule.feed(b'      esac\n    done\n  fi\n  echo "$(if true; then echo; fi)"\n')
    assert rule.lexer().blocks == ("{",)


# ---------------------------------------------------------------- validity


INVALID = {
    "cpp": "static int f(int x) {\n    return x + ;\n}\n",
    "javascript": "function f(x) {\n  return x +;\n}\n",
    "typescript": "function f(x: number): number {\n  return x: number;\n}\n",
    "go": "func f(x int) int {\n\treturn x +\n}\n",
    "rust": "fn f(x: u8) -> u8 {\n    let y = ;\n    x\n}\n",
    "java": "    public static int f(int x) {\n        return x +;\n    }\n",
    "shellscript": "f() {\n  if true; then\n    echo hi\n  fi\n  fi\n}\n",
}


@pytest.mark.parametrize("language", NEW)
def test_checkers_reject_invalid_functions(language):
    _grammar(language)
    judge = checker(language)
    assert judge.tool.startswith("tree-sitter-")
    verdict = judge.check(INVALID[language])
    assert not verdict.valid and verdict.error.startswith("line "), verdict


def test_grammars_are_imported_only_when_their_language_is_used():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from charcode.server.core import guard, validity\n"
        "validity.checker('go')\n"
        "guard.guard_for('go')\n"
        "print(sorted(m for m in sys.modules if m.startswith('tree_sitter_') and '.' not in m))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['tree_sitter_go']"


# ---------------------------------------------------------------- guards, line by line


def judge(language: str, text: bytes, final: bool = False):
    rule = make_stop_rule("braces", b"", language)
    rule.feed(text)
    return guard_for(language)(text, final, rule)


GUARD_LINES = [
    # a statement ended: it must parse once the blocks are closed
    ("cpp", "int f() {\n  int y = 1;\n", True),
    ("cpp", "int f() {\n  auto g = [&](int x) {\n", True),  # `};` comes later
    ("cpp", "int f() {\n  int y = 1 +;\n", False),
    ("cpp", "int f() {\n  while {\n", False),
    ("java", "int f() {\n  int[] a = {\n", True),
    ("java", "int f() {\n  int a = 1 +;\n", False),
    ("javascript", "function f() {\n  const o = {\n    a: 1,\n", True),
    ("javascript", "function f() {\n  return x +;\n", False),
    ("typescript", "function f(): number {\n  let a: number = 1;\n", True),
    ("typescript", "function f(): number {\n  let a: = 1;\n", False),
    ("go", "func f() {\n\tx := []int{\n\t\t1,\n", True),
    ("go", "func f() {\n\ty := x\n", True),  # no `;` in Go: the line may end a statement
    ("go", "func f() {\n\tgo func() {\n", True),
    ("go", "func f() {\n\telse {\n", False),
    ("rust", "fn f() {\n    let x = match y {\n", True),
    ("rust", "fn f() {\n    match x {\n        1 => 2,\n", True),
    ("rust", "fn f() {\n    let = 1;\n", False),
    # may not have ended: no judgement when it does not parse yet
    ("javascript", "function f() {\n  if (x)\n", None),
    ("javascript", "function f() {\n  var a = 1,\n", None),
    ("go", "func f() {\n\ty := x +\n", None),
    ("rust", "fn f() {\n    let v = foo()\n", None),  # `.bar();` may follow
    ("java", "int f() {\n  if (x)\n", None),
    ("cpp", "int f() {\n  y = g(a,\n", None),  # inside brackets
    ("javascript", "function f() {\n  a.forEach(function (x) {\n    g(x);\n", True),  # a callback
    ("go", "func f() {\n\tsort.Slice(a, func(i, j int) bool {\n\t\treturn a[i] < a[j]\n", True),
    ("rust", "fn f() {\n    v.iter().for_each(|x| {\n        g(x);\n", True),
    ("javascript", "function f() {\n  a.forEach(function (x) {\n    g(x) +;\n", None),
    ("javascript", "function f() {\n  const a = [\n    {\n      x: 1,\n", True),
    ("cpp", "#define A(x) {\n", None),  # a directive
    ("cpp", "int f() {\n#ifdef X\n  if (x) {\n", None),  # the grammar wants the #endif
    ("cpp", "int f() {\n  try {\n    g();\n", True),  # closed with a catch
    ("cpp", "int f() {\n  try {\n    g();\n  }\n", None),  # the catch follows
    ("java", "int f() {\n  do {\n    g();\n", True),  # closed with `} while (0);`
    ("javascript", "function f() {\n  try {\n    g();\n", True),  # with `} finally {}`
    ("cpp", "A::A()\n    : a{1},\n", None),  # the header
    ("javascript", "function f() {\n  const s = `a ${\n", None),  # inside ${ }
    ("javascript", "function f() {\n  const s = `a {\n", None),  # inside a template
]


@pytest.mark.parametrize(("language", "text", "ok"), GUARD_LINES)
def test_brace_guards_judge_line_ends(language, text, ok):
    _grammar(language)
    assert judge(language, text.encode()) is ok


SHELL_LINES = [
    ('f() {\n  if [ -n "$x" ]; then\n', True),
    ('f() {\n  if [ -n "$x" ]\n', True),  # `then` may come on the next line
    ('f() {\n  if [ -n "$x" ]; then\n    echo hi\n  fi\n', True),
    ("f() {\n  case $x in\n    a) echo a ;;\n", True),
    ("f() {\n  for i in 1 2; do\n", True),
    ("f() {\n  while read -r l\n", True),
    ("f() {\n  { echo a; echo b; } >&2\n", True),
    ("f() {\n  fi\n", False),
    ("f() {\n  done\n", False),
    ("f() {\n  echo a;;\n", False),
    ("f() {\n  echo hi |\n", None),  # goes on
    ("f() {\n  cat <<EOF\n", None),  # a heredoc follows
    ('f() {\n  x="a\n', None),  # in a string
    ("f() {\n  x=$(\n", None),
    ("f()\n", None),  # the body has not opened: its `{` may follow
    ("function f # a comment\n\n", None),
    ("function details.\n", None),
    ("function details here\n", False),  # not a header
    ("echo hi\n", False),
]


@pytest.mark.parametrize(("text", "ok"), SHELL_LINES)
def test_the_shell_guard_closes_open_blocks_and_judges(text, ok):
    _grammar("shellscript")
    assert judge("shellscript", text.encode()) is ok


def test_the_shell_guard_final_wants_a_whole_function():
    _grammar("shellscript")
    guard = guard_for("shellscript")
    assert guard(b"f() {\n  echo hi\n}\n", True, None) is True
    assert guard(b"f() {\n  if x; then\n    echo hi\n}\n", True, None) is False
    assert guard(b"f() {\n  echo hi\n", True, None) is False


# ---------------------------------------------------------------- guards driving the sampler


class ScriptedPredictor:
    """A predictor that writes one of a few alternative lines per line (a trie over them,
    uniform over the next bytes any of them allows): a stand-in for a model that may
    write an invalid line where a valid one was possible."""

    vocab = 257

    def __init__(self, lines: list[list[str]], lead_in: str = ""):
        self.lines = [[alt.encode() for alt in alts] for alts in lines]
        self.lead_in = lead_in.encode()  # read before the function, not one of its lines
        self.start = b""

    def read(self, state: bytes, data: bytes) -> bytes:
        return state + data

    def logits(self, state: bytes) -> np.ndarray:
        row = np.full((1, self.vocab), -1e9, dtype=np.float32)
        if self.lead_in and state.startswith(self.lead_in):
            state = state[len(self.lead_in) :]
        n = state.count(b"\n")
        line = state[state.rfind(b"\n") + 1 :]
        alts = self.lines[min(n, len(self.lines) - 1)]
        nexts = {(alt + b"\n")[len(line)] for alt in alts if (alt + b"\n").startswith(line)}
        for b in nexts or {ord("\n")}:
            row[0, b] = 0.0
        return row

    def step(self, symbols, state: bytes):
        state = state + bytes(symbols)
        return self.logits(state), state

    def select(self, state, rows):
        return state

    def nbytes(self, state) -> int:
        return len(state)


# Per line: the valid alternatives, and invalid ones a careless model might write there.
SCRIPTS = {
    "cpp": [
        (["static int f(int x) {"], []),
        (["    int y = x * 2;", "\tint y = x;"], ["  int y = x +;", "  int y = {1, 2;"]),
        (["    if (y > 3) {", "  if (y > 3) {"], ["    if (y > 3)) {", "    if (y >) {"]),
        (["        y--;"], ["        y = ;"]),
        (["    }"], []),
        (["    return y;"], ["    return y +;"]),
        (["}"], []),
    ],
    "javascript": [
        (["function f(x) {"], []),
        (["  const o = {", "    const o = {"], ["  const o = {)", "  const = {"]),
        (["    a: 1,"], ["    a: : 1,"]),
        (["  }", "  };"], ["  )}"]),
        (["  if (x)"], ["  if x)"]),
        (["    return o.a", "    return o.a;"], ["    return o.a +;"]),
        (["  return `${x}`"], []),
        (["}"], []),
    ],
    "typescript": [
        (["function f(x: number): number {"], []),
        (["  let y: number = x;", "    let y = x"], ["  let y: = x;", "  let y = = x;"]),
        (["  return y;"], ["  return y: number;"]),
        (["}"], []),
    ],
    "go": [
        (["func f(x int) int {"], []),
        (["\ty := []int{", "    y := []int{"], ["\ty := []int{)", "\ty = := []int{"]),
        (["\t\tx,"], []),
        (["\t}"], []),
        (["\tif x > 1 {"], ["\tif x > {", "\tif x := > 1 {"]),
        (["\t\tx--"], []),
        (["\t}"], []),
        (["\treturn y[0]"], []),
        (["}"], []),
    ],
    "rust": [
        (["fn f(x: u8) -> u8 {"], []),
        (
            ["    let y = match x {", "\tlet y = match x {"],
            ["    let y = match {", "    let = match x {"],
        ),
        (["        0 => 1,"], []),
        (["        _ => x,"], []),
        (["    };"], ["    }; +", "    )};"]),
        (["    y"], []),
        (["}"], []),
    ],
    "java": [
        (["    public static int f(int x) {"], []),
        (["        int[] a = {", "\t\tint[] a = {"], ["        int[] a = {)", "        int[] = {"]),
        (["            x,"], []),
        (["        };"], ["        };)", "        } +;"]),
        (["        return a[0];"], ["        return a[0] +;"]),
        (["    }"], []),
    ],
    "shellscript": [
        (["f() {", "function f {"], []),
        (['  if [ -n "$1" ]; then', '\tif [ -n "$1" ]; then'], ["  fi", "  done"]),
        (['    echo "$1"', "    return 1"], ["    esac", "    ;;"]),
        (["  fi"], []),
        (["  case $1 in"], ["  esac"]),
        (["    a) echo a ;;"], []),
        (["  esac"], ["  fi"]),
        (["}"], []),
    ],
}


def _sample(rt, language, seed, guard):
    return sample_function(
        rt,
        rt.start,
        forced=b"",
        stop_rule=lambda extra: make_stop_rule("braces", extra, language),
        temperature=1.0,
        seed=seed,
        max_chars=2000,
        should_stop=lambda: False,
        guard=guard,
    )


@pytest.mark.parametrize("language", NEW)
def test_the_scripts_bad_lines_make_a_function_invalid(language):
    _grammar(language)
    script = SCRIPTS[language]
    for i, (_, bad) in enumerate(script):
        for line in bad:
            lines = [good[0] for good, _ in script[:i]] + [line]
            lines += [good[0] for good, _ in script[i + 1 :]]
            assert not check(language, "\n".join(lines)).valid, line


@pytest.mark.parametrize("language", NEW)
def test_the_guard_makes_a_scripted_model_write_valid_functions(language):
    _grammar(language)
    rt = ScriptedPredictor([good + bad for good, bad in SCRIPTS[language]])
    guard = guard_for(language)
    plain_invalid = 0
    for seed in range(12):
        plain = _sample(rt, language, seed, None)
        plain_invalid += not check(language, plain.text.decode()).valid
        got = _sample(rt, language, seed, guard)
        assert got.reason == "end_of_function", got
        text = got.text.decode()
        assert check(language, text).valid, text
        lines = zip(text.split("\n"), SCRIPTS[language], strict=True)
        assert all(line in good for line, (good, _) in lines), text
    assert plain_invalid  # the scripted model alone does write invalid functions


@pytest.mark.parametrize("language", NEW)
def test_the_guard_rejects_no_valid_line(language):
    """With only the valid alternatives the guard never sends a line back: the text is
    the same as without it."""
    _grammar(language)
    rt = ScriptedPredictor([good for good, _ in SCRIPTS[language]])
    guard = guard_for(language)
    for seed in range(6):
        plain = _sample(rt, language, seed, None)
        assert check(language, plain.text.decode()).valid, plain.text
        assert _sample(rt, language, seed, guard) == plain


@pytest.mark.parametrize("language", NEW)
def test_the_hallucinate_evaluation_runs_for_every_new_language(language):
    """`charcode eval --task hallucinate`'s path (the language's lead-in and prime, its
    stop rule, guard and checker) on the scripted model."""
    from charcode.server.measure.functions import evaluate_hallucinate

    _grammar(language)
    lines = [good + bad for good, bad in SCRIPTS[language]]
    rt = ScriptedPredictor(lines, LANGUAGES[language].lead_in)
    r = evaluate_hallucinate(rt, language, seeds=3, max_chars=2000, temperature=1.0)
    assert r["checker"].startswith("tree-sitter-") and r["syntax_guard"]
    assert r["stopped"] == {"end_of_function": 3} and r["validity_rate"] == 1.0, r


@pytest.mark.parametrize("language", NEW)
def test_hallucinate_without_a_model_is_a_one_line_error(language, tmp_path, monkeypatch, capsys):
    from charcode.server.command_line import main
    from charcode.training.registry import bundled_models_dir

    if (bundled_models_dir() / f"{language}.safetensors").exists():
        pytest.skip(f"a bundled {language} model exists")
    monkeypatch.setenv("CHARCODE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)
    code = main(["hallucinate", "--language", language])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"no model for {language}" in err and "charcode train" in err


def test_every_brace_language_reads_the_end_of_a_function_before_its_own():
    """A function hallucinated into an empty document follows a lead-in (the `}` of the
    function before), so the model starts a function, not a file's header or a body."""
    for language in LANGUAGES.values():
        if language.stop_rule == "braces":
            assert language.lead_in.strip() == "}" and language.lead_in.endswith("\n\n")
    assert LANGUAGES["java"].lead_in == "    }\n\n"  # a method, inside its class
