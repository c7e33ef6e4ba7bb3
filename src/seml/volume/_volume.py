"""`Volume`: an encrypted, integrity- and rollback-protected directory on disk.

Layout of a volume directory::

    VOLUME                    clear header: volume id, version, current generation (untrusted)
    g000000000007-1a2b3c4d/   the current generation: one encrypted object per file, named by
        MANIFEST              its encrypted path, and the sealed manifest
    .lock                     flock: readers share it, a sealer holds it alone

A seal writes the next generation into ``.staging-*``, fsyncs it, renames it to its generation
name, then atomically replaces ``VOLUME``; only then is the old generation deleted. A process
killed at any point leaves ``VOLUME`` naming a complete generation; whatever else it left is
removed on the next open.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from seml._fs import Folder, commit
from seml.crypt import Cipher, CryptOptions
from seml.errors import IntegrityError, SemlError, StorageError, UsageError
from seml.volume._chunks import ObjectReader, seal_object, unseal_object
from seml.volume._io import (
    HashingWriter,
    Identity,
    Syncer,
    file_identity,
    locked,
    map_in_order,
    remove_tree,
    write_all,
)
from seml.volume._layout import (
    HEADER_FILE,
    MANIFEST_FILE,
    PARTIAL_SUFFIX,
    STAGING_PREFIX,
    clean_leftovers,
    is_leftover,
    link_or_copy,
    scan_workspace,
    sha256_file,
)
from seml.volume._manifest import (
    Header,
    Manifest,
    VolumeFile,
    VolumeKeys,
    check_name,
    derive_keys,
    generation_name,
    open_manifest,
    seal_manifest,
)

__all__ = ["SealSource", "Volume"]

_BUFFER = 1 << 20
_FILE_WORKERS = 2  # files sealed or unsealed at a time (this is I/O and GIL-free crypto)
_COARSE_CLOCK = getattr(time, "CLOCK_REALTIME_COARSE", 5)  # what file times are taken from (Linux)
_TICK_WAIT = 0.05  # longest wait for that clock to pass the last unsealed file's times
_MAGIC_SIZE = 8  # rclone's "RCLONE\0\0"
_HEADER_SIZE = _MAGIC_SIZE + 24  # magic + the object's random nonce


@dataclass(frozen=True)
class SealSource:
    """One file for `Volume.seal_sources`: how to read it, and whether an old entry still holds."""

    path: str
    mode: int
    open: Callable[[], BinaryIO]
    unchanged: Callable[[VolumeFile], bool]
    same_as: VolumeFile | None = None  # an entry of the current version with this very content


class Volume:
    """An opened protected volume. Build one with `create` or `open`; the key stays inside."""

    def __init__(self, path: Path, keys: VolumeKeys, manifest: Manifest) -> None:
        self.path = path.absolute()  # a FUSE server may change its working directory
        self._keys = keys
        self._cipher = Cipher.from_keys(
            keys.data_key, keys.name_key, keys.name_tweak, CryptOptions()
        )
        self._manifest = manifest
        # Each workspace file's identity right after unseal (or seal): if it still matches at
        # seal time, it was not written since and its sealed object can be reused as is.
        self._unsealed: dict[str, Identity] = {}
        self._unsealed_into: Path | None = None

    def __repr__(self) -> str:
        return f"Volume({self.name!r}, path={str(self.path)!r}, version={self.version})"

    @property
    def name(self) -> str:
        return self._manifest.volume

    @property
    def version(self) -> int:
        return self._manifest.version

    @property
    def volume_id(self) -> str:
        return self._manifest.volume_id

    def files(self) -> list[VolumeFile]:
        return list(self._manifest.files)

    @property
    def _generation(self) -> Path:
        return self.path / self._manifest.generation

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, key: bytes, *, name: str) -> Volume:
        """Make an empty volume (version 0) at `path`, which must be absent or an empty dir."""
        check_name(name)
        try:
            path.mkdir(parents=True, exist_ok=True)
            # Leftovers of a create that was killed before its header was written are fine.
            if (path / HEADER_FILE).exists() or any(
                not is_leftover(child.name) for child in path.iterdir()
            ):
                raise UsageError(f"cannot create volume {name!r}: {path} is not empty")
        except OSError as e:
            raise StorageError(f"cannot create volume {name!r} at {path}: {e}") from e
        volume_id = secrets.token_hex(16)
        keys = derive_keys(key, volume_id)
        empty = Manifest(name, volume_id, 0, generation_name(0, secrets.token_hex(4)), ())
        volume = cls(path, keys, empty)
        with volume._guard("create"), locked(path, exclusive=True):
            clean_leftovers(path, keep=None)
            staging = path / f"{STAGING_PREFIX}{secrets.token_hex(4)}"
            staging.mkdir()
            volume._commit(staging, empty, previous=None)
        return volume

    @staticmethod
    def exists(path: Path) -> bool:
        """Whether `path` holds a volume (a header; a create killed early leaves none)."""
        return (path / HEADER_FILE).is_file()

    @classmethod
    def open(
        cls, path: Path, key: bytes, *, name: str, expected_version: int | None = None
    ) -> Volume:
        """Authenticate the volume's manifest and refuse another volume or a rolled-back one.

        `expected_version` is the latest version the attestation service knows of; an older
        volume on disk is a rollback (an old copy restored) and is refused.
        """
        check_name(name)
        if not (path / HEADER_FILE).is_file():
            raise UsageError(f"no protected volume at {path} (no {HEADER_FILE} file)")
        where = f"volume {name!r} at {path}"
        try:
            # Clean up after interrupted seals only when nobody else uses the volume (a mount
            # holds a shared lock for its lifetime; its scratch files must stay).
            with locked(path, exclusive=True, wait=False) as alone:
                header = Header.from_bytes((path / HEADER_FILE).read_bytes(), where=where)
                keys = derive_keys(key, header.volume_id)
                sealed = (path / header.generation / MANIFEST_FILE).read_bytes()
                manifest = open_manifest(sealed, keys, header, where=where)
                if alone:
                    clean_leftovers(path, keep=header.generation)
        except FileNotFoundError as e:
            raise IntegrityError(f"{where}: the current generation is missing: {e}") from e
        except OSError as e:
            raise StorageError(f"{where}: {e}") from e
        if manifest.volume != name:
            raise IntegrityError(f"{where} is volume {manifest.volume!r}, not {name!r}")
        if expected_version is not None and manifest.version < expected_version:
            raise IntegrityError(
                f"volume {name} rolled back: version {manifest.version} < {expected_version} "
                "known to the attestation service"
            )
        return cls(path, keys, manifest)

    # -- checking and reading ----------------------------------------------------------------

    def verify(self) -> None:
        """Check every file against the manifest: modified, truncated, added, deleted, swapped.

        Thorough: besides authenticating every chunk, recomputes each file's SHA-256.
        """
        with self._guard("verify"), locked(self.path, exclusive=False):
            self._check_object_set()
            for entry in self._manifest.files:
                with self._open_object(entry) as src:
                    sink = HashingWriter()
                    self._cipher.decrypt_stream(src, cast(BinaryIO, sink), name=self._label(entry))
                self._check_digest(entry, sink.size, sink.digest.hexdigest())

    def unseal(self, workspace: Path, *, thorough: bool = False) -> None:
        """Decrypt every file into `workspace` (made 0700, as is every folder in it), verifying
        each before it gets its final name; nothing is written through a symbolic link
        (`seml._fs.Folder`).

        Each object must carry the nonce the manifest pins, authenticate chunk by chunk and
        have the recorded size, which proves its content; `thorough` also recomputes SHA-256.
        On any failure, what this call wrote is removed and IntegrityError names the file.
        """
        written: list[str] = []  # appended to by the workers: removed on failure

        def unseal_one(entry: VolumeFile) -> tuple[str, Identity]:
            partial = f"{entry.path}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
            fd = folder.create(partial, mode=0o600, read=True)
            written.append(partial)
            with self._open_object(entry) as src, open(fd, "w+b", buffering=0) as raw:
                size, digest = unseal_object(
                    self._cipher,
                    self._keys.data_key,
                    src,
                    raw,
                    nonce=bytes.fromhex(entry.nonce),
                    size=entry.size,
                    thorough=thorough,
                    label=self._label(entry),
                )
                self._check_digest(entry, size, digest)
                os.fchmod(raw.fileno(), entry.mode & 0o777)
            folder.rename(partial, entry.path)
            written.append(entry.path)
            st = folder.lstat(entry.path)
            if st is None:  # pragma: no cover - renamed a moment ago
                raise StorageError(f"{workspace / entry.path} vanished while unsealing")
            return entry.path, file_identity(st)

        with Folder.open(workspace, private=True) as folder:
            try:
                with self._guard("unseal"), locked(self.path, exclusive=False):
                    self._check_object_set()
                    snapshot = dict(
                        map_in_order(unseal_one, self._manifest.files, workers=_FILE_WORKERS)
                    )
            except BaseException:
                for rel in written:
                    with contextlib.suppress(SemlError):
                        folder.remove(rel)
                raise
        if not _past_tick(snapshot.values()):
            snapshot = {}  # the clock did not move on: no identity is trusted, seal hashes
        self._unsealed, self._unsealed_into = snapshot, workspace.resolve()

    def unchanged_since_unseal(self, workspace: Path) -> bool:
        """Whether `workspace` holds exactly what `unseal` (or the last `seal`) left there: the
        same regular files, each with the identity (size, mtime, ctime, inode) and mode it had
        then. The kernel sets ctime on every change and no call sets it back, and `unseal` waits
        for the clock to pass the files' times, so a file written since has another identity.
        True means a seal would store the same content as the current version."""
        if self._unsealed_into != workspace.resolve():
            return False
        try:
            found = scan_workspace(workspace)
        except (UsageError, OSError):
            return False  # what `seal` refuses or fails on is not unchanged
        modes = {f.path: f.mode & 0o777 for f in self._manifest.files}
        return len(found) == len(self._unsealed) == len(modes) and all(
            self._unsealed.get(rel) == file_identity(st)
            and modes.get(rel) == stat.S_IMODE(st.st_mode)
            for rel, st in found
        )

    # -- sealing -----------------------------------------------------------------------------

    def seal(self, workspace: Path) -> int:
        """Encrypt everything under `workspace` as the next version; return that version.

        Crash-safe: until the header is replaced the old version stays current, and a killed
        seal leaves only leftovers the next open removes. Files unchanged since `unseal` (or
        with the same size and digest as before) reuse their sealed objects.
        """
        reuse_snapshots = self._unsealed_into == workspace.resolve()
        sources = []
        found = scan_workspace(workspace)
        for rel, st in found:
            file = workspace.joinpath(*rel.split("/"))
            sources.append(
                SealSource(
                    path=rel,
                    mode=stat.S_IMODE(st.st_mode),
                    open=functools.partial(_open_plain, file),
                    unchanged=functools.partial(
                        self._unchanged, source=file, st=st, trust_snapshot=reuse_snapshots
                    ),
                )
            )
        version = self.seal_sources(sources, workers=_FILE_WORKERS)
        # What was just sealed is what the scan saw (a file written since then has a new
        # ctime), so the next seal of this workspace can reuse objects without hashing.
        self._unsealed = {rel: file_identity(st) for rel, st in found}
        if not _past_tick(self._unsealed.values()):
            self._unsealed = {}
        self._unsealed_into = workspace.resolve()
        return version

    def seal_sources(self, sources: Iterable[SealSource], *, workers: int = 1) -> int:
        """Seal the given files as the next version (what `seal` and the FUSE mount use).

        `workers` files are encrypted at a time (each in parallel batches already): more than
        one pays off for many small files, whose fixed costs then overlap."""
        with self._guard("seal"), locked(self.path, exclusive=True):
            current = self._current_header()
            if current != self._manifest.header:
                raise IntegrityError(
                    f"volume {self.name!r} at {self.path} changed since it was opened "
                    f"(now version {current.version}); open it again"
                )
            staging = self.path / f"{STAGING_PREFIX}{secrets.token_hex(4)}"
            staging.mkdir()
            try:
                return self._seal_into(staging, sources, self.version + 1, workers=workers)
            except BaseException:
                remove_tree(staging)
                raise

    def _seal_into(
        self, staging: Path, sources: Iterable[SealSource], version: int, *, workers: int
    ) -> int:
        """Fill `staging` with the new version's objects and manifest, then commit it."""
        previous = {f.path: f for f in self._manifest.files}
        ordered = sorted(sources, key=lambda s: s.path)
        with Syncer() as syncer:

            def seal_one(source: SealSource) -> VolumeFile:
                return self._seal_one(source, staging, previous.get(source.path), syncer)

            entries = map_in_order(seal_one, ordered, workers=workers)
            syncer.wait()  # every new object is durable before the manifest names it
        manifest = Manifest(
            self.name,
            self.volume_id,
            version,
            generation_name(version, secrets.token_hex(4)),
            tuple(entries),
        )
        self._commit(staging, manifest, previous=self._manifest.generation)
        return version

    def _commit(self, staging: Path, manifest: Manifest, *, previous: str | None) -> None:
        """Make `staging` (with its objects) the volume's current generation, atomically."""
        tmp = self.path / f"{HEADER_FILE}.tmp"
        # Independent writes, flushed together: the manifest, the staging directories (with
        # their entries) and the next header (a leftover, unused until the rename below).
        with Syncer() as syncer:
            syncer.submit(_write_new(staging / MANIFEST_FILE, seal_manifest(manifest, self._keys)))
            syncer.submit(_write_new(tmp, manifest.header.to_bytes()))
            for root, _dirs, _files in os.walk(staging):
                syncer.submit(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            syncer.wait()
        commit(staging, self.path / manifest.generation, synced=True)
        commit(tmp, self.path / HEADER_FILE, synced=True)
        self._manifest = manifest
        if previous is not None:
            remove_tree(self.path / previous)

    def _seal_one(
        self,
        source: SealSource,
        staging: Path,
        old: VolumeFile | None,
        syncer: Syncer,
    ) -> VolumeFile:
        """One file of a seal: a link to its current object when unchanged, else encrypted."""
        obj = self._cipher.encrypt_name(source.path)
        dst = staging / obj
        dst.parent.mkdir(parents=True, exist_ok=True)
        reuse = source.same_as
        if reuse is None and old is not None and source.unchanged(old):
            reuse = old
        if reuse is None:
            return self._encrypt(source, dst, obj, syncer)
        link_or_copy(self._generation / reuse.object, dst)
        return VolumeFile(source.path, reuse.size, reuse.sha256, obj, reuse.nonce, source.mode)

    def _encrypt(
        self,
        source: SealSource,
        dst: Path,
        obj: str,
        syncer: Syncer,
    ) -> VolumeFile:
        """Encrypt one file into `dst`; `syncer` makes it durable (the caller waits for it)."""
        try:
            with source.open() as raw:
                out = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
                try:
                    size, digest, nonce = seal_object(self._cipher, self._keys.data_key, raw, out)
                except BaseException:
                    os.close(out)
                    raise
                syncer.submit(out)
        except OSError as e:
            raise StorageError(f"volume {self.name!r}: cannot seal {source.path}: {e}") from e
        return VolumeFile(source.path, size, digest, obj, nonce.hex(), source.mode)

    def _unchanged(
        self, old: VolumeFile, *, source: Path, st: os.stat_result, trust_snapshot: bool
    ) -> bool:
        if st.st_size != old.size:
            return False
        if trust_snapshot and old.path in self._unsealed:
            # Written since unseal (or not): encrypting beats hashing first to find out.
            return self._unsealed[old.path] == file_identity(st)
        return sha256_file(source) == old.sha256

    # -- helpers -----------------------------------------------------------------------------

    def _current_header(self) -> Header:
        where = f"volume {self.name!r} at {self.path}"
        return Header.from_bytes((self.path / HEADER_FILE).read_bytes(), where=where)

    def _check_object_set(self) -> None:
        """Every manifest object is present and no other object is."""
        generation = self._generation
        try:
            present = {
                str(p.relative_to(generation))
                for p in generation.rglob("*")
                if not p.is_dir() and p.name != MANIFEST_FILE
            }
        except OSError as e:
            raise StorageError(f"volume {self.name!r}: cannot list {generation}: {e}") from e
        expected = {f.object: f.path for f in self._manifest.files}
        missing = sorted(path for obj, path in expected.items() if obj not in present)
        if missing:
            raise IntegrityError(
                f"volume {self.name!r}: file {missing[0]} is missing (deleted from the volume)"
                + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            )
        added = sorted(present - expected.keys())
        if added:
            try:
                label = self._cipher.decrypt_name(added[0])
            except IntegrityError:
                label = f"<undecryptable object {added[0]}>"
            raise IntegrityError(
                f"volume {self.name!r}: file {label} is not in the manifest (added to the volume)"
            )

    def _object_reader(self, entry: VolumeFile) -> ObjectReader:
        """Random access to one file's plaintext (the FUSE mount reads through this)."""
        label = f"volume {self.name!r}: file {entry.path}"
        try:
            return ObjectReader(
                self._generation / entry.object,
                self._keys.data_key,
                bytes.fromhex(entry.nonce),
                entry.size,
                label=label,
            )
        except FileNotFoundError as e:
            raise IntegrityError(f"{label} is missing") from e
        except OSError as e:
            raise StorageError(f"{label}: {e}") from e

    @contextlib.contextmanager
    def _open_object(self, entry: VolumeFile) -> Iterator[BinaryIO]:
        try:
            f = open(self._generation / entry.object, "rb", buffering=_BUFFER)  # noqa: SIM115
        except FileNotFoundError as e:
            raise IntegrityError(f"volume {self.name!r}: file {entry.path} is missing") from e
        except OSError as e:
            raise StorageError(f"volume {self.name!r}: cannot read {entry.path}: {e}") from e
        with f:
            header = f.read(_HEADER_SIZE)
            if header[_MAGIC_SIZE:] != bytes.fromhex(entry.nonce):
                raise IntegrityError(
                    f"volume {self.name!r}: file {entry.path} is not the object its manifest "
                    "entry pins (swapped, replaced or an old copy)"
                )
            f.seek(0)
            yield f

    def _label(self, entry: VolumeFile) -> str:
        return f"volume {self.name!r}: file {entry.path}"

    def _check_digest(self, entry: VolumeFile, size: int, digest: str | None) -> None:
        if size != entry.size:
            raise IntegrityError(
                f"volume {self.name!r}: file {entry.path} is {size} bytes, the manifest "
                f"says {entry.size} (truncated, swapped or replaced)"
            )
        if digest is not None and digest != entry.sha256:
            raise IntegrityError(
                f"volume {self.name!r}: file {entry.path} does not match its manifest digest "
                "(swapped or replaced)"
            )

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn filesystem failures into StorageError naming the volume and what was done."""
        try:
            yield
        except OSError as e:
            raise StorageError(f"volume {self.name!r} at {self.path}: {action} failed: {e}") from e


def _write_new(path: Path, data: bytes) -> int:
    """Create (or truncate) `path` with `data`; return its descriptor, still to be fsynced."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_plain(path: Path) -> BinaryIO:
    # Not through a link (one swapped in since the workspace was scanned would read a file
    # from outside it into the volume).
    return open(path, "rb", buffering=0, opener=_no_follow)


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


def _past_tick(identities: Iterable[Identity]) -> bool:
    """Wait until the clock that stamps file times is past every mtime and ctime in
    `identities` (at most one tick of the coarse clock, a few ms), so that any later write gets
    a later time and so another identity; False if it did not get there in time."""
    latest = max((max(i[1], i[2]) for i in identities), default=None)
    if latest is None:
        return True
    deadline = time.monotonic() + _TICK_WAIT
    while time.clock_gettime_ns(_COARSE_CLOCK) <= latest:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True
