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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from seml.crypt import Cipher, CryptOptions
from seml.errors import IntegrityError, StorageError, UsageError
from seml.volume._chunks import ObjectReader
from seml.volume._io import (
    HashingReader,
    HashingWriter,
    RawWriter,
    checkpoint,
    fsync_dir,
    locked,
    remove_tree,
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
_MAGIC_SIZE = 8  # rclone's "RCLONE\0\0"
_HEADER_SIZE = _MAGIC_SIZE + 24  # magic + the object's random nonce

# A workspace file's identity right after unseal (or seal): if it still matches at seal time, it was
# not written since and its sealed object can be reused as is.
_Snapshot = tuple[int, int, int, int]


def _snapshot(st: os.stat_result) -> _Snapshot:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


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
        self._unsealed: dict[str, _Snapshot] = {}
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
                    sink = HashingWriter(None, hashing=True)
                    self._decrypt(entry, src, sink)
                self._check_digest(entry, sink)

    def unseal(self, workspace: Path, *, thorough: bool = False) -> None:
        """Decrypt every file into `workspace`, verifying each before it gets its final name.

        Each object must carry the nonce the manifest pins, authenticate chunk by chunk and
        have the recorded size, which proves its content; `thorough` also recomputes SHA-256.
        On any failure, what this call wrote is removed and IntegrityError names the file.
        """
        written: list[Path] = []
        snapshot: dict[str, _Snapshot] = {}
        try:
            with self._guard("unseal"), locked(self.path, exclusive=False):
                self._check_object_set()
                for entry in self._manifest.files:
                    target = workspace.joinpath(*entry.path.split("/"))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_name(target.name + PARTIAL_SUFFIX)
                    written.append(partial)
                    with self._open_object(entry) as src, open(partial, "wb", buffering=0) as raw:
                        sink = HashingWriter(raw, hashing=thorough)
                        self._decrypt(entry, src, sink)
                    self._check_digest(entry, sink)
                    partial.chmod(entry.mode & 0o777)
                    partial.replace(target)
                    written[-1] = target
                    snapshot[entry.path] = _snapshot(target.stat())
        except BaseException:
            for p in written:
                with contextlib.suppress(OSError):
                    p.unlink()
            raise
        self._unsealed, self._unsealed_into = snapshot, workspace.resolve()

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
        version = self.seal_sources(sources)
        # What was just sealed is what the scan saw (a file written since then has a new
        # ctime), so the next seal of this workspace can reuse objects without hashing.
        self._unsealed = {rel: _snapshot(st) for rel, st in found}
        self._unsealed_into = workspace.resolve()
        return version

    def seal_sources(self, sources: Iterable[SealSource]) -> int:
        """Seal the given files as the next version (what `seal` and the FUSE mount use)."""
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
                return self._seal_into(staging, sources, self.version + 1)
            except BaseException:
                remove_tree(staging)
                raise

    def _seal_into(self, staging: Path, sources: Iterable[SealSource], version: int) -> int:
        """Fill `staging` with the new version's objects and manifest, then commit it."""
        previous = {f.path: f for f in self._manifest.files}
        entries = []
        for source in sorted(sources, key=lambda s: s.path):
            old = previous.get(source.path)
            obj = self._cipher.encrypt_name(source.path)
            dst = staging / obj
            dst.parent.mkdir(parents=True, exist_ok=True)
            reuse = source.same_as
            if reuse is None and old is not None and source.unchanged(old):
                reuse = old
            if reuse is not None:
                link_or_copy(self._generation / reuse.object, dst)
                entries.append(
                    VolumeFile(source.path, reuse.size, reuse.sha256, obj, reuse.nonce, source.mode)
                )
            else:
                entries.append(self._encrypt(source, dst, obj))
        checkpoint("objects-written")
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
        with open(staging / MANIFEST_FILE, "wb") as f:
            f.write(seal_manifest(manifest, self._keys))
            f.flush()
            os.fsync(f.fileno())
        for root, _dirs, _files in os.walk(staging, topdown=False):
            fsync_dir(Path(root))
        generation = self.path / manifest.generation
        staging.rename(generation)
        fsync_dir(self.path)
        checkpoint("generation-renamed")
        tmp = self.path / f"{HEADER_FILE}.tmp"
        with open(tmp, "wb") as f:
            f.write(manifest.header.to_bytes())
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path / HEADER_FILE)
        fsync_dir(self.path)
        checkpoint("header-replaced")
        self._manifest = manifest
        if previous is not None:
            remove_tree(self.path / previous)

    def _encrypt(self, source: SealSource, dst: Path, obj: str) -> VolumeFile:
        try:
            with (
                source.open() as raw,
                open(dst, "wb", buffering=0) as out,
                contextlib.closing(HashingReader(raw)) as reader,
            ):
                writer = RawWriter(out)
                self._cipher.encrypt_stream(cast(BinaryIO, reader), cast(BinaryIO, writer))
                os.fsync(out.fileno())
                digest = reader.hexdigest()
        except OSError as e:
            raise StorageError(f"volume {self.name!r}: cannot seal {source.path}: {e}") from e
        nonce = writer.header[_MAGIC_SIZE:_HEADER_SIZE].hex()
        return VolumeFile(source.path, reader.size, digest, obj, nonce, source.mode)

    def _unchanged(
        self, old: VolumeFile, *, source: Path, st: os.stat_result, trust_snapshot: bool
    ) -> bool:
        if st.st_size != old.size:
            return False
        if trust_snapshot and old.path in self._unsealed:
            # Written since unseal (or not): encrypting beats hashing first to find out.
            return self._unsealed[old.path] == _snapshot(st)
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

    def _decrypt(self, entry: VolumeFile, src: BinaryIO, sink: HashingWriter) -> None:
        name = f"volume {self.name!r}: file {entry.path}"
        self._cipher.decrypt_stream(src, cast(BinaryIO, sink), name=name)

    def _check_digest(self, entry: VolumeFile, sink: HashingWriter) -> None:
        if sink.size != entry.size:
            raise IntegrityError(
                f"volume {self.name!r}: file {entry.path} is {sink.size} bytes, the manifest "
                f"says {entry.size} (truncated, swapped or replaced)"
            )
        if sink.digest is not None and sink.digest.hexdigest() != entry.sha256:
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


def _open_plain(path: Path) -> BinaryIO:
    return open(path, "rb", buffering=0)
