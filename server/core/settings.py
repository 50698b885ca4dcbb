"""Settings from ``initializationOptions`` and ``workspace/didChangeConfiguration``.

Both carry ``{"charcode": {...}}`` or the bare object. Keys (camelCase as in
VS Code): enable, languages, modelsDir, device, temperature,
inlineMaxLength, models. Unknown keys are ignored (clients send their own);
an invalid value falls back to its default and is reported in ``problems``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from .language_ids import canonical_language

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Settings:
    enable: bool = True
    languages: tuple[str, ...] = ()  # empty: every language
    models_dir: str | None = None
    device: str = "auto"
    temperature: float = 1.0  # for charcode.hallucinateFunction (the syntax guard keeps it valid)
    inline_max_length: int = 48  # characters of ghost text (per line)
    inline_max_lines: int = 1  # lines of ghost text: more lets it run over the block a line opens
    # ghost text ends at the last token boundary where its probability is still this high
    inline_min_probability: float = 0.5
    adaptation: bool = True  # learn from the workspace and documents, mix with the LSTM
    adaptation_memory_mb: int = 64  # the learned state's cap per language
    models: MappingProxyType = field(
        default_factory=lambda: MappingProxyType({})
    )  # language -> path

    def enabled_for(self, language_id: str) -> bool:
        if not self.enable:
            return False
        lang = canonical_language(language_id)
        return not self.languages or any(canonical_language(x) == lang for x in self.languages)


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise ValueError("expected true or false")


def _languages(v: Any) -> tuple[str, ...]:
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return tuple(v)
    raise ValueError("expected a list of language ids")


def _models_dir(v: Any) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, str):
        return v
    raise ValueError("expected a folder path or null")


def _device(v: Any) -> str:
    if v in DEVICES:
        return v
    raise ValueError(f"expected one of {', '.join(DEVICES)}")


def _temperature(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 5:
        return float(v)
    raise ValueError("expected a number from 0 to 5")


def _inline_max_length(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000:
        return v
    raise ValueError("expected a whole number from 1 to 1000")


def _inline_max_lines(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 50:
        return v
    raise ValueError("expected a whole number from 1 to 50")


def _probability(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1:
        return float(v)
    raise ValueError("expected a number from 0 to 1")


def _memory_mb(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 4096:
        return v
    raise ValueError("expected a whole number of megabytes from 8 to 4096")


def _models(v: Any) -> MappingProxyType:
    if isinstance(v, dict) and all(isinstance(k, str) and isinstance(p, str) for k, p in v.items()):
        return MappingProxyType({k: p for k, p in v.items() if p})
    raise ValueError('expected an object like {"python": "/path/to/python.safetensors"}')


_KEYS = {
    "enable": ("enable", _bool),
    "languages": ("languages", _languages),
    "modelsDir": ("models_dir", _models_dir),
    "device": ("device", _device),
    "temperature": ("temperature", _temperature),
    "inlineMaxLength": ("inline_max_length", _inline_max_length),
    "inlineMaxLines": ("inline_max_lines", _inline_max_lines),
    "inlineMinProbability": ("inline_min_probability", _probability),
    "models": ("models", _models),
    "adaptation": ("adaptation", _bool),
    "adaptationMemoryMB": ("adaptation_memory_mb", _memory_mb),
}


def parse_settings(raw: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from a client payload; keys it lacks keep base's (or the default) values."""
    settings = base or Settings()
    if raw is None:
        return settings, []
    if isinstance(raw, dict) and "charcode" in raw:
        raw = raw["charcode"]
        if raw is None:
            return settings, []
    if not isinstance(raw, dict):
        return settings, [
            f"charcode settings must be an object, got {type(raw).__name__}; using defaults"
        ]
    values, problems = {}, []
    defaults = {f.name: f.default for f in fields(Settings)}
    defaults["models"] = MappingProxyType({})
    for key, (name, check) in _KEYS.items():
        if key not in raw:
            continue
        try:
            values[name] = check(raw[key])
        except ValueError as e:
            values[name] = defaults[name]
            problems.append(f"charcode.{key}: {e}, got {raw[key]!r}; using {_show(defaults[name])}")
    return replace(settings, **values), problems


def _show(value: Any) -> str:
    if isinstance(value, MappingProxyType):
        return "{}"
    if isinstance(value, tuple):
        return "[]"
    return "null" if value is None else repr(value)
