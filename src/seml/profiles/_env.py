"""Names only: where the configuration file is, the variables a profile's values stand for,
and the record of which profile is in effect. Nothing is parsed here, so a command on a machine
without a configuration file pays nothing for profiles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seml.profiles._model import Profile

__all__ = [
    "CONFIG_DIR_ENV",
    "CONFIG_NAME",
    "PROFILE_ENV",
    "VARIABLES",
    "Selected",
    "config_path",
]

CONFIG_DIR_ENV = "SEML_CONFIG_DIR"
PROFILE_ENV = "SEML_PROFILE"
CONFIG_NAME = "config.yaml"

# Each profile setting and the environment variable that overrides it (and that `seml`'s own
# options read). Precedence, everywhere: flag > environment variable > profile > built-in default.
VARIABLES: dict[str, str] = {
    "cas.url": "SEML_CAS",
    "cas.fingerprint": "SEML_CAS_FINGERPRINT",
    "platform_key": "SEML_PLATFORM_KEY",
    "signing_key": "SEML_SIGNING_KEY",
    "volumes": "SEML_VOLUMES_DIR",
    "state": "SEML_STATE_DIR",
    "storage.endpoint": "SEML_S3_ENDPOINT",
    "storage.location": "SEML_STORAGE",
    "seml": "SEML_EXECUTABLE",
    "service.state": "SEML_CAS_STATE",
    "service.listen": "SEML_CAS_LISTEN",
    "service.advertise": "SEML_CAS_ADVERTISE",
}


def config_path(environ: Mapping[str, str]) -> Path:
    """``$SEML_CONFIG_DIR/config.yaml``, else ``$XDG_CONFIG_HOME/seml/config.yaml``, else
    ``~/.config/seml/config.yaml``."""
    if folder := environ.get(CONFIG_DIR_ENV):
        return Path(folder) / CONFIG_NAME
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "seml" / CONFIG_NAME


@dataclass(frozen=True)
class Selected:
    """The profile in effect and why: `how` is "--profile", "SEML_PROFILE", "current" or "none"."""

    name: str | None
    profile: Profile | None
    path: Path
    how: str
