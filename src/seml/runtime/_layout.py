"""Where a service's injected files and volumes appear: its private workspace.

Paths in a session (`/app/main.py`, `/data`) are paths inside the service's private workspace,
which is also the command's working directory, so `data/x` always works. When the runtime can
create a private mount namespace (Linux, root, `unshare` present), each top-level folder of
those paths that exists on the host is also bind-mounted at its absolute path for the child
only, so `/data/x` works too; nothing is mounted for anyone else. `--mount namespace` also
creates missing top-level folders (empty) to mount on. System folders are never shadowed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from seml._environ import FORCED, code_loading, from_host
from seml._paths import path_problem
from seml.errors import PolicyError, UsageError

__all__ = [
    "MountPlan",
    "child_environment",
    "namespace_available",
    "plan_mounts",
    "workspace_path",
    "wrap_command",
]

# Never bind over these: the child needs the host's system to run at all.
_SYSTEM = frozenset(
    {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt", "proc", "root",
     "run", "sbin", "srv", "sys", "usr", "var", "home", "tmp", "mnt", "media"}
)  # fmt: skip


def workspace_path(workspace: Path, session_path: str) -> Path:
    """The place of a session path (absolute, normalised: `seml._paths`) in the workspace."""
    problem = path_problem(session_path)
    if problem is not None:
        raise PolicyError(f"session path {session_path[:80]!r} {problem}")
    return workspace.joinpath(*PurePosixPath(session_path).relative_to("/").parts)


@dataclass(frozen=True)
class MountPlan:
    """Bind mounts (workspace folder -> absolute path) for the child's private namespace."""

    binds: tuple[tuple[Path, str], ...]
    skipped: tuple[str, ...]  # top-level names not bound (system folders, files at the root)


def plan_mounts(
    workspace: Path, paths: Sequence[str], *, create: bool = False, root: Path = Path("/")
) -> MountPlan:
    """Which workspace folders to bind at their absolute paths for the child.

    A mount point must be a folder on the host. Without `create`, only folders that already
    exist there are used (nothing on the host changes); with it (`--mount namespace`), missing
    top-level folders are made, empty, at the host's root.
    """
    tops: dict[str, bool] = {}  # top-level name -> is a folder in the workspace
    for p in paths:
        parts = PurePosixPath(p).parts
        if len(parts) < 2:
            continue
        top = parts[1]
        tops[top] = tops.get(top, False) or len(parts) > 2 or (workspace / top).is_dir()
    binds: list[tuple[Path, str]] = []
    skipped: list[str] = []
    for top, is_dir in sorted(tops.items()):
        if top in _SYSTEM or not is_dir or not (create or (root / top).is_dir()):
            skipped.append("/" + top)
        else:
            binds.append((workspace / top, "/" + top))
    return MountPlan(tuple(binds), tuple(skipped))


def namespace_available() -> bool:
    """Whether a private mount namespace can be made (root on Linux with util-linux unshare)."""
    return (
        os.name == "posix"
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("unshare") is not None
        and shutil.which("mount") is not None
    )


# Runs inside the new namespace: bind each pair, then become the command. The pairs and the
# command arrive as arguments, never through a shell string, so nothing is interpolated.
_BINDER = (
    'set -e; while [ "$1" != "--" ]; do mkdir -p "$2"; mount --bind "$1" "$2"; shift 2; done; '
    'shift; exec "$@"'
)


def wrap_command(command: Sequence[str], plan: MountPlan) -> list[str]:
    """`command`, run inside a private mount namespace with the plan's binds."""
    if not command:
        raise UsageError("no command to run")
    if not plan.binds:
        return list(command)
    args = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _BINDER, "sh"]
    for src, dst in plan.binds:
        args += [str(src), dst]
    return [*args, "--", *command]


def child_environment(
    host: Mapping[str, str],
    *,
    passed: Mapping[str, str],
    service: Mapping[str, str],
    workspace: Path,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The child's whole environment, later entries winning: the host's allow-listed variables
    (`seml._environ.HOST_ALLOWED`), the variables the machine's operator passes on, HOME (the
    private workspace, so the host's dotfiles never configure the workload), the session's
    environment, seml's own SEML_* variables, and `seml._environ.FORCED`.

    `passed` and `service` must not set a code-loading variable (PolicyError): the schema and
    `run_service` refuse them before, this is the last line."""
    for what, names in (
        ("the variables passed from this machine", passed),
        ("the session", service),
    ):
        bad = sorted(n for n in names if code_loading(n))
        if bad:
            raise PolicyError(f"{what} may not set {', '.join(bad)}: it loads unmeasured code")
    env = from_host(host)
    env.update(passed)
    env["HOME"] = str(workspace)
    env.update(service)
    env.update(extra)
    env.update(FORCED)
    return env
