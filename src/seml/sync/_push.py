"""`push`: encrypt a local file or folder into object storage as an rclone crypt remote would,
then write the authenticated manifest.

A push never destroys the version a remote holds before the new one is complete:

1. a push marker (`.seml-push`) is written: a push started on top of version N;
2. files the current manifest does not list go up under their final names; new contents of
   files it does list go up under staging names (`.seml-staging/<push id>/<path>`), so the
   objects version N needs stay untouched;
3. the new manifest (version N+1) is written: the switch. Its entries name each file's final
   object and, for staged ones, where the content is until step 4;
4. staged objects are moved to their final names (a rename on file://, a server-side copy on
   S3), objects no version needs are deleted, and the marker goes.

Killed before 3, a pull gets version N (the marker explains the extra objects); after it, version
N+1 (from staged objects where they are still staged). The next push finishes what a killed
one left: it first moves staged objects, and reuses what was uploaded (the journal).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import secrets
import stat
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from seml.crypt import Cipher
from seml.errors import IntegrityError, SemlError, StorageError, UsageError
from seml.store import FileStore, ObjectStore
from seml.sync._common import (
    HashingReader,
    SyncProgress,
    manifest_digest,
    read_manifest,
    remote_id,
    run_all,
    warn,
)
from seml.sync._manifest import (
    MANIFEST_NAME,
    MARKER_NAME,
    STAGING_DIR,
    FileEntry,
    Manifest,
    ManifestKeys,
    PushMarker,
    is_reserved,
    seal_manifest,
    seal_marker,
)
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
    for f in out:
        if is_reserved(f.path):
            raise UsageError(f"{f.file}: this name is reserved for seml's sync records")
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
    """Make `store` hold exactly the encrypted `src` tree plus a new, higher-versioned manifest
    (see the module for the order of writes that keeps the previous version intact).

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
    marker_obj = cipher.encrypt_name(MARKER_NAME)
    listing = {o.name: o.size for o in store.list()}
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")

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
    if prev is not None:
        _finish_moves(store, prev, listing, progress)
    base = max(prev.version if prev else 0, seen[0] if seen else 0)
    push_id = secrets.token_hex(8)
    marker = PushMarker(push_id, keys.key_id, store.url, prev.version if prev else 0, stamp)
    store.put(marker_obj, cipher.encrypting_reader(io.BytesIO(seal_marker(marker, keys))))

    current: dict[str, FileEntry] = prev.by_path() if prev else {}
    plan = _Plan(cipher, push_id, current, state.journal(rid, keys.key_id), listing)
    result = PushResult(version=0)
    entries: dict[str, FileEntry] = {}
    lock = threading.Lock()
    journal = state.journal_writer(rid, keys.key_id)
    total = sum(f.size for f in local)
    if progress is not None:
        progress.start("push", len(local), total)
    done_ok = False
    try:
        run_all(
            [
                partial(_push_one, f, plan, store, journal, entries, result, lock, progress)
                for f in local
            ],
            transfers,
            "seml-push",
        )
        manifest = Manifest(
            version=base + 1,
            key_id=keys.key_id,
            created=stamp,
            files=tuple(entries[f.path] for f in local),
            remote=store.url,
        )
        sealed = seal_manifest(manifest, keys)
        store.put(manifest_obj, cipher.encrypting_reader(io.BytesIO(sealed)))  # the switch
        state.record(rid, keys.key_id, manifest.version, manifest_digest(sealed))
        result.version = manifest.version
        result.digest = manifest_digest(sealed)
        result.files = manifest.files
        _finish_moves(store, manifest, listing, progress)
        wanted = {e.object for e in manifest.files} | {manifest_obj, marker_obj}
        for name in sorted(set(listing) - wanted):
            try:
                plain = cipher.decrypt_name(name)
            except SemlError:
                warn(progress, f"{store.url}{name}: left alone (not encrypted with this key)")
                continue
            store.delete(name)
            if not is_reserved(plain):
                result.deleted.append(plain)
                if progress is not None:
                    progress.file_done(plain, "deleted")
        store.delete(marker_obj)
        done_ok = True
        return result
    finally:
        journal.close(remove=done_ok)
        if progress is not None:
            progress.finish()


