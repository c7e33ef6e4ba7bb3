"""A protected volume mounted with FUSE, for data larger than memory.

The mount shows the volume's files in the clear to processes on this machine while nothing
plaintext is written to disk: reads decrypt (and authenticate) only the chunks they touch;
the first write to a file copies it into an encrypted scratch file (a key that lives only as
long as the mount, a fresh nonce per chunk write); on unmount the tree is sealed as the next
version (unchanged and renamed files keep their objects) or discarded.

`serve` runs the filesystem in the calling process until it is unmounted (the CLI's
``seml volume mount``); `seml.volume.FuseMount` runs it in a child process.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from seml.errors import SemlError, StorageError, UsageError
from seml.volume._chunks import ObjectReader, ScratchFile
from seml.volume._io import locked
from seml.volume._layout import SCRATCH_PREFIX
from seml.volume._manifest import VolumeFile
from seml.volume._volume import SealSource, Volume

__all__ = ["VolumeFS", "fuse_available", "serve"]

_T = TypeVar("_T")


def fuse_available() -> str | None:
    """None when FUSE mounts can work here, else why not."""
    if not Path("/dev/fuse").exists():
        return "/dev/fuse does not exist"
    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        return "fusermount3 is not installed (Debian: apt-get install fuse3)"
    try:
        import mfusepy  # type: ignore[import-untyped]  # noqa: F401
    except (ImportError, OSError) as e:
        return f"the FUSE library cannot be loaded: {e}"
    return None


@dataclass
class _Node:
    mode: int  # full st_mode: type and permissions
    mtime_ns: int
    sealed: VolumeFile | None = None  # the object holding a clean file's content
    scratch: ScratchFile | None = None  # a written file's content
    size: int = 0


@dataclass
class _Tree:
    nodes: dict[str, _Node] = field(default_factory=dict)

    def children(self, path: str) -> list[str]:
        prefix = f"{path}/" if path else ""
        return [
            p[len(prefix) :]
            for p in self.nodes
            if p != path and p.startswith(prefix) and "/" not in p[len(prefix) :]
        ]


def _fuse_errors(method: Callable[..., _T]) -> Callable[..., _T]:
    """Integrity failures read as EIO; other SEML errors as EINVAL (mfusepy logs the rest)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        try:
            return method(*args, **kwargs)
        except SemlError as e:
            print(f"seml: {e}", file=sys.stderr, flush=True)
            raise OSError(errno.EIO, str(e)) from e

    return wrapper


_REQUEST = 1 << 20


