"""Machine profiles: the configuration file that says how this machine takes part in SEML.

`seml init` writes a profile, `seml doctor` checks the machine against it, and the CLI's edge
(`seml.cli._machine`) reads it: the one place it is read. Libraries never read it; they are
given the values. The models (pydantic, YAML) load on first use: `seml run` on a machine without
a configuration file does not pay for them.
"""

from typing import TYPE_CHECKING, Any

from seml.profiles._env import CONFIG_DIR_ENV, PROFILE_ENV, VARIABLES, Selected, config_path

if TYPE_CHECKING:
    from seml.profiles._file import load_config, save_config, select_profile
    from seml.profiles._model import (
        PROFILE_NAME,
        CasEndpoint,
        ConfigFile,
        Credentials,
        CredentialVariables,
        Profile,
        ServiceSettings,
        StorageSettings,
        dump_config,
        parse_config,
        profile_variables,
    )
    from seml.profiles._storage import storage_environment

_LAZY = {
    **dict.fromkeys(("load_config", "save_config", "select_profile"), "seml.profiles._file"),
    **dict.fromkeys(
        (
            "PROFILE_NAME",
            "CasEndpoint",
            "ConfigFile",
            "CredentialVariables",
            "Credentials",
            "Profile",
            "ServiceSettings",
            "StorageSettings",
            "dump_config",
            "parse_config",
            "profile_variables",
        ),
        "seml.profiles._model",
    ),
    "storage_environment": "seml.profiles._storage",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seml.profiles' has no attribute {name!r}")


__all__ = [
    "CONFIG_DIR_ENV",
    "PROFILE_ENV",
    "PROFILE_NAME",
    "VARIABLES",
    "CasEndpoint",
    "ConfigFile",
    "CredentialVariables",
    "Credentials",
    "Profile",
    "Selected",
    "ServiceSettings",
    "StorageSettings",
    "config_path",
    "dump_config",
    "load_config",
    "parse_config",
    "profile_variables",
    "save_config",
    "select_profile",
    "storage_environment",
]
