"""Schema errors in the terms of the session's author, not the validator's.

pydantic says "secrets.0.reader: Extra inputs are not permitted"; a person writing YAML wants
"unknown key 'reader' in secrets[0] (did you mean 'readers'?)". One function turns one
pydantic error into one such phrase: where (``services[1].measurements``), then what is wrong
and, where a near name exists, what was probably meant.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, Union

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from seml.policy._model import (
    ENV_NAME_PATTERN,
    MEASUREMENT_PATTERN,
    NAME_PATTERN,
    PLATFORM_PATTERN,
    SESSION_HASH_PATTERN,
    Session,
)

__all__ = ["describe_error", "location"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

# What each pattern of the schema means, said as what the value must be.
_PATTERNS = {
    NAME_PATTERN: "a name: a letter, then at most 63 letters, digits, _ or -",
    SESSION_HASH_PATTERN: "a session hash: sha256: and 64 lowercase hex digits",
    MEASUREMENT_PATTERN: "a measurement: 32 to 128 lowercase hex digits",
    PLATFORM_PATTERN: "a platform id: sha256:<64 hex>, ppid:<32 hex> or snp-chip:<128 hex>",
    ENV_NAME_PATTERN: "a variable name: letters, digits and _, not starting with a digit",
    r"^[0-9a-f]{96}$": "96 lowercase hex digits (a 48-byte measurement)",
    r"^[0-9a-f]{64}$": "64 lowercase hex digits",
    r"^[0-9A-Za-z.]{1,32}$": "a version: at most 32 letters, digits and dots",
    r"^[A-Za-z0-9_.-]+$": "an advisory id such as INTEL-SA-00615",
}


def location(loc: tuple[int | str, ...]) -> str:
    """``services[1].environment.KEY`` for ("services", 1, "environment", "KEY")."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation can hold (through Optional, Annotated, list and dict)."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _models(a)]
    return []


def _container_item(annotation: Any) -> Any:
    """The item (list) or value (dict) type of a container annotation, else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _container_item(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        items = [_container_item(a) for a in typing.get_args(annotation)]
        return next((i for i in items if i is not None), None)
    if origin is list:
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return None


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the schema accepts in the mapping at `loc` (empty when unknown)."""
    annotation: Any = Session
    for part in loc:
        models = _models(annotation)
        if models and isinstance(part, str):
            field = next(
                (
                    f
                    for m in models
                    for name, f in m.model_fields.items()
                    if part in (name, f.alias)
                ),
                None,
            )
            if field is None:
                return []
            annotation = field.annotation
        else:
            annotation = _container_item(annotation)
            if annotation is None:
                return []
    return sorted(
        {f.alias or name for m in _models(annotation) for name, f in m.model_fields.items()}
    )


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _count(n: int, field_type: str) -> str:
    if field_type in ("List", "Tuple", "Set"):
        return "one" if n == 1 else str(n)
    return f"{n} character{'s' if n != 1 else ''}"


def describe_error(err: ErrorDetails) -> str:
    """One pydantic error of a session document, in the author's terms."""
    loc = tuple(err["loc"])
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    value = err.get("input")
    where = location(loc)
    if kind == "extra_forbidden":
        parent = location(loc[:-1]) or "the session"
        key = str(loc[-1])
        return f"unknown key {key!r} in {parent}{_suggest(key, _keys_at(loc[:-1]))}"
    if kind == "missing":
        parent = location(loc[:-1]) or "the session"
        return f"{parent}: missing key {str(loc[-1])!r}"
    if kind == "too_short":
        field_type = str(ctx.get("field_type", ""))
        if field_type in ("List", "Tuple", "Set", "Dictionary"):
            least = int(ctx.get("min_length", 1))
            return f"{where}: must list at least {_count(least, 'List')}"
        return f"{where}: must not be empty"
    if kind == "too_long":
        field_type = str(ctx.get("field_type", ""))
        most = int(ctx.get("max_length", 0))
        if field_type in ("List", "Tuple", "Set", "Dictionary"):
            return f"{where}: must list at most {most}"
        return f"{where}: must be at most {_count(most, 'str')}"
    if kind in ("string_too_short", "string_too_long"):
        bound = ctx.get("min_length" if kind == "string_too_short" else "max_length")
        word = "at least" if kind == "string_too_short" else "at most"
        return f"{where}: must be {word} {_count(int(bound or 0), 'str')}"
    if kind == "string_pattern_mismatch":
        what = _PATTERNS.get(str(ctx.get("pattern")), f"text matching {ctx.get('pattern')}")
        subject = "key" if loc and loc[-1] == "[key]" else "value"
        return f"{where}: {subject} {_shown(value)} is not {what}"
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", ""))
        choices = re.findall(r"'([^']*)'", expected)
        hint = _suggest(str(value), choices) if isinstance(value, str) else ""
        return f"{where}: {_shown(value)} is not one of {expected}{hint}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{where}: must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"{where}: must be at most {ctx.get('le', ctx.get('lt'))}"
    simple = {
        "int_type": "must be a whole number",
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "string_type": "must be text",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "list_type": "must be a list",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "none_required": "must be null",
    }
    if kind in simple:
        return f"{where}: {simple[kind]}" if where else simple[kind]
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
