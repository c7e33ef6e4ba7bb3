"""`pull`: fetch, decrypt and verify an encrypted tree against its manifest, then place it.

Every file is decrypted into a staging folder inside the destination and checked (chunk
authentication, size, SHA-256 against the manifest) before any file is moved to its final name,
so a refused or interrupted pull leaves nothing under a final name. Large remote objects come
in ranged parts fetched in parallel (see `_parts`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

from seml._fs import fsync_dirs, place, sync_filesystem
from seml.crypt import Cipher
from seml.errors import IntegrityError, SemlError, StorageError, UsageError
from seml.store import FileStore, ObjectStore
from seml.sync._common import (
    HashingWriter,
    SyncProgress,
    manifest_digest,
    read_manifest,
    remote_id,
    run_all,
    warn,
)
from seml.sync._manifest import MANIFEST_NAME, FileEntry, ManifestKeys
from seml.sync._parts import PART_BLOCKS, SplitFile, part_count
from seml.sync._state import SyncState

__all__ = ["PullResult", "pull"]

_STAGING_PREFIX = ".seml-pull-"
LOCAL_PART_BLOCKS = 0  # 0: objects of a file:// store are fetched whole
_STAGING_BUCKETS = 16


def _staged(staging: Path, i: int, buckets: int) -> Path:
    return staging / str(i % buckets) / str(i)


@dataclass
class PullResult:
    version: int | None
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    verified: bool = True
    digest: str | None = None  # sha256 of the authenticated manifest (as the sync state has it)


def _safe_path(path: str, where: str) -> str:
    p = PurePosixPath(path)
    if (
        not path
        or p.is_absolute()
        or any(part in ("", ".", "..") for part in path.split("/"))
        or "\x00" in path
        or "\\" in path
    ):
        raise IntegrityError(f"{where}: refusing unsafe file name {path!r}")
    return path


def _refuse(problems: list[str], store: ObjectStore) -> IntegrityError:
    shown = problems[:20]
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    return IntegrityError(
        f"pull from {store.url} refused, nothing was written:\n  " + "\n  ".join(shown) + more
    )


def pull(
    store: ObjectStore,
    dst: Path,
    cipher: Cipher,
    *,
    transfers: int = 4,
    min_version: int | None = None,
    state_dir: Path | None = None,
    no_manifest: bool = False,
    progress: SyncProgress | None = None,
    expect_digest: str | None = None,
) -> PullResult:
    """Pull the tree in `store` into folder `dst` (created if missing).

    With a manifest (the default) every stored object must be exactly what the manifest lists;
    the manifest must be at least `min_version` and not older than the newest this machine
    already saw, and, with `expect_digest`, be exactly that manifest (its SHA-256, hex).
    `no_manifest` pulls a tree rclone wrote, with chunk authentication only.
    """
    if transfers < 1:
        raise UsageError("--transfers must be at least 1")
    if no_manifest and expect_digest is not None:
        raise UsageError("an expected manifest cannot be checked without a manifest")
    keys = ManifestKeys.from_cipher(cipher)
    state = SyncState(state_dir)
    rid = remote_id(store)
    manifest_obj = cipher.encrypt_name(MANIFEST_NAME)
    listing = {o.name: o.size for o in store.list()}
    problems: list[str] = []
    plan: list[FileEntry] = []
    version: int | None = None
    sealed: bytes | None = None

    if no_manifest:
        warn(
            progress,
            f"pulling {store.url} WITHOUT a manifest (--no-manifest). Each chunk is "
            "still authenticated, but a file cut at a chunk boundary, swapped, deleted, added "
            "or rolled back to an older version is NOT detected.",
        )
        for name, size in sorted(listing.items()):
            if name == manifest_obj:
                continue
            try:
                path = cipher.decrypt_name(name)
                plain_size = cipher.decrypted_size(size)
            except SemlError:
                warn(progress, f"{store.url}{name}: skipped (not encrypted with this key)")
                continue
            plan.append(FileEntry(path, plain_size, "", name, size))
        if not plan:
            warn(progress, f"{store.url}: no files encrypted with this key were found")
    else:
        found = read_manifest(store, cipher, keys) if manifest_obj in listing else None
        if found is None:
            raise IntegrityError(
                f"{store.url}: no seml manifest ({MANIFEST_NAME}) under this key; refusing to "
                "pull unverified data (use --no-manifest for a tree rclone wrote, which warns)"
            )
        manifest, sealed = found
        version = manifest.version
        where = f"{store.url}{MANIFEST_NAME}"
        seen = state.last_seen(rid, keys.key_id)
        if seen is not None and manifest.version < seen[0]:
            raise IntegrityError(
                f"{where}: manifest version {manifest.version} is older than version {seen[0]} "
                "this machine already pulled: the remote was rolled back"
            )
        if seen is not None and manifest.version == seen[0] and manifest_digest(sealed) != seen[1]:
            raise IntegrityError(
                f"{where}: manifest version {manifest.version} differs from the version "
                f"{seen[0]} this machine already pulled: the remote forked or was replayed"
            )
        if expect_digest is not None and manifest_digest(sealed) != expect_digest:
            raise IntegrityError(
                f"{where}: manifest version {manifest.version} "
                f"({manifest_digest(sealed)[:16]}...) is not the expected manifest "
                f"({expect_digest[:16]}...)"
            )
        if min_version is not None and manifest.version < min_version:
            raise IntegrityError(
                f"{where}: manifest version {manifest.version} is older than --min-version "
                f"{min_version}"
            )
        by_object: dict[str, FileEntry] = {}
        for entry in manifest.files:
            _safe_path(entry.path, where)
            by_object[entry.object] = entry
            stored = listing.get(entry.object)
            if stored is None:
                problems.append(f"{entry.path}: missing from the remote (deleted)")
            elif stored != entry.object_size:
                problems.append(
                    f"{entry.path}: stored object is {stored} bytes, the manifest says "
                    f"{entry.object_size} (truncated or replaced)"
                )
            else:
                plan.append(entry)
        for name in sorted(set(listing) - set(by_object) - {manifest_obj}):
            try:
                plain = cipher.decrypt_name(name)
            except SemlError:
                warn(progress, f"{store.url}{name}: ignored (not encrypted with this key)")
                continue
            problems.append(f"{plain}: not in the manifest (added behind its back)")
        if problems:
            raise _refuse(problems, store)

    for entry in plan:
        _safe_path(entry.path, store.url)
    return _fetch_all(
        store,
        dst,
        cipher,
        plan,
        transfers,
        progress,
        version,
        not no_manifest,
        state,
        rid,
        keys.key_id,
        sealed,
    )


def _fetch_all(
    store: ObjectStore,
    dst: Path,
    cipher: Cipher,
    plan: list[FileEntry],
    transfers: int,
    progress: SyncProgress | None,
    version: int | None,
    verify: bool,
    state: SyncState,
    rid: str,
    key_id: str,
    sealed: bytes | None,
) -> PullResult:
    dst = Path(dst)
    finals = [dst.joinpath(*e.path.split("/")) for e in plan]
    for entry, final in zip(plan, finals, strict=True):
        if final.is_dir():
            raise UsageError(f"{final}: is a folder, cannot pull file {entry.path} over it")
    try:
        dst.mkdir(parents=True, exist_ok=True)
        staging = dst / f"{_STAGING_PREFIX}{secrets.token_hex(6)}"
        staging.mkdir(mode=0o700)
        # Files are spread over a few staging subfolders: creating a file holds its folder's
        # lock while the filesystem looks for a free inode, so workers creating in one folder
        # wait for each other (a third of a many-small-files pull on ext4).
        buckets = min(_STAGING_BUCKETS, len(plan))
        for b in range(buckets):
            (staging / str(b)).mkdir(mode=0o700)
    except OSError as e:
        raise StorageError(f"{dst}: cannot create destination: {e.strerror}") from e
    problems: list[str] = []
    lock = threading.Lock()
    if progress is not None:
        progress.start("pull", len(plan), sum(e.size for e in plan))
    # A large remote object is fetched in ranged parts, each its own task, so one big file
    # keeps every worker and connection busy. Local files (CPU-bound already) and small
    # objects are fetched whole, hashing their plaintext on the way (no read-back).
    part_blocks = LOCAL_PART_BLOCKS if isinstance(store, FileStore) else PART_BLOCKS
    tasks: list[Callable[[], None]] = []
    split: list[SplitFile] = []
    try:
        for i, item in enumerate(plan):
            tmp = _staged(staging, i, buckets)
            if part_blocks and part_count(item.object_size, part_blocks) > 1:
                sf = SplitFile(
                    store, cipher, item, tmp, verify, problems, lock, progress, part_blocks
                )
                sf.open()
                split.append(sf)
                tasks.extend(partial(sf.fetch_part, k) for k in range(sf.parts))
            else:
                tasks.append(
                    partial(_fetch_one, store, cipher, item, tmp, verify, problems, lock, progress)
                )
        run_all(tasks, transfers, "seml-pull")
        for sf in split:
            sf.close()
        if problems:
            raise _refuse(sorted(problems), store)
        unverified = [sf.entry.path for sf in split if not sf.ok]
        if unverified:  # defensive: every part ran, so each file was verified or refused
            raise _refuse([f"{p}: not completely verified" for p in unverified], store)
        # Everything authenticated and matched: flushed to disk (all files in one go), and only
        # then do files get their final names; then the folders holding those names are flushed.
        sync_filesystem(staging)
        made: set[Path] = set()
        for i, (entry, final) in enumerate(zip(plan, finals, strict=True)):
            tmp = _staged(staging, i, buckets)
            try:
                if final.parent not in made:
                    final.parent.mkdir(parents=True, exist_ok=True)
                    made.add(final.parent)
                if entry.mtime:
                    os.utime(tmp, (entry.mtime, entry.mtime))
                place(tmp, final)
            except OSError as e:
                raise StorageError(f"{final}: cannot place pulled file: {e.strerror}") from e
        fsync_dirs(made)
        if verify and version is not None and sealed is not None:
            state.record(rid, key_id, version, manifest_digest(sealed))
    finally:
        for sf in split:
            sf.close()
        shutil.rmtree(staging, ignore_errors=True)
        if progress is not None:
            progress.finish()
    return PullResult(
        version=version,
        files=[e.path for e in plan],
        bytes=sum(e.size for e in plan),
        verified=verify,
        digest=manifest_digest(sealed) if verify and sealed is not None else None,
    )


def _fetch_one(
    store: ObjectStore,
    cipher: Cipher,
    entry: FileEntry,
    tmp: Path,
    verify: bool,
    problems: list[str],
    lock: threading.Lock,
    progress: SyncProgress | None,
) -> None:
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise StorageError(f"{tmp}: cannot create: {e.strerror}") from e
    with os.fdopen(fd, "wb") as out:
        writer = HashingWriter(out, entry.path, progress)
        try:
            with store.open(entry.object) as src:
                cipher.decrypt_stream(src, writer, name=entry.path)  # type: ignore[arg-type]
        except IntegrityError as e:
            with lock:
                problems.append(str(e))
            return
    problem = None
    if writer.size != entry.size:
        problem = f"{entry.path}: decrypted to {writer.size} bytes, expected {entry.size}"
    elif verify and writer.hexdigest() != entry.sha256:
        problem = (
            f"{entry.path}: content does not match the manifest's SHA-256 "
            "(swapped with another file or replaced)"
        )
    if problem:
        with lock:
            problems.append(problem)
    elif progress is not None:
        progress.file_done(entry.path, "verified" if verify else "decrypted")
