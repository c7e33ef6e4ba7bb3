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
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from seml._environ import FORCED, code_loading, from_host
from seml._paths import path_problem
from seml.errors import PolicyError, UsageError

__all__ = [
    "MountPlan",
    "check_pass_env",
    "child_environment",
    "link_folders",
    "namespace_available",
    "plan_mounts",
    "resolve_seml",
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


_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_pass_env(pass_env: Mapping[str, str], service_env: Mapping[str, str]) -> None:
    """Refuse what the machine may not pass to a service: a code-loading variable, a malformed
    name, or a variable the session sets itself (the agreed value wins, so it is an error)."""
    for name in pass_env:
        if not _VARIABLE.fullmatch(name):
            raise UsageError(f"cannot pass {name!r} to a service: not a variable name")
        if code_loading(name):  # the one deny-list: seml._environ
            raise PolicyError(
                f"this machine may not pass {name} to a service: it makes the program load code "
                "the measurement does not cover"
            )
        if name in service_env:
            raise PolicyError(
                f"this machine passes {name}, which the session sets for the service itself: "
                "remove it from this machine's settings"
            )


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


_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def link_folders(workspace: Path, folders: Mapping[str, Path]) -> list[Path]:
    """Make each of this machine's folders appear in the workspace as ``NAME`` (a symbolic
    link), so a session's command names ``data/`` or ``output/`` and each machine chooses where
    they are. Returns the links (the caller removes them before the workspace is wiped)."""
    links: list[Path] = []
    for name, target in sorted(folders.items()):
        if not _FOLDER.fullmatch(name) or name in (".", ".."):
            raise UsageError(f"this machine's folder name {name!r} is not a plain name")
        if not target.is_dir():
            raise UsageError(
                f"this machine's folder {name} ({target}) is not a folder: create it, or fix "
                "the profile (`seml doctor` checks them)"
            )
        link = workspace / name
        if link.exists() or link.is_symlink():
            raise PolicyError(
                f"this machine's folder {name} collides with /{name} of the session (a volume "
                "or an injected file): give the folder another name in the profile"
            )
        link.symlink_to(target.absolute(), target_is_directory=True)
        links.append(link)
    return links


def resolve_seml(command: Sequence[str], seml: Sequence[str]) -> list[str]:
    """A command whose program is `seml` runs this machine's seml (`seml` need not be on PATH,
    and the session names no install path, so every machine measures the same command)."""
    if command and command[0] == "seml" and seml:
        return [*seml, *command[1:]]
    return list(command)
