"""What a service needs from this machine to reach storage: the endpoint and the credentials
its profile points at, as the variables boto3 and `seml push`/`pull` read.

Only values are passed, never a file for the service to read: an AWS config or credentials file
can name a `credential_process`, a command boto3 runs inside the service, so those variables
are code-loading (`seml._environ`) and `seml run` refuses them. A profile naming an AWS profile
or credentials file has its static keys read here, by seml, and passed as values."""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seml.profiles._model import StorageSettings

__all__ = ["storage_environment"]

# What boto3 reads for credentials, and settings that are not secret but that a workload reaching
# the same storage needs too.
_AWS_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# The keys of a shared-credentials file's profile that seml passes (as their variables).
_FILE_KEYS = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
}


def _file_keys(path: Path, profile: str) -> dict[str, str] | None:
    """The static keys of `profile` in the AWS shared-credentials file `path` (None: none)."""
    parser = configparser.RawConfigParser()
    try:
        with path.open(encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    if not parser.has_section(profile):
        return None
    section = parser[profile]
    out = {var: section[key].strip() for key, var in _FILE_KEYS.items() if section.get(key)}
    return out if "AWS_ACCESS_KEY_ID" in out and "AWS_SECRET_ACCESS_KEY" in out else None


_AWS_SETTINGS = ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_MAX_ATTEMPTS", "AWS_CA_BUNDLE")


def _default_file(environ: Mapping[str, str]) -> Path | None:
    """Where boto3 looks for shared credentials: $AWS_SHARED_CREDENTIALS_FILE, else
    ~/.aws/credentials of this machine's user (not the service's: its HOME is its workspace)."""
    if environ.get("AWS_SHARED_CREDENTIALS_FILE"):
        return Path(environ["AWS_SHARED_CREDENTIALS_FILE"]).expanduser()
    home = environ.get("HOME")
    return Path(home) / ".aws" / "credentials" if home else None


def storage_environment(
    storage: StorageSettings | None, environ: Mapping[str, str], *, endpoint: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """(variables, missing): what a service on this machine needs to reach its storage.

    `endpoint` (already resolved: flag > environment > profile) becomes SEML_S3_ENDPOINT. The
    credentials come from the profile's source: values of the variables it names (found in
    `environ`, passed under AWS's standard names), or the static keys of an AWS profile in a
    shared-credentials file, read here; without a source, AWS's standard key variables that
    are set (or, with only $AWS_PROFILE set, that profile's static keys). `missing` names what
    the profile points at that this machine lacks.
    """
    out: dict[str, str] = {}
    missing: list[str] = []
    if endpoint:
        out["SEML_S3_ENDPOINT"] = endpoint
    credentials = storage.credentials if storage is not None else None
    if credentials is None:
        out.update({k: environ[k] for k in _AWS_CREDENTIALS if environ.get(k)})
        if "AWS_ACCESS_KEY_ID" not in out and environ.get("AWS_PROFILE"):
            path = _default_file(environ)
            keys = _file_keys(path, environ["AWS_PROFILE"]) if path is not None else None
            out.update(keys or {})
    elif credentials.env is not None:
        names = {
            "AWS_ACCESS_KEY_ID": credentials.env.access_key_id,
            "AWS_SECRET_ACCESS_KEY": credentials.env.secret_access_key,
        }
        if credentials.env.session_token:
            names["AWS_SESSION_TOKEN"] = credentials.env.session_token
        for target, source in names.items():
            if environ.get(source):
                out[target] = environ[source]
            else:
                missing.append(source)
    else:
        profile = credentials.aws_profile or environ.get("AWS_PROFILE") or "default"
        path = credentials.file or _default_file(environ)
        keys = _file_keys(path, profile) if path is not None else None
        if keys is None:
            missing.append(f"static keys of profile [{profile}] in {path or '~/.aws/credentials'}")
        else:
            out.update(keys)
    out.update({k: environ[k] for k in _AWS_SETTINGS if environ.get(k)})
    return out, missing