class VolumeFS:
    """FUSE operations over an opened volume (single-threaded: no locking needed)."""

    use_ns = True

    def __init__(
        self,
        volume: Volume,
        scratch_dir: Path,
        *,
        on_ready: Callable[[], None],
        mountpoint: Path | None = None,
    ) -> None:
        self._volume = volume
        self._mountpoint = mountpoint
        self._scratch_dir = scratch_dir
        self._scratch_key = secrets.token_bytes(32)
        self._on_ready = on_ready
        self._readers: dict[str, ObjectReader] = {}
        now = time.time_ns()
        self.tree = _Tree({"": _Node(stat.S_IFDIR | 0o755, now)})
        for entry in volume.files():
            parts = entry.path.split("/")
            for i in range(1, len(parts)):
                self.tree.nodes.setdefault("/".join(parts[:i]), _Node(stat.S_IFDIR | 0o755, now))
            self.tree.nodes[entry.path] = _Node(
                stat.S_IFREG | (entry.mode & 0o7777), now, sealed=entry, size=entry.size
            )

    # -- what sealing needs ------------------------------------------------------------------

    def sources(self) -> list[SealSource]:
        out = []
        for path, node in self.tree.nodes.items():
            if not stat.S_ISREG(node.mode):
                continue
            mode = stat.S_IMODE(node.mode)
            if node.scratch is not None:
                opener = cast(Callable[[], BinaryIO], node.scratch.stream)
                out.append(SealSource(path, mode, opener, _never))
            elif node.sealed is not None:
                out.append(SealSource(path, mode, _no_open, _never, same_as=node.sealed))
        return out

    def close(self) -> None:
        """Drop every scratch file (after sealing or discarding)."""
        for reader in self._readers.values():
            reader.close()
        for node in self.tree.nodes.values():
            if node.scratch is not None:
                node.scratch.close()
        shutil.rmtree(self._scratch_dir, ignore_errors=True)

    # -- FUSE operations ---------------------------------------------------------------------

    def init(self, path: str) -> None:  # libfuse 2: no connection settings to make
        self._on_ready()

    def init_with_config(self, conn: Any, config: Any) -> None:
        """libfuse 3: requests of up to `_REQUEST` bytes (the kernel's default is 128 KiB, and
        every request is a round of Python calls), and the kernel keeps what it read of a
        file across opens (every change goes through this mount, which invalidates it)."""
        if conn is not None:
            conn.max_write = _REQUEST
            conn.max_readahead = _REQUEST
        if config is not None:
            config.kernel_cache = 1
        _widen_readahead(self._mountpoint)
        self._on_ready()

    @_fuse_errors
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        node = self._node(path)
        return {
            "st_mode": node.mode,
            "st_size": node.scratch.size if node.scratch else node.size,
            "st_nlink": 2 if stat.S_ISDIR(node.mode) else 1,
            "st_uid": os.getuid(),
            "st_gid": os.getgid(),
            "st_mtime": node.mtime_ns,
            "st_ctime": node.mtime_ns,
            "st_atime": node.mtime_ns,
        }

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *self.tree.children(self._key(path))]

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._volume.path)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree")
        return {k: getattr(st, k) for k in keys} | {"f_namemax": 143}

    def mkdir(self, path: str, mode: int) -> None:
        key = self._new(path)
        self.tree.nodes[key] = _Node(stat.S_IFDIR | (mode & 0o7777), time.time_ns())

    def rmdir(self, path: str) -> None:
        key = self._key(path)
        node = self._node(path)
        if not stat.S_ISDIR(node.mode):
            raise OSError(errno.ENOTDIR, path)
        if self.tree.children(key):
            raise OSError(errno.ENOTEMPTY, path)
        del self.tree.nodes[key]

    @_fuse_errors
    def create(self, path: str, mode: int, flags: int = 0) -> int:
        key = self._new(path)
        node = _Node(stat.S_IFREG | (mode & 0o7777), time.time_ns())
        node.scratch = self._scratch()
        self.tree.nodes[key] = node
        return 0

    def open(self, path: str, flags: int) -> int:
        if stat.S_ISDIR(self._node(path).mode):
            raise OSError(errno.EISDIR, path)
        return 0

    @_fuse_errors
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        key = self._key(path)
        node = self._node(path)
        if node.scratch is not None:
            return node.scratch.read(offset, size)
        return self._reader(key, node).read(offset, size)

    @_fuse_errors
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        scratch = self._dirty(path)
        n = scratch.write(offset, data)
        self._node(path).mtime_ns = time.time_ns()
        return n

    @_fuse_errors
    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        self._dirty(path, keep=length > 0).truncate(length)
        self._node(path).mtime_ns = time.time_ns()

    @_fuse_errors
    def fsync(self, path: str, datasync: int, fh: int) -> None:
        node = self._node(path)
        if node.scratch is not None:
            node.scratch.flush()

    def unlink(self, path: str) -> None:
        key = self._key(path)
        node = self._node(path)
        if stat.S_ISDIR(node.mode):
            raise OSError(errno.EISDIR, path)
        self._drop(key, node)

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        src, dst = self._key(old), self._key(new)
        node = self._node(old)
        if dst == src or dst.startswith(src + "/"):
            raise OSError(errno.EINVAL, new)
        target = self.tree.nodes.get(dst)
        if target is not None:
            if stat.S_ISDIR(target.mode) != stat.S_ISDIR(node.mode):
                raise OSError(errno.EISDIR if stat.S_ISDIR(target.mode) else errno.ENOTDIR, new)
            if stat.S_ISDIR(target.mode) and self.tree.children(dst):
                raise OSError(errno.ENOTEMPTY, new)
            self._drop(dst, target)
        else:
            self._parent_dir(dst, new)
        moved = [p for p in self.tree.nodes if p == src or p.startswith(src + "/")]
        for p in moved:
            reader = self._readers.pop(p, None)
            if reader is not None:
                reader.close()
            self.tree.nodes[dst + p[len(src) :]] = self.tree.nodes.pop(p)

    def chmod(self, path: str, mode: int) -> None:
        node = self._node(path)
        node.mode = stat.S_IFMT(node.mode) | (mode & 0o7777)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._node(path)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        self._node(path).mtime_ns = times[1] if times else time.time_ns()

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _key(path: str) -> str:
        return path.strip("/")

    def _node(self, path: str) -> _Node:
        node = self.tree.nodes.get(self._key(path))
        if node is None:
            raise OSError(errno.ENOENT, path)
        return node

    def _parent_dir(self, key: str, path: str) -> None:
        parent = self.tree.nodes.get(key.rpartition("/")[0])
        if parent is None:
            raise OSError(errno.ENOENT, path)
        if not stat.S_ISDIR(parent.mode):
            raise OSError(errno.ENOTDIR, path)

    def _new(self, path: str) -> str:
        key = self._key(path)
        if key in self.tree.nodes:
            raise OSError(errno.EEXIST, path)
        self._parent_dir(key, path)
        return key

    def _scratch(self) -> ScratchFile:
        return ScratchFile(self._scratch_dir / secrets.token_hex(8), self._scratch_key)

    def _reader(self, key: str, node: _Node) -> ObjectReader:
        reader = self._readers.get(key)
        if reader is None:
            entry = node.sealed
            if entry is None:
                raise OSError(errno.EIO, key)
            reader = self._volume._object_reader(entry)
            self._readers[key] = reader
        return reader

    def _dirty(self, path: str, *, keep: bool = True) -> ScratchFile:
        """The file's scratch copy, made on first write (copy-on-write of the sealed object)."""
        key = self._key(path)
        node = self._node(path)
        if stat.S_ISDIR(node.mode):
            raise OSError(errno.EISDIR, path)
        if node.scratch is None:
            scratch = self._scratch()
            if keep and node.size:
                scratch.fill_from(self._reader(key, node), node.size)
            node.scratch, node.sealed = scratch, None
            reader = self._readers.pop(key, None)
            if reader is not None:
                reader.close()
        return node.scratch

    def _drop(self, key: str, node: _Node) -> None:
        if node.scratch is not None:
            node.scratch.close()
        reader = self._readers.pop(key, None)
        if reader is not None:
            reader.close()
        del self.tree.nodes[key]


