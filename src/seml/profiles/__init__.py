"""Machine profiles: the configuration file that says how this machine takes part in SEML.

`seml init` writes a profile, `seml doctor` checks the machine against it, and the CLI's edge
(`seml.cli._machine`) reads it: the one place it is read. Libraries never read it; they are
given the values.
"""

from seml.profiles._file import (
    CONFIG_DIR_ENV,
    PROFILE_ENV,
    Selected,
    config_path,
    load_config,
    save_config,
    select_profile,
)
from seml.profiles._model import (
    PROFILE_NAME,
    VARIABLES,
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
    storage_environment,
)

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
