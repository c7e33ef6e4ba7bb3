"""Encrypting and decrypting whole trees, like `rclone copy` into or out of a crypt remote.

Every file is written to a temporary name in its destination directory, flushed to disk, given
the source's modification time, and only then renamed to its final name; on any error the
temporary file is removed. A decrypted file therefore appears under its final name only after
its last chunk authenticated. Files whose destination already has the expected size and the same
modification time are skipped, as `rclone copy` does (unless `ignore_times`).
Symbolic links are not followed (rclone's default without -L), in the source or in the
destination: everything is written through `seml._fs.Folder`, so a link planted in the
destination is refused, never written through. Decrypted trees are private: the destination
and every folder made in it are 0700.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from seml._fs import Folder
from seml.crypt._cipher import Cipher
from seml.errors import IntegrityError, SemlError, StorageError, UsageError

__all__ = ["SourceFile", "decrypt_tree", "encrypt_tree", "plan_decrypt", "plan_encrypt"]

Progress = Callable[[int], None]
_MTIME_SLACK_NS = 1_000  # filesystems store at least microseconds; rclone's local window is 1 ns


@dataclass(frozen=True)
class SourceFile:
    """One file to process: its source, its destination relative path, its size."""

    path: Path
    rel: str
    dest_rel: str
    size: int
    mtime_ns: int


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    """Regular files under `root` (sorted, symlinks not followed) with '/'-joined paths."""
    if root.is_symlink() or not root.exists():
        raise UsageError(f"source {root} does not exist or is a symbolic link")
    if root.is_file():
        yield root, root.name
        return
    if not root.is_dir():
        raise UsageError(f"source {root} is neither a file nor a directory")
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise_walk_error):
        dirnames[:] = sorted(d for d in dirnames if not Path(dirpath, d).is_symlink())
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        for name in sorted(filenames):
            path = base / name
            if path.is_symlink() or not path.is_file():
                continue
            yield path, name if rel_dir == "." else f"{rel_dir}/{name}"


def _raise_walk_error(e: OSError) -> None:
    raise StorageError(f"cannot list {e.filename}: {e.strerror}") from e


def _check_roots(src: Path, dst: Path) -> None:
    s, d = src.resolve(), dst.resolve()
    if s == d or (src.is_dir() and d.is_relative_to(s)):
        raise UsageError(f"destination {dst} must not be the source {src} or inside it")
    if dst.exists() and not dst.is_dir():
        raise UsageError(f"destination {dst} exists and is not a directory")


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e.strerror}") from e


def plan_encrypt(src: Path, cipher: Cipher) -> list[SourceFile]:
    """The files `encrypt_tree` would process, with their encrypted relative paths."""
    out = []
    for path, rel in _walk(src):
        st = _stat(path)
        out.append(SourceFile(path, rel, cipher.encrypt_name(rel), st.st_size, st.st_mtime_ns))
    return out


def plan_decrypt(src: Path, cipher: Cipher) -> list[SourceFile]:
    """The files `decrypt_tree` would process; IntegrityError on any name that does not decode.

    Decrypted names are checked to stay inside the destination (no '.', '..', '/' or NUL
    segment) and to be unique, since obfuscated and 'off' names can be forged by anyone.
    """
    out: list[SourceFile] = []
    seen: dict[str, str] = {}
    for path, rel in _walk(src):
        plain = cipher.decrypt_name(rel)
        segments = plain.split("/")
        if len(segments) != len(rel.split("/")) or any(
            s in ("", ".", "..") or "\0" in s for s in segments
        ):
            raise IntegrityError(f"file name {rel!r} decrypts to an unsafe path {plain!r}")
        if plain in seen:
            raise IntegrityError(
                f"file names {seen[plain]!r} and {rel!r} both decrypt to {plain!r}"
            )
        seen[plain] = rel
        st = _stat(path)
        out.append(SourceFile(path, rel, plain, st.st_size, st.st_mtime_ns))
    return out


def _unchanged(dst: Folder, rel: str, size: int | None, mtime_ns: int) -> bool:
    st = dst.lstat(rel)  # a link there is not "unchanged": it gets replaced
    return (
        st is not None
        and stat.S_ISREG(st.st_mode)
        and size is not None
        and st.st_size == size
        and abs(st.st_mtime_ns - mtime_ns) <= _MTIME_SLACK_NS
    )


def _write_atomically(
    item: SourceFile,
    dst: Folder,
    transform: Callable[[BinaryIO, BinaryIO, Progress | None], int],
    progress: Progress | None,
) -> None:
    try:
        with open(item.path, "rb", buffering=0) as src, dst.writer(item.dest_rel) as out:
            transform(src, out, progress)
            os.utime(out.fileno(), ns=(item.mtime_ns, item.mtime_ns))
    except OSError as e:
        raise StorageError(f"{item.path} -> {dst.path / item.dest_rel}: {e.strerror or e}") from e


def encrypt_tree(
    src_dir: Path,
    dst_dir: Path,
    cipher: Cipher,
    *,
    progress: Progress | None = None,
    ignore_times: bool = False,
) -> list[str]:
    """Encrypt every file under `src_dir` (or the file `src_dir`) into `dst_dir`.

    Returns the destination-relative (encrypted) paths written, in order; unchanged files are
    skipped. `progress` receives counts of source bytes as they are read.
    """
    _check_roots(src_dir, dst_dir)
    plan = plan_encrypt(src_dir, cipher)
    written = []
    with Folder.open(dst_dir) as dst:
        for item in plan:
            size = cipher.encrypted_size(item.size)
            if not ignore_times and _unchanged(dst, item.dest_rel, size, item.mtime_ns):
                if progress is not None:
                    progress(item.size)
                continue
            _write_atomically(
                item, dst, lambda s, d, p: cipher.encrypt_file(s, d, progress=p), progress
            )
            written.append(item.dest_rel)
    return written


def decrypt_tree(
    src_dir: Path,
    dst_dir: Path,
    cipher: Cipher,
    *,
    progress: Progress | None = None,
    ignore_times: bool = False,
) -> list[str]:
    """Decrypt every file under `src_dir` (or the file `src_dir`) into `dst_dir`.

    All names are decrypted first, so an undecodable name fails before anything is written.
    Stops at the first file that fails authentication (IntegrityError naming it and the reason);
    that file is not left under its final name. Returns the plaintext relative paths written.
    """
    _check_roots(src_dir, dst_dir)
    plan = plan_decrypt(src_dir, cipher)
    written = []
    with Folder.open(dst_dir, private=True) as dst:
        for item in plan:
            try:
                plain_size: int | None = cipher.decrypted_size(item.size)
            except SemlError:
                plain_size = None
            if not ignore_times and _unchanged(dst, item.dest_rel, plain_size, item.mtime_ns):
                if progress is not None:
                    progress(item.size)
                continue
            name = f"{item.path} [{item.dest_rel}]"

            def transform(s: BinaryIO, d: BinaryIO, p: Progress | None, name: str = name) -> int:
                return cipher.decrypt_file(s, d, name=name, progress=p, direct=True)

            _write_atomically(item, dst, transform, progress)
            written.append(item.dest_rel)
    return written
