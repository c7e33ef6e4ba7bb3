"""What anyone can see of a volume without its key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seml.crypt import Cipher
from seml.errors import IntegrityError, StorageError, UsageError
from seml.volume._layout import HEADER_FILE, MANIFEST_FILE
from seml.volume._manifest import Header

__all__ = ["VolumeInfo", "inspect"]


@dataclass(frozen=True)
class VolumeInfo:
    """A volume seen from outside: the clear header (unauthenticated) and object sizes."""

    path: Path
    volume_id: str
    version: int
    generation: str
    objects: tuple[tuple[str, int], ...]  # encrypted name, encrypted size
    leftovers: tuple[str, ...]  # staging dirs / old generations an interrupted seal left

    @property
    def encrypted_bytes(self) -> int:
        return sum(size for _, size in self.objects)

    @property
    def plaintext_bytes(self) -> int | None:
        """Sum of the plaintext sizes the encrypted sizes imply (None if one is impossible)."""
        try:
            return sum(Cipher.decrypted_size(size) for _, size in self.objects)
        except IntegrityError:
            return None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "volume_id": self.volume_id,
            "version": self.version,
            "version_authenticated": False,
            "generation": self.generation,
            "objects": len(self.objects),
            "encrypted_bytes": self.encrypted_bytes,
            "plaintext_bytes": self.plaintext_bytes,
            "leftovers": list(self.leftovers),
        }


def inspect(path: Path) -> VolumeInfo:
    """Read the clear header and list the current generation's objects; no key, no checks."""
    header_path = path / HEADER_FILE
    if not header_path.is_file():
        raise UsageError(f"no protected volume at {path} (no {HEADER_FILE} file)")
    try:
        header = Header.from_bytes(header_path.read_bytes(), where=str(path))
        generation = path / header.generation
        objects = []
        for root, _dirs, files in os.walk(generation):
            for name in files:
                p = Path(root) / name
                if p.parent == generation and name == MANIFEST_FILE:
                    continue
                objects.append((p.relative_to(generation).as_posix(), p.stat().st_size))
        leftovers = sorted(
            c.name for c in path.iterdir() if c.is_dir() and c.name != header.generation
        )
    except OSError as e:
        raise StorageError(f"cannot inspect volume at {path}: {e}") from e
    return VolumeInfo(
        path=path,
        volume_id=header.volume_id,
        version=header.version,
        generation=header.generation,
        objects=tuple(sorted(objects)),
        leftovers=tuple(leftovers),
    )
