"""What a service needs from this machine to reach storage: the endpoint and the credentials
its profile points at, as the variables boto3 and `seml push`/`pull` read. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seml.profiles._model import StorageSettings

__all__ = ["storage_environment"]

# What boto3 reads for credentials, and settings that are not secret but that a workload reaching
# the same storage needs too.
_AWS_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
)
_AWS_SETTINGS = ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_MAX_ATTEMPTS", "AWS_CA_BUNDLE")


def storage_environment(
    storage: StorageSettings | None, environ: Mapping[str, str], *, endpoint: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """(variables, missing): what a service on this machine needs to reach its storage.

    `endpoint` (already resolved: flag > environment > profile) becomes SEML_S3_ENDPOINT. The
    credentials come from the profile's source: values of the variables it names (found in
    `environ`, passed under AWS's standard names), or AWS_PROFILE / AWS_SHARED_CREDENTIALS_FILE;
    without a source, AWS's standard variables that are set. `missing` names the variables the
    profile points at that `environ` lacks.
    """
    out: dict[str, str] = {}
    missing: list[str] = []
    if endpoint:
        out["SEML_S3_ENDPOINT"] = endpoint
    credentials = storage.credentials if storage is not None else None
    if credentials is None:
        out.update({k: environ[k] for k in _AWS_CREDENTIALS if environ.get(k)})
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
        if credentials.aws_profile:
            out["AWS_PROFILE"] = credentials.aws_profile
        if credentials.file:
            out["AWS_SHARED_CREDENTIALS_FILE"] = str(credentials.file)
    out.update({k: environ[k] for k in _AWS_SETTINGS if environ.get(k)})
    return out, missing
