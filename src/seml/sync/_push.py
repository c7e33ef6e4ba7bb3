"""`push`: encrypt a local file or folder into object storage as an rclone crypt remote would,
then write the authenticated manifest."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from seml.crypt import Cipher
from seml.errors import IntegrityError, SemlError, StorageError, UsageError
from seml.store import ObjectStore
from seml.sync._common import (
    HashingReader,
    SyncProgress,
    manifest_digest,
    read_manifest,
    remote_id,
    run_all,
    warn,
)
from seml.sync._manifest import MANIFEST_NAME, FileEntry, Manifest, ManifestKeys, seal_manifest
from seml.sync._state import JournalWriter, SyncState

__all__ = ["PushResult", "push"]


@dataclass
class PushResult:
    version: int
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0
    digest: str = ""  # sha256 of the authenticated manifest written (as the sync state has it)
    files: tuple[FileEntry, ...] = ()  # every file the manifest lists


@dataclass(frozen=True)
class _Local:
    path: str  # relative, '/'-separated
    file: Path
    size: int
    mtime: float


def scan(src: Path, progress: SyncProgress | None = None) -> list[_Local]:
    """The regular files to push: `src` itself, or every file under it (symlinks skipped)."""
    try:
        st = src.stat()  # the source itself may be a symlink; what it holds is not followed
    except OSError as e:
        raise UsageError(f"{src}: cannot read source: {e.strerror}") from e
    if stat.S_ISREG(st.st_mode):
        return [_Local(src.name, src, st.st_size, st.st_mtime)]
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{src}: not a regular file or folder")
    out: list[_Local] = []

    def fail(e: OSError) -> None:
        raise UsageError(f"{e.filename}: cannot read: {e.strerror}") from e

    for dirpath, dirnames, filenames in os.walk(src, onerror=fail):
        dirnames.sort()
        for fn in sorted(filenames):
            p = Path(dirpath) / fn
            rel = p.relative_to(src).as_posix()
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError as e:
                raise UsageError(f"{p}: file name is not valid UTF-8") from e
            try:
                fst = p.lstat()
            except OSError as e:
                raise UsageError(f"{p}: cannot read: {e.strerror}") from e
            if not stat.S_ISREG(fst.st_mode):
                warn(progress, f"{p}: skipped (not a regular file)")
                continue
            out.append(_Local(rel, p, fst.st_size, fst.st_mtime))
    if any(f.path == MANIFEST_NAME for f in out):
        raise UsageError(f"{src / MANIFEST_NAME}: this name is reserved for seml's sync manifest")
    return out


def _file_digest(f: _Local) -> str:
    h = hashlib.sha256()
    try:
        with open(f.file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        raise StorageError(f"{f.file}: read failed: {e.strerror}") from e
    return h.hexdigest()


def push(
    src: Path,
    store: ObjectStore,
    cipher: Cipher,
    *,
    transfers: int = 4,
    progress: SyncProgress | None = None,
    state_dir: Path | None = None,
    now: datetime | None = None,
) -> PushResult:
    """Make `store` hold exactly the encrypted `src` tree plus a new, higher-versioned manifest.

    Files whose size and SHA-256 match an entry of the previous manifest or of an interrupted
    push's journal, and whose object is still stored at the right size, are not uploaded again.
    Objects of this key that are no longer in `src` are deleted; objects that do not decrypt
    under this key are left alone (with a warning).
    """
    if transfers < 1:
        raise UsageError("--transfers must be at least 1")
    local = scan(Path(src), progress)
    keys = ManifestKeys.from_cipher(cipher)
    state = SyncState(state_dir)
    rid = remote_id(store)
    manifest_obj = cipher.encrypt_name(MANIFEST_NAME)
    listing = {o.name: o.size for o in store.list()}

    prev: Manifest | None = None
    if manifest_obj in listing:
        found = read_manifest(store, cipher, keys)
        prev = found[0] if found else None
    seen = state.last_seen(rid, keys.key_id)
    if prev is not None and seen is not None and prev.version < seen[0]:
        raise IntegrityError(
            f"{store.url}{MANIFEST_NAME}: manifest version {prev.version} is older than version "
            f"{seen[0]} this machine already saw: the remote was rolled back; refusing to push"
        )
    known: dict[str, FileEntry] = prev.by_path() if prev else {}
    known.update(state.journal(rid, keys.key_id))

    result = PushResult(version=0)
    entries: dict[str, FileEntry] = {}
    lock = threading.Lock()
    journal = state.journal_writer(rid, keys.key_id)
    total = sum(f.size for f in local)
    if progress is not None:
        progress.start("push", len(local), total)
    done_ok = False
    try:
        work = [(f, cipher.encrypt_name(f.path)) for f in local]
        run_all(
            [
                partial(
                    _push_one,
                    f,
                    obj,
                    store,
                    cipher,
                    known,
                    listing,
                    journal,
                    entries,
                    result,
                    lock,
                    progress,
                )
                for f, obj in work
            ],
            transfers,
            "seml-push",
        )

        wanted = {entries[p].object for p in entries} | {manifest_obj}
        for name in sorted(set(listing) - wanted):
            try:
                plain = cipher.decrypt_name(name)
            except SemlError:
                warn(progress, f"{store.url}{name}: left alone (not encrypted with this key)")
                continue
            store.delete(name)
            result.deleted.append(plain)
            if progress is not None:
                progress.file_done(plain, "deleted")

        base = max(prev.version if prev else 0, seen[0] if seen else 0)
        manifest = Manifest(
            version=base + 1,
            key_id=keys.key_id,
            created=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
            files=tuple(entries[f.path] for f in local),
        )
        sealed = seal_manifest(manifest, keys)
        store.put(manifest_obj, cipher.encrypting_reader(io.BytesIO(sealed)))
        state.record(rid, keys.key_id, manifest.version, manifest_digest(sealed))
        result.version = manifest.version
        result.digest = manifest_digest(sealed)
        result.files = manifest.files
        done_ok = True
        return result
    finally:
        journal.close(remove=done_ok)
        if progress is not None:
            progress.finish()


def _push_one(
    f: _Local,
    obj: str,
    store: ObjectStore,
    cipher: Cipher,
    known: dict[str, FileEntry],
    listing: dict[str, int],
    journal: JournalWriter,
    entries: dict[str, FileEntry],
    result: PushResult,
    lock: threading.Lock,
    progress: SyncProgress | None,
) -> None:
    prior = known.get(f.path)
    if (
        prior is not None
        and prior.size == f.size
        and prior.object == obj
        and listing.get(obj) == prior.object_size == cipher.encrypted_size(f.size)
        and _file_digest(f) == prior.sha256
    ):
        with lock:
            entries[f.path] = prior
            result.skipped.append(f.path)
        if progress is not None:
            progress.advance(f.size)
            progress.file_done(f.path, "unchanged")
        return
    try:
        fh = open(f.file, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise StorageError(f"{f.file}: cannot open: {e.strerror}") from e
    with fh:
        reader = HashingReader(fh, str(f.file), progress)
        stored = store.put(obj, cipher.encrypting_reader(reader), mtime=f.mtime)  # type: ignore[arg-type]
    if stored != cipher.encrypted_size(reader.size):
        raise StorageError(
            f"{store.url}{obj} ({f.path}): stored {stored} bytes, expected "
            f"{cipher.encrypted_size(reader.size)}"
        )
    entry = FileEntry(
        path=f.path,
        size=reader.size,
        sha256=reader.hexdigest(),
        object=obj,
        object_size=stored,
        mtime=f.mtime,
    )
    journal.append(entry)
    with lock:
        entries[f.path] = entry
        result.uploaded.append(f.path)
        result.bytes_uploaded += reader.size
    if progress is not None:
        progress.file_done(f.path, "uploaded")