def _widen_readahead(mountpoint: Path | None) -> None:
    """Let the kernel read ahead `_REQUEST` bytes at a time on this mount (best effort).

    The kernel caps a FUSE mount's read-ahead at its default (128 KiB) whatever `max_readahead`
    says, so a sequential reader costs a round of Python calls per 128 KiB; the mount's
    `read_ahead_kb` (root only) lifts the cap. The mount's device comes from
    /proc/self/mountinfo: a stat of the mount point would wait for this very server.
    """
    if mountpoint is None:
        return
    # Resolve the parent only: a lookup of the mount point itself would wait for us too.
    target = str(mountpoint.absolute().parent.resolve() / mountpoint.name)
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if _unescape(fields[4]) == target:
                Path(f"/sys/class/bdi/{fields[2]}/read_ahead_kb").write_text(str(_REQUEST >> 10))


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _no_open() -> BinaryIO:
    raise AssertionError("a reused object is never read")


def _never(old: VolumeFile) -> bool:
    return False


def serve(volume: Volume, mountpoint: Path, *, on_ready: Callable[[], None]) -> VolumeFS:
    """Mount `volume` at `mountpoint` and serve it until unmounted; return the final tree
    (the caller seals it with ``volume.seal_sources(fs.sources())`` or drops it)."""
    problem = fuse_available()
    if problem:
        raise UsageError(f"cannot mount volume {volume.name!r} with FUSE: {problem}")
    import mfusepy

    volume._check_object_set()  # added or deleted files; the rest shows on each read
    scratch_dir = volume.path / f"{SCRATCH_PREFIX}{secrets.token_hex(4)}"
    scratch_dir.mkdir(mode=0o700)
    fs = VolumeFS(volume, scratch_dir, on_ready=on_ready, mountpoint=mountpoint)
    try:
        # A shared lock for the mount's lifetime keeps sealers (and leftover cleaning) away.
        with locked(volume.path, exclusive=False):
            mfusepy.FUSE(
                fs,
                str(mountpoint),
                foreground=True,
                nothreads=True,
                # Only safe characters: a comma would smuggle in another mount option.
                fsname="seml-volume-" + re.sub(r"[^A-Za-z0-9_.-]", "_", volume.name),
            )
    except RuntimeError as e:
        fs.close()
        raise StorageError(
            f"FUSE mount of volume {volume.name!r} at {mountpoint} failed: {e}"
        ) from e
    return fs
