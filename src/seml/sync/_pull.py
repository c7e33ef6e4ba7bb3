"""`pull`: fetch, decrypt and verify an encrypted tree against its manifest, then place it.

Every file is decrypted into a staging folder inside the destination and checked (chunk
authentication, size, SHA-256 against the manifest) before any file is moved to its final name,
so a refused or interrupted pull leaves nothing under a final name. Large remote objects come
in ranged parts fetched in parallel (see `_parts`).

The destination is written through `seml._fs.Folder`: plaintext never goes through a symbolic
link, and every folder holding it is 0700. A pull goes into a new or empty folder; into a
non-empty one only with `mirror`, which makes it exactly the remote's tree (like `rclone sync`:
local files the remote does not have are deleted, after everything was verified and placed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from seml._fs import Folder, sync_filesystem
from seml.crypt import Cipher
from seml.errors import IntegrityError, SemlError, StorageError, UsageError
from seml.store import FileStore, ObjectStore
from seml.sync._common import (
    HashingWriter,
    SyncProgress,
    manifest_digest,
    read_manifest,
    read_marker,
    remote_id,
    run_all,
    warn,
)
from seml.sync._manifest import MANIFEST_NAME, MARKER_NAME, FileEntry, ManifestKeys, is_reserved
from seml.sync._parts import PART_BLOCKS, SplitFile, part_count
from seml.sync._remote import check_remote
from seml.sync._state import SyncState

__all__ = ["PullResult", "pull"]

_STAGING_PREFIX = ".seml-pull-"
LOCAL_PART_BLOCKS = 0  # 0: objects of a file:// store are fetched whole
_STAGING_BUCKETS = 16


@dataclass
class PullResult:
    version: int | None
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    verified: bool = True
    replaced: list[str] = field(default_factory=list)  # local files a mirror pull overwrote
    deleted: list[str] = field(default_factory=list)  # local files a mirror pull removed
    dry_run: bool = False
    digest: str | None = None  # sha256 of the authenticated manifest (as the sync state has it)


def _safe_path(path: str, where: str) -> str:
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or "\x00" in path
        or "\\" in path
    ):
        raise IntegrityError(f"{where}: refusing unsafe file name {path!r}")
    if parts[0].startswith(_STAGING_PREFIX) or is_reserved(path):
        raise IntegrityError(f"{where}: refusing file name {path!r}, reserved for seml")
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
    mirror: bool = False,
    dry_run: bool = False,
    pushed_to: str | None = None,
    progress: SyncProgress | None = None,
    expect_digest: str | None = None,
) -> PullResult:
    """Pull the tree in `store` into folder `dst` (created, 0700, if missing).

    With a manifest (the default) every stored object must be exactly what the manifest lists;
    the manifest must name this remote (or `pushed_to`, for a tree moved on purpose), be at
    least `min_version` and not older than the newest this machine already saw. `no_manifest`
    pulls a tree rclone wrote, with chunk authentication only. `dst` must be empty unless
    `mirror`; `dry_run` verifies the manifest and reports what would change, writing nothing.
    With `expect_digest` the manifest must be exactly that one (its SHA-256, hex).
    """
    if transfers < 1:
        raise UsageError("--transfers must be at least 1")
    if no_manifest and expect_digest is not None:
        raise UsageError("an expected manifest cannot be checked without a manifest")
    keys = ManifestKeys.from_cipher(cipher)
    state = SyncState(state_dir)
    rid = remote_id(store)
    listing = {o.name: o.size for o in store.list()}
    version: int | None = None
    sealed: bytes | None = None
    if no_manifest:
        plan = _unverified_plan(store, cipher, listing, progress)
    else:
        plan, version, sealed = _verified_plan(
            store, cipher, keys, listing, state, rid, min_version, pushed_to, progress
        )
        if expect_digest is not None and manifest_digest(sealed) != expect_digest:
            raise IntegrityError(
                f"{store.url}{MANIFEST_NAME}: manifest version {version} "
                f"({manifest_digest(sealed)[:16]}...) is not the expected manifest "
                f"({expect_digest[:16]}...)"
            )
    for entry in plan:
        _safe_path(entry.path, store.url)
    result = _fetch_all(
        store,
        Path(dst),
        cipher,
        plan,
        transfers=transfers,
        progress=progress,
        verify=not no_manifest,
        mirror=mirror,
        dry_run=dry_run,
    )
    result.version = version
    if not no_manifest and sealed is not None:
        result.digest = manifest_digest(sealed)
    if not dry_run and not no_manifest and version is not None and sealed is not None:
        state.record(rid, keys.key_id, version, manifest_digest(sealed))
    return result


def _unverified_plan(
    store: ObjectStore, cipher: Cipher, listing: dict[str, int], progress: SyncProgress | None
) -> list[FileEntry]:
    warn(
        progress,
        f"pulling {store.url} WITHOUT a manifest (--no-manifest). Each chunk is "
        "still authenticated, but a file cut at a chunk boundary, swapped, deleted, added "
        "or rolled back to an older version is NOT detected.",
    )
    check_remote(store, listing, cipher)
    plan = []
    for name, size in sorted(listing.items()):
        try:
            path = cipher.decrypt_name(name)
            plain_size = cipher.decrypted_size(size)
        except SemlError:
            warn(progress, f"{store.url}{name}: skipped (not encrypted with this key)")
            continue
        if not is_reserved(path):
            plan.append(FileEntry(path, plain_size, "", name, size))
    if not plan:
        warn(progress, f"{store.url}: no files encrypted with this key were found")
    return plan


def _verified_plan(
    store: ObjectStore,
    cipher: Cipher,
    keys: ManifestKeys,
    listing: dict[str, int],
    state: SyncState,
    rid: str,
    min_version: int | None,
    pushed_to: str | None,
    progress: SyncProgress | None,
) -> tuple[list[FileEntry], int, bytes]:
    """The files to fetch, each from the object that holds its content now, after checking the
    manifest (authenticity, remote, version) and the listing against it."""
    manifest_obj = cipher.encrypt_name(MANIFEST_NAME)
    marker_obj = cipher.encrypt_name(MARKER_NAME)
    marker = read_marker(store, cipher, keys) if marker_obj in listing else None
    found = read_manifest(store, cipher, keys) if manifest_obj in listing else None
    if found is None:
        check_remote(store, listing, cipher)
        if marker is not None:
            raise StorageError(
                f"{store.url}: a push started at {marker.started} was interrupted before its "
                "first version was complete, so there is nothing to pull yet: run that push "
                "again to finish it"
            )
        raise IntegrityError(
            f"{store.url}: files encrypted with this key but no seml manifest "
            f"({MANIFEST_NAME}): written by rclone or another tool, not seml push. Refusing "
            "to pull unverified data (--no-manifest pulls it with chunk authentication only)"
        )
    manifest, sealed = found
    where = f"{store.url}{MANIFEST_NAME}"
    if manifest.remote not in (store.url, pushed_to):
        raise IntegrityError(
            f"{where}: this manifest was pushed to {manifest.remote}, not {store.url}: the tree "
            f"was moved or swapped. If you copied it here yourself, pull with --pushed-to "
            f"{manifest.remote}"
        )
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
    if min_version is not None and manifest.version < min_version:
        raise IntegrityError(
            f"{where}: manifest version {manifest.version} is older than --min-version "
            f"{min_version}"
        )
    problems: list[str] = []
    plan: list[FileEntry] = []
    referenced = {manifest_obj, marker_obj}
    for entry in manifest.files:
        _safe_path(entry.path, where)
        referenced.add(entry.object)
        source = entry.object
        if entry.staged is not None:
            referenced.add(entry.staged)
            if entry.staged in listing:  # the push that wrote it has not moved it yet
                source = entry.staged
        stored = listing.get(source)
        if stored is None:
            problems.append(f"{entry.path}: missing from the remote (deleted)")
        elif stored != entry.object_size:
            problems.append(
                f"{entry.path}: stored object is {stored} bytes, the manifest says "
                f"{entry.object_size} (truncated or replaced)"
            )
        else:
            plan.append(dataclasses.replace(entry, object=source, staged=None))
    added = []
    for name in sorted(set(listing) - referenced):
        try:
            added.append(cipher.decrypt_name(name))
        except SemlError:
            warn(progress, f"{store.url}{name}: ignored (not encrypted with this key)")
    if marker is not None:
        done = marker.base_version < manifest.version
        warn(
            progress,
            f"a push to {store.url} started at {marker.started} "
            + (
                f"did not finish cleaning up; its version {manifest.version} is complete"
                if done
                else f"was interrupted or is still running; version {manifest.version} is "
                "the last complete one"
            )
            + " and is what this pull gets. Run that push again to finish it"
            + (f" (ignoring {len(added)} object(s) not in this version)" if added else ""),
        )
    else:
        problems += [f"{p}: not in the manifest (added behind its back)" for p in added]
    if problems:
        raise _refuse(problems, store)
    return plan, manifest.version, sealed


# -- the destination ------------------------------------------------------------------------


@dataclass
class _Local:
    """What the destination holds, outside staging folders."""

    files: set[str] = field(default_factory=set)  # files, links and anything not a folder
    folders: set[str] = field(default_factory=set)
    staging: list[str] = field(default_factory=list)


def _survey(folder: Folder | None) -> _Local:
    local = _Local()
    if folder is None:
        return local
    for rel, is_dir in folder.walk():
        top = rel.split("/", 1)[0]
        if top.startswith(_STAGING_PREFIX):
            if rel == top:
                local.staging.append(rel)
            continue
        (local.folders if is_dir else local.files).add(rel)
    return local


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _check_destination(
    folder: Folder | None, dst: Path, plan: list[FileEntry], local: _Local, mirror: bool
) -> tuple[list[str], list[str]]:
    """(local files a pull would replace, local entries a mirror pull would delete); refuse a
    non-empty destination without `mirror`, and anything a pull cannot safely write over."""
    wanted = {e.path for e in plan}
    needed = {p for e in plan for p in _parents(e.path)}
    replaced = sorted(wanted & local.files)
    deleted = sorted((local.files - wanted) | (local.folders - needed))
    if (local.files or local.folders) and not mirror:
        raise UsageError(
            f"{dst} is not empty: a pull would overwrite {len(replaced)} local files and keep "
            f"{len(deleted)} entries the remote does not have. Pull into a new or empty folder, "
            "or add --mirror to make it exactly the remote (--dry-run shows the changes first)"
        )
    for path in sorted(wanted & local.folders):
        raise UsageError(f"{dst / path}: is a folder, cannot pull file {path} over it")
    if folder is not None:
        for rel in sorted(needed & (local.files | local.folders)):
            folder.check_folder(rel)  # a link or a file where a folder must be: refused
    return replaced, deleted


def _open_destination(dst: Path, dry_run: bool) -> Folder | None:
    if dry_run:
        if not dst.exists():
            return None
        return Folder.open(dst, create=False)
    return Folder.open(dst, private=True)


def _fetch_all(
    store: ObjectStore,
    dst: Path,
    cipher: Cipher,
    plan: list[FileEntry],
    *,
    transfers: int,
    progress: SyncProgress | None,
    verify: bool,
    mirror: bool,
    dry_run: bool,
) -> PullResult:
    result = PullResult(
        version=None,
        files=[e.path for e in plan],
        bytes=sum(e.size for e in plan),
        verified=verify,
        dry_run=dry_run,
    )
    folder = _open_destination(dst, dry_run)
    with folder if folder is not None else contextlib.nullcontext():
        if folder is not None:
            _lock(folder, dst)
        local = _survey(folder)
        result.replaced, deleted = _check_destination(folder, dst, plan, local, mirror)
        result.deleted = deleted if mirror else []
        if dry_run or folder is None:
            return result
        for rel in local.staging:  # what a pull killed before it could clean up left
            folder.remove_tree(rel)
        _fetch_into(folder, store, cipher, plan, transfers, progress, verify)
        if mirror:
            # Deepest first, so a folder is empty by the time it is removed.
            for rel in sorted(deleted, key=lambda r: (-r.count("/"), r)):
                folder.remove(rel)
            folder.fsync(sorted({r.rpartition("/")[0] for r in deleted}))
            if progress is not None:
                for rel in deleted:
                    progress.file_done(rel, "deleted (not in the remote)")
    return result


def _lock(folder: Folder, dst: Path) -> None:
    """One pull at a time into a folder (it removes what earlier pulls left in staging)."""
    try:
        fcntl.flock(folder.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StorageError(f"{dst}: another pull into this folder is running") from None
    except OSError:
        pass  # a filesystem without locks: nothing to serialise with


def _fetch_into(
    folder: Folder,
    store: ObjectStore,
    cipher: Cipher,
    plan: list[FileEntry],
    transfers: int,
    progress: SyncProgress | None,
    verify: bool,
) -> None:
    staging = f"{_STAGING_PREFIX}{secrets.token_hex(6)}"
    # Files are spread over a few staging subfolders: creating a file holds its folder's
    # lock while the filesystem looks for a free inode, so workers creating in one folder
    # wait for each other (a third of a many-small-files pull on ext4).
    buckets = max(1, min(_STAGING_BUCKETS, len(plan)))

    def tmp(i: int) -> str:
        return f"{staging}/{i % buckets}/{i}"

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
        for b in range(buckets):
            folder.make_folders(f"{staging}/{b}")
        for i, item in enumerate(plan):
            create = partial(folder.create, tmp(i), mode=0o600, read=True)
            label = str(folder.path / tmp(i))
            if part_blocks and part_count(item.object_size, part_blocks) > 1:
                sf = SplitFile(
                    store, cipher, item, create, label, verify, problems, lock, progress,
                    part_blocks,
                )  # fmt: skip
                sf.open()
                split.append(sf)
                tasks.extend(partial(sf.fetch_part, k) for k in range(sf.parts))
            else:
                tasks.append(
                    partial(
                        _fetch_one, store, cipher, item, create, verify, problems, lock, progress
                    )
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
        sync_filesystem(folder.fd)
        for i, entry in enumerate(plan):
            folder.rename(tmp(i), entry.path)
        folder.fsync(sorted({e.path.rpartition("/")[0] for e in plan}))
    finally:
        for sf in split:
            sf.close()
        folder.remove_tree(staging)
        if progress is not None:
            progress.finish()


def _fetch_one(
    store: ObjectStore,
    cipher: Cipher,
    entry: FileEntry,
    create: Callable[[], int],
    verify: bool,
    problems: list[str],
    lock: threading.Lock,
    progress: SyncProgress | None,
) -> None:
    with open(create(), "wb") as out:
        writer = HashingWriter(out, entry.path, progress)
        try:
            if isinstance(store, FileStore):
                # A whole local file: batches decrypted in parallel and written at their
                # offsets (directly to the disk when large), hashed in order on the way.
                with store.open_file(entry.object) as src:
                    cipher.decrypt_file(src, out, name=entry.path, sink=writer.update, direct=True)
            else:
                with store.open(entry.object) as src:
                    cipher.decrypt_stream(src, writer, name=entry.path)  # type: ignore[arg-type]
        except IntegrityError as e:
            with lock:
                problems.append(str(e))
            return
        out.flush()
        if entry.mtime:
            os.utime(out.fileno(), (entry.mtime, entry.mtime))
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
