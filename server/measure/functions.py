"""`charcode eval --task hallucinate`: how many hallucinated functions are valid code.

For seeds 0..N-1 the core's ``Completer.function`` (what
``charcode.hallucinateFunction`` runs) writes a function at the start of an
empty document (the language's lead-in, function prime, stop rule and, unless
turned off, syntax guard; temperature sampling), and validity.py checks it.
"""

from __future__ import annotations

import statistics

from ..core.completer import Completer, OneModel, TextAt, function_request
from ..core.guard import guard_for
from ..core.predictor import Predictor
from ..core.settings import Settings
from ..core.validity import Unavailable, Verdict, checker

DEFAULT_FUNCTION_CHARS = 3000
MAX_FUNCTION_CHARS = 100_000  # charcode.hallucinateFunction's maxChars limit


def evaluate_hallucinate(
    runtime: Predictor,
    language: str,
    seeds: int,
    max_chars: int = DEFAULT_FUNCTION_CHARS,
    temperature: float | None = None,
    progress=None,
    syntax_check: bool = True,
) -> dict:
    """Hallucinate functions for seeds 0..seeds-1 and check their syntax."""
    temperature = Settings().temperature if temperature is None else temperature
    completer = Completer(OneModel(language, runtime))
    try:
        judge = checker(language)
        tool, unavailable = judge.tool, None
    except Unavailable as e:
        judge, tool, unavailable = None, None, str(e)
    at = TextAt("eval:///hallucinate", language, 0, b"", 0)  # an empty document
    rows = []
    for seed in range(seeds):
        req = function_request(
            at, temperature=temperature, max_chars=max_chars, seed=seed, syntax_check=syntax_check
        )
        result = completer.function(at, req)
        text = result.text.decode("utf-8", "surrogatepass")
        verdict = judge.check(text) if judge is not None else None
        if verdict is not None and result.reason == "declarations":
            verdict = Verdict(False, "no function: only declarations")
        rows.append(
            {
                "seed": seed,
                "chars": len(text),
                "stopped": result.reason,
                "valid": None if verdict is None else verdict.valid,
                "error": None if verdict is None else verdict.error,
                "text": text,
            }
        )
        if progress is not None:
            progress(1)
    summary = hallucination_summary(language, rows, tool, unavailable, temperature, max_chars)
    summary["syntax_guard"] = syntax_check and guard_for(language) is not None
    return summary


def hallucination_summary(
    language: str,
    rows: list[dict],
    tool: str | None,
    unavailable: str | None,
    temperature: float,
    max_chars: int,
) -> dict:
    n = len(rows)
    by_rule = [r for r in rows if r["stopped"] == "end_of_function"]
    stopped: dict[str, int] = {}
    for r in rows:
        stopped[r["stopped"]] = stopped.get(r["stopped"], 0) + 1

    def rate(group: list[dict]) -> float | None:
        if unavailable is not None or not group:
            return None
        return round(sum(r["valid"] for r in group) / len(group), 4)

    return {
        "task": "hallucinate",
        "language": language,
        "seeds": n,
        "temperature": temperature,
        "max_chars": max_chars,
        "checker": tool,
        "checker_unavailable": unavailable,
        "validity_rate": rate(rows),
        "validity_rate_stopped_by_rule": rate(by_rule),
        "mean_chars": round(statistics.fmean(r["chars"] for r in rows), 1) if rows else 0.0,
        "stop_rule_share": round(len(by_rule) / n, 4) if n else 0.0,
        "stopped": stopped,
        "functions": [{k: v for k, v in r.items() if k != "text"} for r in rows],
        "invalid_examples": [
            {"seed": r["seed"], "error": r["error"], "text": r["text"]}
            for r in rows
            if r["valid"] is False
        ][:3],
    }