def _finish_moves(
    store: ObjectStore, manifest: Manifest, listing: dict[str, int], progress: SyncProgress | None
) -> None:
    """Move each staged object the manifest names, if still there, to its final name."""
    for entry in manifest.files:
        if entry.staged is not None and entry.staged in listing:
            store.move(entry.staged, entry.object)
            listing[entry.object] = listing.pop(entry.staged)
            if progress is not None:
                progress.file_done(entry.path, "moved into place")


class _Plan:
    """Where each file goes and what was already uploaded (shared by the push's workers)."""

    def __init__(
        self,
        cipher: Cipher,
        push_id: str,
        current: dict[str, FileEntry],
        journal: dict[str, FileEntry],
        listing: dict[str, int],
    ) -> None:
        self.cipher = cipher
        self._push_id = push_id
        self._current = current
        self._journal = journal
        self._listing = listing

    def staging(self, path: str) -> str | None:
        """The staging object for `path`, or None: a file the current version lists gets its
        new content beside, not over, the object that version still needs."""
        if path not in self._current:
            return None
        return self.cipher.encrypt_name(f"{STAGING_DIR}/{self._push_id}/{path}")

    def reusable(self, f: _Local, final: str) -> FileEntry | None:
        """The stored entry still holding exactly this file's content, if any (hashes the file
        only when size and stored object fit); `final` is its encrypted name."""
        expected = self.cipher.encrypted_size(f.size)
        candidates = []
        cur = self._current.get(f.path)
        if cur is not None and cur.object == final:
            # Its staged object, if it had one, was moved into place when this push began.
            candidates.append((dataclasses.replace(cur, staged=None), final))
        done = self._journal.get(f.path)
        if done is not None and done.object == final:
            # An interrupted push's upload: staged, or at a final name no version needs.
            if done.staged is not None:
                candidates.append((done, done.staged))
            elif f.path not in self._current:
                candidates.append((done, final))
        fits = [
            e
            for e, obj in candidates
            if e.size == f.size and self._listing.get(obj) == e.object_size == expected
        ]
        if not fits:
            return None
        digest = _file_digest(f)
        return next((e for e in fits if e.sha256 == digest), None)

    def uploaded(self, obj: str, size: int) -> None:
        """Record a new object (the moves after the switch look for staged ones here)."""
        self._listing[obj] = size


def _push_one(
    f: _Local,
    plan: _Plan,
    store: ObjectStore,
    journal: JournalWriter,
    entries: dict[str, FileEntry],
    result: PushResult,
    lock: threading.Lock,
    progress: SyncProgress | None,
) -> None:
    final = plan.cipher.encrypt_name(f.path)
    prior = plan.reusable(f, final)
    if prior is not None:
        with lock:
            entries[f.path] = prior
            result.skipped.append(f.path)
        if progress is not None:
            progress.advance(f.size)
            progress.file_done(f.path, "unchanged")
        return
    staged = plan.staging(f.path)
    obj = staged or final
    cipher = plan.cipher
    try:
        fh = open(f.file, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise StorageError(f"{f.file}: cannot open: {e.strerror}") from e
    with fh:
        reader = HashingReader(fh, str(f.file), progress)
        if isinstance(store, FileStore):
            # A local object from a local file: batches read, sealed and written at their
            # offsets in parallel, the plaintext hashed in order on the way (one read). Not
            # flushed (see FileStore), so no early write-back either.
            stored = store.put_with(
                obj,
                lambda out: cipher.encrypt_file(fh, out, sink=reader.update, writeback=False),
                mtime=f.mtime,
            )
        else:
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
        object=final,
        object_size=stored,
        mtime=f.mtime,
        staged=staged,
    )
    journal.append(entry)
    with lock:
        plan.uploaded(obj, stored)
        entries[f.path] = entry
        result.uploaded.append(f.path)
        result.bytes_uploaded += reader.size
    if progress is not None:
        progress.file_done(f.path, "uploaded")
