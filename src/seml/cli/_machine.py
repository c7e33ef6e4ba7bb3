"""This machine's settings: the one place the profile is read.

Every setting a command needs from the machine it runs on (the attestation service and its pin,
the platform and signing keys, the volumes and state folders, storage endpoint and credentials,
the machine's folders, the `seml` its services run) is resolved here, in one order:

1. a flag on the command line;
2. its environment variable (`seml.profiles.VARIABLES`: SEML_CAS, SEML_PLATFORM_KEY, ...);
3. the selected profile: ``seml --profile NAME``, else ``$SEML_PROFILE``, else the
   configuration file's current profile (``$SEML_CONFIG_DIR/config.yaml``, else
   ``~/.config/seml/config.yaml``);
4. the built-in default.

Typer commands get 3 through click's ``default_map``, which click consults after the flag and the
option's declared environment variable: an option takes a profile value exactly when it
declares one of the profile's variables. `seml run` (argparse) calls `run_machine`.

A `seml` started as a service's command (under `seml run`, which sets SEML_SERVICE) reads no
profile: the runtime passed it what this machine chose (`RunOptions.pass_env`), and the
service must not depend on which profile happens to be current.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seml.errors import UsageError

if TYPE_CHECKING:
    from seml.profiles import Profile, Selected

__all__ = [
    "RunMachine",
    "choose",
    "chosen",
    "click_defaults",
    "profile_values",
    "run_machine",
    "selected",
    "setting",
]

_chosen: str | None = None
_cache: dict[tuple[str | None, str, str | None, bool], Selected] = {}


def choose(name: str | None) -> None:
    """The profile given with ``seml --profile NAME`` (None: not given)."""
    global _chosen
    _chosen = name


def chosen() -> str | None:
    """The profile named with ``seml --profile NAME`` (None: not given)."""
    return _chosen


def _as_service(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("SEML_SERVICE"))


def selected(environ: Mapping[str, str] | None = None) -> Selected:
    """The profile in effect (read once per process and selection)."""
    from seml.profiles import Selected, config_path

    env = os.environ if environ is None else environ
    path = config_path(env)
    service = _as_service(env)
    key = (_chosen, str(path), env.get("SEML_PROFILE"), service)
    if key not in _cache:
        if service:
            _cache[key] = Selected(None, None, path, "none (running as a service)")
        elif not (_chosen or env.get("SEML_PROFILE")) and not path.exists():
            _cache[key] = Selected(None, None, path, "none")  # nothing to parse
        else:
            from seml.profiles import load_config, select_profile

            _cache[key] = select_profile(load_config(path), path, flag=_chosen, environ=env)
    return _cache[key]


def profile_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variable name -> the selected profile's value (only the variables it sets)."""
    profile = selected(environ).profile
    if profile is None:
        return {}
    from seml.profiles import profile_variables

    return profile_variables(profile)


def setting(
    variable: str, flag: object = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """flag > $variable > profile, as text (None: none of them)."""
    if flag is not None and flag != "":
        return str(flag)
    env = os.environ if environ is None else environ
    if env.get(variable):
        return env[variable]
    return profile_values(env).get(variable)


def _envvars(param: Any) -> list[str]:
    envvar = getattr(param, "envvar", None)
    if not envvar:
        return []
    return [envvar] if isinstance(envvar, str) else list(envvar)


def _declared(command: Any, names: frozenset[str]) -> bool:
    if any(e in names for p in getattr(command, "params", ()) for e in _envvars(p)):
        return True
    return any(_declared(c, names) for c in (getattr(command, "commands", None) or {}).values())


def _defaults(command: Any, values: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for param in getattr(command, "params", ()):
        for var in _envvars(param):
            if var in values:
                out[param.name] = values[var]
                break
    for name, sub in (getattr(command, "commands", None) or {}).items():
        if nested := _defaults(sub, values):
            out[name] = nested
    return out


def click_defaults(command: Any) -> dict[str, Any] | None:
    """A click ``default_map`` giving every option that declares a profile variable the
    selected profile's value (None when no option declares one: the file is not even read)."""
    from seml.profiles import VARIABLES

    if not _declared(command, frozenset(VARIABLES.values())):
        return None
    values = profile_values()
    return _defaults(command, values) if values else None


@dataclass(frozen=True)
class RunMachine:
    """What `seml run` takes from this machine."""

    profile: str | None
    cas_url: str | None
    cas_fingerprint: str | None
    volumes_dir: Path
    # Named (flag, environment or profile): must exist. Else the default one if it exists,
    # else None: a one-off platform for the run, which `seml run` announces.
    platform_key: Path | None
    seml: tuple[str, ...]
    folders: dict[str, Path] = field(default_factory=dict)
    pass_env: dict[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


def _folders(profile: Profile | None, flags: list[str]) -> dict[str, Path]:
    folders = dict(profile.folders) if profile is not None else {}
    for item in flags:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--folder wants NAME=PATH, got {item!r}")
        folders[name] = Path(path).absolute()
    return folders


def seml_executable(
    flag: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The argv that runs `seml` for this machine's services: flag > $SEML_EXECUTABLE >
    profile > this installation's own `seml` (so `seml` need not be on PATH)."""
    from seml.cli import seml_command

    chosen = setting("SEML_EXECUTABLE", flag, environ)
    return (chosen,) if chosen else tuple(seml_command())


def run_machine(
    *,
    cas_url: str | None,
    cas_fingerprint: str | None,
    volumes_dir: Path | None,
    platform_key: Path | None,
    seml: Path | None,
    folders: list[str],
    environ: Mapping[str, str] | None = None,
) -> RunMachine:
    from seml.profiles._storage import storage_environment
    from seml.runtime import default_platform_key

    env = os.environ if environ is None else environ
    chosen = selected(env)
    profile = chosen.profile
    volumes = setting("SEML_VOLUMES_DIR", volumes_dir, env)
    key = setting("SEML_PLATFORM_KEY", platform_key, env)
    pass_env, missing = storage_environment(
        profile.storage if profile is not None else None,
        env,
        endpoint=setting("SEML_S3_ENDPOINT", None, env),
    )
    if state := setting("SEML_STATE_DIR", None, env):
        pass_env["SEML_STATE_DIR"] = state
    return RunMachine(
        profile=chosen.name,
        cas_url=setting("SEML_CAS", cas_url, env),
        cas_fingerprint=setting("SEML_CAS_FINGERPRINT", cas_fingerprint, env),
        volumes_dir=Path(volumes) if volumes else Path("volumes"),
        platform_key=Path(key) if key else _existing(default_platform_key()),
        seml=seml_executable(seml, env),
        folders=_folders(profile, folders),
        pass_env=pass_env,
        missing=tuple(missing),
    )
