"""The configuration file of one user: named profiles, one per machine role, and a current one.

Like kubeconfig's contexts or rclone.conf's remotes: each profile says where this machine's
attestation service is and how it is pinned, which keys and folders this machine uses, how it
reaches storage and with which credentials SOURCE (names of environment variables, an AWS
profile or an AWS credentials file: never a secret value), and which `seml` executable its
services run. Pure: text in, models out, and back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from seml.errors import UsageError
from seml.profiles._env import VARIABLES

__all__ = [
    "FOLDER_NAME",
    "PROFILE_NAME",
    "VARIABLES",
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
]

PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
FOLDER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_MAX_CONFIG = 1 << 20


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"{path} is not an absolute path (a profile names folders by full path)")
    return path


AbsPath = Annotated[Path, AfterValidator(_absolute)]
EnvName = Annotated[str, StringConstraints(pattern=_ENV_NAME)]
FolderName = Annotated[str, StringConstraints(pattern=FOLDER_NAME)]


def _https(url: str) -> str:
    if not re.fullmatch(r"https://[^\s/]+(:\d{1,5})?/?", url):
        raise ValueError(f"{url!r} is not https://HOST:PORT")
    return url.rstrip("/")


def _pin(value: str) -> str:
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise ValueError(f"{value!r} is not sha256:<64 lowercase hex>")
    return value


HttpsUrl = Annotated[str, AfterValidator(_https)]


def _location(value: str) -> str:
    if not re.fullmatch(r"(s3://[^/\s]+(/\S*)?|file:///\S*)", value):
        raise ValueError(f"{value!r} is not s3://BUCKET[/PREFIX] or file:///PATH")
    return value


def _endpoint(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError(f"{value!r} is not http(s)://HOST[:PORT]")
    return value


Location = Annotated[str, AfterValidator(_location)]
Endpoint = Annotated[str, AfterValidator(_endpoint)]
Pin = Annotated[str, AfterValidator(_pin)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CasEndpoint(_Strict):
    """The attestation service this machine talks to, and its pinned certificate."""

    url: HttpsUrl | None = None
    fingerprint: Pin | None = None


class ServiceSettings(_Strict):
    """Operator only: the attestation service this machine runs (`seml cas serve`)."""

    state: AbsPath
    listen: str = "0.0.0.0:8443"
    advertise: HttpsUrl | None = None


class CredentialVariables(_Strict):
    """Names of the environment variables holding the storage key (never their values)."""

    access_key_id: EnvName = "AWS_ACCESS_KEY_ID"
    secret_access_key: EnvName = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a variable's name
    session_token: EnvName | None = None


class Credentials(_Strict):
    """Where this machine's storage credentials come from: environment variables (`env`), or an
    AWS profile (`aws_profile`) and/or an AWS shared-credentials file (`file`)."""

    env: CredentialVariables | None = None
    aws_profile: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@+-]{1,64}$")] | None = (
        None
    )
    file: AbsPath | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Credentials:
        if self.env is not None and (self.aws_profile is not None or self.file is not None):
            raise ValueError("credentials come from env, or from aws_profile and/or file: not both")
        if self.env is None and self.aws_profile is None and self.file is None:
            raise ValueError("credentials need env, aws_profile or file")
        return self


class StorageSettings(_Strict):
    """How this machine reaches object storage. `location` is where `seml doctor` probes."""

    location: Location | None = None
    endpoint: Endpoint | None = None
    credentials: Credentials | None = None


class Profile(_Strict):
    """One machine role's settings. Paths are absolute; no field holds a secret value."""

    role: Literal["party", "operator"]
    party: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")] | None = None
    signing_key: AbsPath | None = None
    platform_key: AbsPath | None = None
    cas: CasEndpoint = Field(default_factory=CasEndpoint)
    service: ServiceSettings | None = None
    volumes: AbsPath | None = None
    state: AbsPath | None = None
    folders: dict[FolderName, AbsPath] = Field(default_factory=dict)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    seml: AbsPath | None = None

    @model_validator(mode="after")
    def _role(self) -> Profile:
        if self.role == "party" and self.party is None:
            raise ValueError("a party profile names its party (party: NAME)")
        if self.role == "party" and self.service is not None:
            raise ValueError("only an operator profile runs an attestation service (service:)")
        return self


class ConfigFile(_Strict):
    """The whole file: profiles by name and the current one."""

    version: Literal[1] = 1
    current: Annotated[str, StringConstraints(pattern=PROFILE_NAME)] | None = None
    profiles: dict[Annotated[str, StringConstraints(pattern=PROFILE_NAME)], Profile] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _current_exists(self) -> ConfigFile:
        if self.current is not None and self.current not in self.profiles:
            raise ValueError(f"current profile {self.current!r} is not among the profiles")
        return self


def parse_config(text: str, *, source: str) -> ConfigFile:
    """The configuration in `text` (YAML); a UsageError naming `source` and the offending key."""
    import yaml

    if len(text) > _MAX_CONFIG:
        raise UsageError(f"{source}: larger than {_MAX_CONFIG} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"{source}: not valid YAML{where}") from None
    if data is None:
        return ConfigFile()
    if not isinstance(data, dict):
        raise UsageError(f"{source}: a seml configuration is a mapping")
    from seml.policy import schema_errors

    with schema_errors(source):
        return ConfigFile.model_validate(data)


_HEADER = """\
# seml configuration: one profile per machine role (like kubeconfig contexts).
# Written by `seml init`; select a profile with --profile NAME or SEML_PROFILE, else `current`.
# Flags and environment variables override a profile's values. No secret value belongs here:
# storage credentials are named by their source (variables, AWS profile, credentials file).
"""


def dump_config(config: ConfigFile) -> str:
    import yaml

    class _Plain(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    data = config.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    return _HEADER + yaml.dump(data, Dumper=_Plain, sort_keys=False, width=100)


def _get(profile: Profile, dotted: str) -> Any:
    value: Any = profile
    for part in dotted.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def profile_variables(profile: Profile) -> dict[str, str]:
    """The environment variables this profile gives values to (see `VARIABLES`)."""
    out: dict[str, str] = {}
    for dotted, var in VARIABLES.items():
        value = _get(profile, dotted)
        if value is not None:
            out[var] = str(value)
    return out
