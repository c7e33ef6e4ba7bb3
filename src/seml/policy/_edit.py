"""Making the next version of a session: from an edited document or from changes by path, and
re-pinning exports, so nobody edits hashes by hand.

Pure: documents (plain data) and sessions in, the successor out; errors are `UsageError`s naming
the path that does not fit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from seml.errors import UsageError
from seml.policy._document import session_from_document, session_hash
from seml.policy._model import Session

__all__ = [
    "exported_to",
    "parse_path",
    "repin_document",
    "repin_exports",
    "set_path",
    "successor",
]


def parse_path(text: str) -> list[str]:
    """`services.train.command` -> [services, train, command]; a segment in brackets is taken
    literally (`services.train.files[/specs/a.yaml]`), for keys that contain dots."""
    parts: list[str] = []
    buf = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == ".":
            if buf:
                parts.append(buf)
            elif i == 0 or text[i - 1] != "]":
                raise UsageError(f"{text}: empty segment in the path")
            buf = ""
        elif ch == "[":
            end = text.find("]", i)
            if end < 0:
                raise UsageError(f"{text}: [ without ]")
            if buf:
                parts.append(buf)
                buf = ""
            parts.append(text[i + 1 : end])
            i = end
        else:
            buf += ch
        i += 1
    if buf:
        parts.append(buf)
    elif text.endswith("."):
        raise UsageError(f"{text}: empty segment in the path")
    if not parts:
        raise UsageError("an empty path: say what to set, e.g. services.train.command")
    return parts


def _index(node: list[Any], segment: str, where: str) -> int:
    """A list element by its `name` (services, secrets, volumes) or by position."""
    for i, item in enumerate(node):
        if isinstance(item, dict) and item.get("name") == segment:
            return i
    if segment.isdigit() and int(segment) < len(node):
        return int(segment)
    names = [str(x["name"]) for x in node if isinstance(x, dict) and "name" in x]
    known = f" (there: {', '.join(names)})" if names else f" (there are {len(node)} items)"
    raise UsageError(f"{where}: no item {segment}{known}")


def set_path(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `document` with the value at `path` replaced (or a mapping key added)."""
    out = copy.deepcopy(document)
    parts = parse_path(path)
    node: Any = out
    for depth, segment in enumerate(parts):
        where = ".".join(parts[:depth]) or "the session"
        last = depth == len(parts) - 1
        if isinstance(node, dict):
            if last:
                node[segment] = value
            elif segment not in node or not isinstance(node[segment], dict | list):
                keys = ", ".join(str(k) for k in node)
                raise UsageError(f"{path}: {where} has no {segment} to descend into ({keys})")
            else:
                node = node[segment]
        elif isinstance(node, list):
            i = _index(node, segment, f"{path}: {where}")
            if last:
                node[i] = value
            else:
                node = node[i]
        else:
            raise UsageError(f"{path}: {where} is a value, not a mapping or a list")
    return out


def successor(
    active: Session, document: dict[str, Any], settings: Iterable[tuple[str, Any]] = ()
) -> Session:
    """The next version after `active`: `document` (an edited copy) with `settings` applied and
    `predecessor` set to the active version's hash."""
    if not isinstance(document, dict):
        raise UsageError("the new version is a mapping (a session document)")
    doc = dict(document)
    for path, value in settings:
        doc = set_path(doc, path, value)
    if doc.get("name", active.name) != active.name:
        raise UsageError(
            f"the new version is named {doc.get('name')}; an update of {active.name} keeps its name"
        )
    doc["predecessor"] = session_hash(active)
    return session_from_document(doc, source=f"the next version of {active.name}")


def exported_to(session: Session) -> set[str]:
    """The sessions `session` exports a secret or a volume to."""
    return {e.session for x in session.secrets for e in x.export} | {
        e.session for v in session.volumes for e in v.export
    }


def repin_document(document: dict[str, Any], target: str, hashes: Sequence[str]) -> dict[str, Any]:
    """A copy of a session document whose exports to session `target` name exactly `hashes`
    (each with every service its exports to `target` named)."""
    if not hashes:
        raise UsageError(f"re-pinning exports to {target} needs a hash")
    doc = copy.deepcopy(document)
    found = False
    for item in [*(doc.get("secrets") or []), *(doc.get("volumes") or [])]:
        exports = item.get("export") or []
        mine = [e for e in exports if e.get("session") == target]
        if not mine:
            continue
        found = True
        services = sorted({s for e in mine for s in e.get("services", [])})
        item["export"] = [e for e in exports if e.get("session") != target] + [
            {"session": target, "session_hash": h, "services": services}
            for h in dict.fromkeys(hashes)
        ]
    if not found:
        raise UsageError(f"session {doc.get('name')} exports nothing to session {target}")
    return doc


def repin_exports(session: Session, target: str, hashes: Sequence[str]) -> Session:
    """The next version of `session`, whose exports to session `target` pin exactly `hashes`:
    what follows an update of `target`."""
    return successor(session, repin_document(session.document(), target, hashes))
