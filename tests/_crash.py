"""Test-only fault injection: run a program that kills itself (SIGKILL) at a named step of a
volume seal or a push, to prove a volume is never left half-sealed and a remote never loses
its last complete version. Production code has no such hook: this wrapper patches the steps
in its own process, then runs the program.

    python tests/_crash.py STEP seml ARGS...       # `seml ARGS...`
    python tests/_crash.py STEP -c CODE ARGS...    # `python -c CODE ARGS...`

STEP is one of `STEPS` (or "none"):
- objects-written:    every new object is durable, nothing of the new version is committed;
- generation-renamed: the new generation has its final name, the header still names the old;
- header-replaced:    the header names the new generation, the old one is not yet removed.

Push steps (run the push with --transfers 1, so the order of uploads is fixed):
- push-uploading:     the push marker and one file are uploaded, the next upload starts;
- push-before-switch: every file is uploaded, the new manifest is not written;
- push-after-switch:  the new manifest is written, no staged object is moved yet;
- push-mid-moves:     one staged object was moved to its final name;
- push-mid-cleanup:   one object the new version does not need was deleted.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["PUSH_STEPS", "STEPS", "VOLUME_STEPS", "crash_command", "install"]

VOLUME_STEPS = ("objects-written", "generation-renamed", "header-replaced")
PUSH_STEPS = (
    "push-uploading",
    "push-before-switch",
    "push-after-switch",
    "push-mid-moves",
    "push-mid-cleanup",
)
STEPS = VOLUME_STEPS + PUSH_STEPS


def crash_command(step: str | None) -> list[str]:
    """The argv prefix that runs a program under this wrapper (killed at `step`)."""
    return [sys.executable, str(Path(__file__).resolve()), step or "none"]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(step: str) -> None:
    from seml.volume import _volume
    from seml.volume._layout import HEADER_FILE

    volume_module: Any = _volume  # patched in this process only
    if step == "none":
        return
    if step not in STEPS:
        raise SystemExit(f"_crash.py: unknown step {step!r} (one of {', '.join(STEPS)})")
    if step in PUSH_STEPS:
        _install_push(step)
        return
    if step == "objects-written":

        def no_commit(self: Any, *args: Any, **kwargs: Any) -> None:
            _die()

        _volume.Volume._commit = no_commit  # type: ignore[method-assign]
        return
    real_commit = volume_module.commit

    def commit(tmp: Path, final: Path, **kwargs: Any) -> None:
        header = final.name == HEADER_FILE
        if header and step == "generation-renamed":
            _die()
        real_commit(tmp, final, **kwargs)
        if header and step == "header-replaced":
            _die()

    volume_module.commit = commit


def _install_push(step: str) -> None:
    from seml.store import StoreAdapter
    from seml.sync import _push
    from seml.sync._state import SyncState

    push_module: Any = _push
    store_class: Any = StoreAdapter
    state_class: Any = SyncState
    if step == "push-uploading":
        real_one = push_module._push_one
        calls = [0]

        def push_one(*args: Any, **kwargs: Any) -> None:
            calls[0] += 1
            if calls[0] == 2:
                _die()
            real_one(*args, **kwargs)

        push_module._push_one = push_one
    elif step == "push-before-switch":

        def seal_manifest(*args: Any, **kwargs: Any) -> None:
            _die()

        push_module.seal_manifest = seal_manifest
    elif step == "push-after-switch":
        real_record = state_class.record

        def record(self: Any, *args: Any, **kwargs: Any) -> None:
            real_record(self, *args, **kwargs)
            _die()

        state_class.record = record
    else:
        name = "move" if step == "push-mid-moves" else "delete"
        real = getattr(store_class, name)

        def once(self: Any, *args: Any, **kwargs: Any) -> None:
            real(self, *args, **kwargs)
            _die()

        setattr(store_class, name, once)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("seml", "-c") or (argv[1] == "-c" and len(argv) < 3):
        raise SystemExit(__doc__)
    step, kind, rest = argv[0], argv[1], argv[2:]
    install(step)
    if kind == "seml":
        from seml.cli import main as seml_main

        return seml_main(rest)
    sys.argv = ["-c", *rest[1:]]
    exec(compile(rest[0], "<-c>", "exec"), {"__name__": "__main__"})  # noqa: S102 - a test's own code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
