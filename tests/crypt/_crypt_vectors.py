"""The rclone vectors in ../shared/testdata/rclone, loaded as data for parametrized tests.

Collection must not fail when the shared folder is absent: every helper then yields one param
that skips and says why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "rclone"
CONF = VECTORS / "rclone.conf"
_MISSING = f"shared rclone vectors not found at {VECTORS} (clone beside ../shared)"


def _absent() -> list[Any]:
    return [pytest.param(None, marks=pytest.mark.skip(reason=_MISSING), id="vectors-absent")]


@dataclass(frozen=True)
class ContentVector:
    encrypted: Path  # the file rclone wrote
    encrypted_rel: str  # its path under encrypted/
    plain: Path  # the plaintext it came from
    plain_rel: str


def _plain_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for root in ("plain", "plain_sub"):
        for p in sorted((VECTORS / root).rglob("*")):
            if p.is_file():
                out[p.relative_to(VECTORS / root).as_posix()] = p
    return out


def content_params() -> list[Any]:
    """One param per file under encrypted/, paired with its plaintext through the names table."""
    if not VECTORS.is_dir():
        return _absent()
    names = json.loads((VECTORS / "rclone_encoded_names.json").read_text("utf-8"))["vcrypt"]
    by_encrypted = {enc: plain for plain, enc in names.items()}
    plain_files = _plain_files()
    params = []
    for p in sorted((VECTORS / "encrypted").rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(VECTORS / "encrypted").as_posix()
        plain_rel = by_encrypted[rel]
        vec = ContentVector(p, rel, plain_files[plain_rel], plain_rel)
        params.append(pytest.param(vec, id=plain_rel))
    return params


def name_params() -> list[Any]:
    """(remote, plaintext path, encoded path) for every entry of rclone_encoded_names.json."""
    if not VECTORS.is_dir():
        return _absent()
    table = json.loads((VECTORS / "rclone_encoded_names.json").read_text("utf-8"))
    return [
        pytest.param((remote, plain, enc), id=f"{remote}:{plain}")
        for remote, entries in table.items()
        for plain, enc in entries.items()
    ]


def readme_keys() -> dict[str, str]:
    """The derived keys the README lists for `vcrypt` (data key, name key, name tweak)."""
    text = (VECTORS / "README.md").read_text("utf-8")
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^- (data key|name key|name tweak)\s+`([0-9a-f]+)`", text, re.M)
    }


def readme_passwords() -> dict[str, str]:
    """The plain password values the README's table gives for password and password2."""
    text = (VECTORS / "README.md").read_text("utf-8")
    return dict(re.findall(r"^\| (password2?)\s*\| `([^`]+)`", text, re.M))
