"""Helpers shared by the sync tests (a module, not conftest, so tests can import it)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias

from seml.store import MemoryStore

# The `tree` fixture: a source folder and its files; `pushed`: a store it was pushed to (or the
# folder of a file store) and the same files.
Tree: TypeAlias = tuple[Path, dict[str, bytes]]
Pushed: TypeAlias = tuple[MemoryStore, dict[str, bytes]]
PushedTree: TypeAlias = tuple[Path, dict[str, bytes]]

MARKER = b"SEML-PLAINTEXT-MARKER-7d1f"
PASSWORD, PASSWORD2 = "sync-test-password", "sync-test-salt"


def make_tree(root: Path) -> dict[str, bytes]:
    """The edge files of the crypt format: empty, exact 64 KiB multiples, one byte over,
    non-ASCII names, nested folders; every non-empty file carries MARKER."""
    block = 64 * 1024

    def body(n: int, seed: int) -> bytes:
        unit = MARKER + bytes([seed]) * 37
        return (unit * (n // len(unit) + 1))[:n]

    files = {
        "empty.txt": b"",
        "one.txt": MARKER[:1],
        "exact64k.bin": body(block, 1),
        "exact128k.bin": body(2 * block, 2),
        "over64k.bin": body(block + 1, 3),
        "sub dir/nested/deep.txt": body(1000, 4),
        "données/ñandú €.txt": body(333, 5),
        "日本語/ファイル.txt": body(4096, 6),
        "twins/a.txt": body(500, 7),
        "twins/b.txt": body(500, 8),
    }
    for rel, data in files.items():
        p = root.joinpath(*rel.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
