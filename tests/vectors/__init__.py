"""Test vectors kept in the repository, as data: one folder per set, each with a README naming
its source, licence, expected results and negative cases.

Tests reach a file through `vector_path` (or the loaders in `vectors.rclone_crypt`,
`vectors.dcap`), never through a path of their own. A missing file means an incomplete clone:
that is a test failure, never a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["ROOT", "vector_bytes", "vector_path", "vector_text"]

ROOT = Path(__file__).resolve().parent


def vector_path(*parts: str) -> Path:
    """`tests/vectors/<parts...>`; fails the test (or its collection) when it is missing."""
    path = ROOT.joinpath(*parts)
    if not path.exists():
        pytest.fail(
            f"test vector tests/vectors/{'/'.join(parts)} is missing: this clone is incomplete "
            "(the vectors are part of the repository)",
            pytrace=False,
        )
    return path


def vector_bytes(*parts: str) -> bytes:
    return vector_path(*parts).read_bytes()


def vector_text(*parts: str) -> str:
    return vector_path(*parts).read_text("utf-8")
