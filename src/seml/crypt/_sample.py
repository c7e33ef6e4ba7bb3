"""A small sample tree for demos, generated in code (deterministic, no files in the repo).

It exercises what rclone's format has edge cases for: an empty file, a file of exactly one
64 KiB chunk, one byte over, nested folders, and non-ASCII names.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_sample_tree"]

_CHUNK = 64 * 1024


def _csv(rows: int, seed: int) -> bytes:
    lines = ["id,age,income,label"]
    x = seed
    for i in range(rows):
        x = (1103515245 * x + 12345) % (1 << 31)
        lines.append(f"{i},{20 + x % 50},{20000 + x % 80000},{x % 2}")
    return ("\n".join(lines) + "\n").encode()


def sample_files() -> dict[str, bytes]:
    """Relative path -> content of the sample tree."""
    return {
        "README.txt": b"Party A's training data (synthetic).\n",
        "empty.txt": b"",
        "data/train.csv": _csv(2000, 1),
        "data/test.csv": _csv(500, 2),
        "blobs/one-chunk.bin": bytes(i % 251 for i in range(_CHUNK)),
        "blobs/one-chunk-plus-one.bin": bytes(i % 241 for i in range(_CHUNK + 1)),
        "notes/façade ✓/Ünïcödé naïve.md": "# données\nrésumé: ok\n".encode(),
    }


def write_sample_tree(root: Path) -> dict[str, bytes]:
    """Write the sample tree under `root`; return what was written (relative path -> bytes)."""
    files = sample_files()
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files
