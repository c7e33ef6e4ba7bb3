"""Session paths: where a service's injected files and volumes appear in its workspace.

One rule set, checked when a session is checked or submitted (the schema) and again by
`seml run` before it writes anything: a path is absolute and normalised (no `.`, `..` or empty
component, not `/` itself), at most `MAX_PATH` bytes with components of at most `MAX_NAME`
bytes, without control characters; and within one service no path is another's or lies below
another's: a file inside a volume's path would be sealed into the volume, where services that
may not read the secret would find it; a volume inside another would be sealed twice; a file
below another file cannot exist.

Pure and light (standard library only): the schema, the runtime and its tests share it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

__all__ = ["MAX_NAME", "MAX_PATH", "check_layout", "path_problem"]

MAX_PATH = 1024  # bytes of UTF-8; well below PATH_MAX once inside a workspace
MAX_NAME = 128  # bytes of UTF-8 per component; well below NAME_MAX (255)


def path_problem(path: str) -> str | None:
    """What is wrong with `path` as a session path, or None."""
    if not path.startswith("/"):
        return "must be absolute (start with /)"
    if path == "/":
        return "cannot be / itself (the workspace root)"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "contains a control character"
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        return f"is longer than {MAX_PATH} bytes"
    for part in path[1:].split("/"):
        if part == "":
            return "has an empty component (// or a trailing /)"
        if part in (".", ".."):
            return f"has a {part!r} component (write the normalised path)"
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME:
            return f"has a component longer than {MAX_NAME} bytes"
    return None


def _what(kind: str, name: str, path: str) -> str:
    return f"file {path}" if kind == "file" else f"volume {name} at {path}"


def check_layout(files: Iterable[str], volumes: Mapping[str, str]) -> None:
    """ValueError unless every path is valid and no path is or lies below another one."""
    entries: list[tuple[tuple[str, ...], str, str, str]] = []
    for kind, name, path in [
        *(("file", p, p) for p in files),
        *(("volume", n, p) for n, p in volumes.items()),
    ]:
        problem = path_problem(path)
        if problem is not None:
            raise ValueError(f"{kind} path {path[:80]!r} {problem}")
        entries.append((tuple(path[1:].split("/")), kind, name, path))
    # Sorted by components, a path that is a prefix of any later one is one of its successor.
    entries.sort()
    for (a, kind_a, name_a, path_a), (b, kind_b, name_b, path_b) in itertools.pairwise(entries):
        if b[: len(a)] != a:
            continue
        first, second = _what(kind_a, name_a, path_a), _what(kind_b, name_b, path_b)
        if a == b:
            raise ValueError(f"{first} and {second} are the same path")
        if kind_a == "volume" and kind_b == "file":
            raise ValueError(
                f"{second} is inside {first}: it would be sealed into the volume, readable by "
                "every service that mounts it; put injected files outside volume paths"
            )
        raise ValueError(f"{second} is inside {first}")
