"""Checking workspace/executeCommand arguments: one JSON object, typed fields, clear errors."""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams


def bad(command: str, problem: str) -> JsonRpcInvalidParams:
    return JsonRpcInvalidParams(f"{command}: {problem}")


def single_object(command: str, args: tuple, optional: bool = False) -> dict[str, Any]:
    """The command's one argument, an object (or {} when optional and absent)."""
    if not args and optional:
        return {}
    if len(args) != 1 or not isinstance(args[0], dict):
        raise bad(command, "expected one object argument")
    return args[0]


def field(
    command: str, obj: dict, key: str, kind: type | tuple, default: Any = ..., check=None
) -> Any:
    if key not in obj or obj[key] is None:
        if default is ...:
            raise bad(command, f"missing {key!r}")
        return default
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise bad(command, f"{key!r} must be {names}, got {value!r}")
    if check is not None and not check(value):
        raise bad(command, f"{key!r} is out of range: {value!r}")
    return value


def position(command: str, obj: dict, key: str = "position") -> types.Position:
    pos = field(command, obj, key, dict)
    line = field(command, pos, "line", int, check=lambda v: 0 <= v < 2**31)
    character = field(command, pos, "character", int, check=lambda v: 0 <= v < 2**31)
    return types.Position(line=line, character=character)
