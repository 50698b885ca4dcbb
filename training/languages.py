"""The language table: LSP language ids, their file extensions and how functions start and end."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Language:
    id: str  # the LSP languageId
    name: str
    extensions: tuple[str, ...]
    stop_rule: str  # "braces", "indent", "lua_end" or "none"
    function_prime: str  # the default start of a hallucinated function
    filenames: tuple[str, ...] = field(default=())
    # What a new function usually follows. A function hallucinated into an empty
    # document is sampled after the model has read this (it is not written): files
    # open with comments and includes, so a C model that sees `static int ` at the
    # start of a file writes a declaration, not a function.
    lead_in: str = ""


BRACE_LEAD_IN = "}\n\n"  # the end of the function before
METHOD_LEAD_IN = "    }\n\n"  # the end of the method before, inside a class (Java)

LANGUAGES: dict[str, Language] = {
    lang.id: lang
    for lang in [
        Language("c", "C", (".c", ".h"), "braces", "static int ", lead_in=BRACE_LEAD_IN),
        Language(
            "cpp",
            "C++",
            (".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".h++", ".c++"),
            "braces",
            "static int ",
            lead_in=BRACE_LEAD_IN,
        ),
        Language("python", "Python", (".py", ".pyi"), "indent", "def "),
        Language("lua", "Lua", (".lua", ".nse"), "lua_end", "local function "),
        Language(
            "javascript",
            "JavaScript",
            (".js", ".mjs", ".cjs", ".jsx"),
            "braces",
            "function ",
            lead_in=BRACE_LEAD_IN,
        ),
        Language(
            "typescript",
            "TypeScript",
            (".ts", ".mts", ".cts", ".tsx"),
            "braces",
            "function ",
            lead_in=BRACE_LEAD_IN,
        ),
        Language("go", "Go", (".go",), "braces", "func ", lead_in=BRACE_LEAD_IN),
        Language("rust", "Rust", (".rs",), "braces", "fn ", lead_in=BRACE_LEAD_IN),
        Language(
            "java",
            "Java",
            (".java",),
            "braces",
            "    public static int ",
            lead_in=METHOD_LEAD_IN,
        ),
        Language(
            "shellscript",
            "Shell",
            (".sh", ".bash", ".zsh"),
            "braces",
            "function ",
            ("PKGBUILD",),
            lead_in=BRACE_LEAD_IN,
        ),
    ]
}


class UnknownLanguage(ValueError):
    def __init__(self, language: str):
        known = ", ".join(sorted(LANGUAGES))
        super().__init__(f"unknown language {language!r}; known languages: {known}")


def get_language(language_id: str) -> Language:
    try:
        return LANGUAGES[language_id]
    except KeyError:
        raise UnknownLanguage(language_id) from None


def language_of_path(path) -> str | None:
    """The language id of a file by its name (extension or exact file name), None if none."""
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    for lang in LANGUAGES.values():
        if name.endswith(lang.extensions) or name in lang.filenames:
            return lang.id
    return None
