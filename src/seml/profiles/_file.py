"""Where the configuration file lives, reading and writing it, and choosing a profile.

One file per user: ``$SEML_CONFIG_DIR/config.yaml``, else ``$XDG_CONFIG_HOME/seml/config.yaml``,
else ``~/.config/seml/config.yaml``; written 0600 in a 0700 folder, whole or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from seml.errors import StorageError, UsageError
from seml.profiles._env import PROFILE_ENV, Selected
from seml.profiles._model import ConfigFile, dump_config, parse_config

__all__ = ["load_config", "save_config", "select_profile"]


def load_config(path: Path) -> ConfigFile:
    """The configuration at `path`; an empty one if the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ConfigFile()
    except (OSError, UnicodeDecodeError) as e:
        raise StorageError(f"cannot read the seml configuration {path}: {e}") from e
    return parse_config(text, source=str(path))


def save_config(path: Path, config: ConfigFile) -> None:
    """Write the configuration 0600 (its folder 0700 when created here), atomically."""
    from seml._fs import write_atomic

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create {path.parent}: {e.strerror or e}") from e
    write_atomic(path, dump_config(config), mode=0o600)


def select_profile(
    config: ConfigFile, path: Path, *, flag: str | None, environ: Mapping[str, str]
) -> Selected:
    """--profile, else $SEML_PROFILE, else the file's current profile, else none. A profile
    asked for by name must exist."""
    for name, how in ((flag, "--profile"), (environ.get(PROFILE_ENV), PROFILE_ENV)):
        if name:
            if name not in config.profiles:
                known = ", ".join(sorted(config.profiles)) or "none"
                raise UsageError(
                    f"no profile {name!r} in {path} (given by {how}; profiles: {known}); "
                    "create it with `seml init`"
                )
            return Selected(name, config.profiles[name], path, how)
    if config.current is not None:
        return Selected(config.current, config.profiles[config.current], path, "current")
    return Selected(None, None, path, "none")
