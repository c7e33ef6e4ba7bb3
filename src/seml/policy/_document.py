"""Reading a session document and its canonical hash.

The hash is sha256 over the canonical serialisation of the *validated* model (sorted keys,
compact JSON, UTF-8), so comments, key order and YAML style do not change it, and two texts that
mean the same session have the same hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from pydantic import ValidationError

from seml.errors import UsageError
from seml.policy._errors import describe_error
from seml.policy._model import Session

__all__ = [
    "canonical_json",
    "parse_session",
    "schema_errors",
    "session_from_document",
    "session_hash",
]

_MAX_DOCUMENT = 1 << 20
_MAX_ERRORS = 8


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def session_hash(session: Session) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(session.document())).hexdigest()


def _describe(e: ValidationError) -> str:
    return "; ".join(describe_error(err) for err in e.errors(include_url=False)[:_MAX_ERRORS])


@contextmanager
def schema_errors(source: str) -> Iterator[None]:
    """Building session models (`Session(...)`, `Service(...)`) in this block: a value the
    schema refuses becomes a UsageError naming `source` and every offending key path."""
    try:
        yield
    except ValidationError as e:
        raise UsageError(f"{source}: {_describe(e)}") from None


def session_from_document(data: Any, *, source: str = "session") -> Session:
    """Validate already-parsed data; UsageError naming every offending key path."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: a session is a mapping, not {type(data).__name__}")
    try:
        return Session.model_validate(data)
    except ValidationError as e:
        raise UsageError(f"{source}: {_describe(e)}") from None
    except (ValueError, TypeError, RecursionError) as e:  # defensive: odd YAML values
        raise UsageError(f"{source}: invalid session: {e}") from None


def parse_session(text: str | bytes, *, source: str = "session") -> Session:
    """Parse a YAML (or JSON) session text; UsageError with the offending key path if invalid."""
    if len(text) > _MAX_DOCUMENT:
        raise UsageError(f"{source}: document larger than {_MAX_DOCUMENT} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UsageError(f"{source}: not valid YAML{where}") from None
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise UsageError(f"{source}: not valid YAML ({type(e).__name__})") from None
    return session_from_document(data, source=source)
