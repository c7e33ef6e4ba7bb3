"""The private workspace a command sees its volumes in: memory-backed where possible."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from seml.errors import StorageError
from seml.volume._io import remove_tree

__all__ = ["private_workspace", "sweep_stale_workspaces"]

_SHM = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private 0700 dir inside
_HEADROOM = 64 << 20
_PREFIX = "seml-ws-"
_NAME = re.compile(rf"^{_PREFIX}(?P<pid>\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_workspaces(bases: list[Path]) -> list[Path]:
    """Wipe workspaces left by runtimes that were killed (their process is gone).

    A SIGKILLed runtime cannot wipe its own workspace, which holds decrypted volume data and
    injected secrets; the next run on the machine removes it. Only this user's folders whose
    owning process no longer exists are touched.
    """
    removed: list[Path] = []
    for base in bases:
        with contextlib.suppress(OSError):
            for entry in base.iterdir():
                m = _NAME.match(entry.name)
                if not m or _alive(int(m["pid"])):
                    continue
                with contextlib.suppress(OSError):
                    if entry.is_dir() and entry.stat().st_uid == os.getuid():
                        remove_tree(entry, wipe=base != _SHM)
                        removed.append(entry)
    return removed


@contextlib.contextmanager
def private_workspace(*, size_hint: int = 0, shm: Path = _SHM) -> Iterator[Path]:
    """A fresh 0700 directory, on tmpfs (`/dev/shm`) when it has room for `size_hint` bytes,
    else in the system temp dir; wiped on exit, whatever happens short of SIGKILL (after
    which the next workspace on this machine wipes it: `sweep_stale_workspaces`).

    Plaintext in a tmpfs never reaches a disk (absent swap); on disk it is overwritten with
    zeros before deletion, which is best effort only.
    """
    sweep_stale_workspaces([shm, Path(tempfile.gettempdir())])
    base: Path | None = None
    with contextlib.suppress(OSError):
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize >= size_hint + _HEADROOM:
            base = shm
    try:
        path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base))
    except OSError as e:
        raise StorageError(f"cannot create a private workspace: {e}") from e
    path.chmod(0o700)
    try:
        yield path
    finally:
        remove_tree(path, wipe=base is None)
