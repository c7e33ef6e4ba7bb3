"""The rclone crypt vectors in `tests/vectors/rclone/` (see its README), as parametrize data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vectors import vector_path, vector_text

__all__ = [
    "ContentVector",
    "content_params",
    "content_vectors",
    "name_params",
    "rclone_conf",
    "readme_keys",
    "readme_passwords",
]

SET = "rclone"


@dataclass(frozen=True)
class ContentVector:
    encrypted: Path  # the file rclone wrote
    encrypted_rel: str  # its path under encrypted/
    plain: Path  # the plaintext it came from
    plain_rel: str


def rclone_conf() -> Path:
    """The rclone.conf with the five crypt remotes the vectors were made with."""
    return vector_path(SET, "rclone.conf")


def _names() -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = json.loads(vector_text(SET, "rclone_encoded_names.json"))
    return table


def _plain_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for root in ("plain", "plain_sub"):
        base = vector_path(SET, root)
        for p in sorted(base.rglob("*")):
            if p.is_file():
                out[p.relative_to(base).as_posix()] = p
    return out


def content_vectors() -> list[ContentVector]:
    """Each file under encrypted/, paired with its plaintext through the names table."""
    by_encrypted = {enc: plain for plain, enc in _names()["vcrypt"].items()}
    plain_files = _plain_files()
    base = vector_path(SET, "encrypted")
    vectors = []
    for p in sorted(base.rglob("*")):
        if p.is_file():
            rel = p.relative_to(base).as_posix()
            plain_rel = by_encrypted[rel]
            vectors.append(ContentVector(p, rel, plain_files[plain_rel], plain_rel))
    if len(vectors) != 4:  # the README's table: an incomplete copy must not pass quietly
        pytest.fail(f"expected 4 rclone content vectors, found {len(vectors)}", pytrace=False)
    return vectors


def content_params() -> list[Any]:
    return [pytest.param(v, id=v.plain_rel) for v in content_vectors()]


def name_params() -> list[Any]:
    """(remote, plaintext path, encoded path) for every entry of rclone_encoded_names.json."""
    return [
        pytest.param((remote, plain, enc), id=f"{remote}:{plain}")
        for remote, entries in _names().items()
        for plain, enc in entries.items()
    ]


def readme_keys() -> dict[str, str]:
    """The derived keys the README lists for `vcrypt` (data key, name key, name tweak)."""
    text = vector_text(SET, "README.md")
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^- (data key|name key|name tweak)\s+`([0-9a-f]+)`", text, re.M)
    }


def readme_passwords() -> dict[str, str]:
    """The plain password values the README's table gives for password and password2."""
    text = vector_text(SET, "README.md")
    return dict(re.findall(r"^\| (password2?)\s*\| `([^`]+)`", text, re.M))
