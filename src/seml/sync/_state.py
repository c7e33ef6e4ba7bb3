"""Local state of a syncing machine: the last manifest version seen per remote and key, and the
journal of objects an unfinished push already uploaded.

Default folder: ``$SEML_STATE_DIR``, else ``$XDG_STATE_HOME/seml``, else ``~/.local/state/seml``.
Files are 0600; the journal names plaintext files (this machine has them anyway) but holds no key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

from seml._fs import write_atomic
from seml.errors import StorageError
from seml.sync._manifest import FileEntry

__all__ = ["SyncState", "default_state_dir"]

STATE_ENV = "SEML_STATE_DIR"
_ENTRY_FIELDS = tuple(f.name for f in fields(FileEntry))


def default_state_dir() -> Path:
    if env := os.environ.get(STATE_ENV):
        return Path(env)
    if xdg := os.environ.get("XDG_STATE_HOME"):
        return Path(xdg) / "seml"
    return Path.home() / ".local" / "state" / "seml"


class SyncState:
    """Last-seen manifest versions (rollback protection) and push journals (resume)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_state_dir()

    def _mkdir(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise StorageError(f"{self.root}: cannot create state folder: {e.strerror}") from e

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._mkdir()
        path = self.root / "sync-state.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StorageError(f"{path}: cannot open lock: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @property
    def _versions_path(self) -> Path:
        return self.root / "sync-versions.json"

    def _read_versions(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self._versions_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise StorageError(f"{self._versions_path}: unreadable sync state: {e}") from e
        return data if isinstance(data, dict) else {}

    def last_seen(self, remote: str, key_id: str) -> tuple[int, str] | None:
        """(version, manifest digest) of the newest manifest seen for this remote and key."""
        rec = self._read_versions().get(f"{remote}#{key_id}")
        if not isinstance(rec, dict):
            return None
        version, digest = rec.get("version"), rec.get("digest")
        if not isinstance(version, int) or not isinstance(digest, str):
            return None
        return version, digest

    def record(self, remote: str, key_id: str, version: int, digest: str) -> None:
        """Remember a manifest; never lowers a version already recorded."""
        with self._locked():
            data = self._read_versions()
            key = f"{remote}#{key_id}"
            old = data.get(key)
            old_version = old.get("version") if isinstance(old, dict) else None
            if isinstance(old_version, int) and old_version > version:
                return
            data[key] = {"version": version, "digest": digest}
            write_atomic(
                self._versions_path, json.dumps(data, indent=1, sort_keys=True), mode=0o600
            )

    # -- push journal ------------------------------------------------------------------------

    def _journal_path(self, remote: str, key_id: str) -> Path:
        h = hashlib.sha256(f"{remote}#{key_id}".encode()).hexdigest()[:32]
        return self.root / "push-journal" / f"{h}.jsonl"

    def journal(self, remote: str, key_id: str) -> dict[str, FileEntry]:
        """Objects an interrupted push to this remote finished, by plaintext path."""
        path = self._journal_path(remote, key_id)
        out: dict[str, FileEntry] = {}
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return out
        except OSError as e:
            raise StorageError(f"{path}: unreadable push journal: {e.strerror}") from e
        for line in lines:
            try:
                entry = FileEntry(**json.loads(line))
            except (ValueError, TypeError):
                continue  # a line cut by the interruption
            out[entry.path] = entry
        return out

    def journal_writer(self, remote: str, key_id: str) -> JournalWriter:
        self._mkdir()
        path = self._journal_path(remote, key_id)
        try:
            path.parent.mkdir(exist_ok=True, mode=0o700)
        except OSError as e:
            raise StorageError(f"{path.parent}: cannot create: {e.strerror}") from e
        return JournalWriter(path)


class JournalWriter:
    """Appends one line per finished object; flushed so a killed push still leaves it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._f = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as e:
            raise StorageError(f"{path}: cannot open push journal: {e.strerror}") from e

    def append(self, entry: FileEntry) -> None:
        # Flat fields: read directly (dataclasses.asdict deep-copies, a cost per pushed file).
        record = {name: getattr(entry, name) for name in _ENTRY_FIELDS}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            with self._lock:
                self._f.write(line)
                self._f.flush()
        except OSError as e:
            raise StorageError(f"{self.path}: cannot write push journal: {e.strerror}") from e

    def close(self, *, remove: bool) -> None:
        self._f.close()
        if remove:
            self.path.unlink(missing_ok=True)
