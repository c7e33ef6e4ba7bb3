"""`FuseMount`: a volume mounted with FUSE in a child process, sealed or discarded at the end.

The child (``python -m seml.volume._fuse_main``) gets the key on stdin, never in argv, prints
``mounted`` once the filesystem is up, and after the unmount reads ``seal`` or ``discard``
from stdin and answers ``sealed N`` or ``kept N``. A crash of either side leaves the volume
at its last sealed version (the next open removes the scratch files).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO, cast

from seml.errors import SemlError, StorageError, UsageError
from seml.volume._fuse import fuse_available, serve
from seml.volume._volume import Volume

__all__ = ["FuseMount", "child_main"]

_READY = "mounted"


class FuseMount:
    """Mount a volume in a child process; `unmount` seals (or discards) what was written.

    Use as a context manager: leaving normally seals, leaving with an exception discards.
    """

    def __init__(
        self,
        path: Path,
        key: bytes,
        *,
        name: str,
        mountpoint: Path,
        expected_version: int | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.path, self.name, self.mountpoint = path, name, mountpoint
        self._key = key
        self._expected = expected_version
        self._timeout = timeout
        self._proc: subprocess.Popen[str] | None = None
        self.version: int | None = None

    def __repr__(self) -> str:
        return f"FuseMount({self.name!r}, mountpoint={str(self.mountpoint)!r})"

    def __enter__(self) -> FuseMount:
        problem = fuse_available()
        if problem:
            raise UsageError(f"cannot mount volume {self.name!r} with FUSE: {problem}")
        argv = [
            sys.executable,
            "-m",
            "seml.volume._fuse_main",
            str(self.path),
            str(self.mountpoint),
            self.name,
            "-" if self._expected is None else str(self._expected),
        ]
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stdin, stdout = cast(TextIO, self._proc.stdin), cast(TextIO, self._proc.stdout)
        stdin.write(self._key.hex() + "\n")
        stdin.flush()
        ready, _, _ = select.select([stdout], [], [], self._timeout)
        line = stdout.readline().strip() if ready else ""
        if line != _READY:
            raise StorageError(f"FUSE mount of volume {self.name!r} failed: {self._abort()}")
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._proc is not None and self.version is None:
            self.unmount(seal=exc_type is None)

    def unmount(self, *, seal: bool = True) -> int:
        """Unmount; seal the tree as the next version (or keep the last one); return the
        volume's version afterwards."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise UsageError("the volume is not mounted")
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write("seal\n" if seal else "discard\n")
            proc.stdin.flush()
        self._fusermount("-u")
        try:
            out, err = proc.communicate(timeout=None if seal else self._timeout)
        except subprocess.TimeoutExpired:
            self._abort()
            raise StorageError(f"FUSE server of volume {self.name!r} did not stop") from None
        finally:
            self._close_pipes()
        words = out.split()
        if proc.returncode != 0 or len(words) != 2 or words[0] not in ("sealed", "kept"):
            self._fusermount("-uz")
            raise StorageError(
                f"FUSE mount of volume {self.name!r} ended badly (status {proc.returncode}): "
                f"{_last_error(err)}; the volume stays at its last sealed version"
            )
        self.version = int(words[1])
        return self.version

    def _fusermount(self, flags: str) -> None:
        tool = shutil.which("fusermount3") or "fusermount"
        for _ in range(50):  # the kernel answers EBUSY while the last close settles
            done = subprocess.run(
                [tool, flags, str(self.mountpoint)], capture_output=True, check=False
            )
            if done.returncode == 0 or not os.path.ismount(self.mountpoint):
                return
            time.sleep(0.1)

    def _abort(self) -> str:
        """Stop the server for good; return its last error message."""
        message = "unknown error"
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            if self._proc.stderr is not None:
                with contextlib.suppress(OSError, ValueError):
                    message = _last_error(self._proc.stderr.read())
            self._close_pipes()
        self._fusermount("-uz")
        return message

    def _close_pipes(self) -> None:
        if self._proc is not None:
            for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()


def _last_error(stderr: str | None) -> str:
    lines = [line for line in (stderr or "").splitlines() if line.strip()]
    return lines[-1].removeprefix("seml: error: ") if lines else "no error message"


def child_main(argv: list[str]) -> int:
    """The child process of `FuseMount`: key on stdin, 'seal' or 'discard' after unmount."""
    path, mountpoint, name, expected = argv
    key = bytes.fromhex(sys.stdin.readline().strip())
    try:
        volume = Volume.open(
            Path(path), key, name=name, expected_version=None if expected == "-" else int(expected)
        )
        fs = serve(volume, Path(mountpoint), on_ready=lambda: print(_READY, flush=True))
        try:
            decision = sys.stdin.readline().strip() or "discard"
            if decision == "seal":
                print("sealed", volume.seal_sources(fs.sources()), flush=True)
            else:
                print("kept", volume.version, flush=True)
        finally:
            fs.close()
    except SemlError as e:
        print(f"seml: error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    return 0
