"""What travels between the service and its clients (besides session documents)."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from seml.errors import (
    AttestationError,
    IntegrityError,
    NetworkError,
    PolicyError,
    SemlError,
    StorageError,
    UsageError,
)

__all__ = [
    "ServiceConfig",
    "VolumeGrant",
    "audit_challenge",
    "cert_fingerprint",
    "error_class",
    "error_kind",
    "read_challenge",
    "volume_subject",
]

# A refusal names its kind on the wire (`{"error": kind, "message": ...}`); the client raises the
# same class. The kinds are protocol words: subclasses travel as their category.
_ERROR_KINDS: tuple[tuple[str, type[SemlError]], ...] = (
    ("UsageError", UsageError),
    ("IntegrityError", IntegrityError),
    ("PolicyError", PolicyError),
    ("AttestationError", AttestationError),
    ("StorageError", StorageError),
    ("NetworkError", NetworkError),
)


def error_kind(e: SemlError) -> str:
    """The wire kind of a refusal (a server failure outside these categories is a NetworkError
    to the client: the service did not answer within the protocol)."""
    return next((kind for kind, cls in _ERROR_KINDS if isinstance(e, cls)), "NetworkError")


def error_class(kind: object) -> type[SemlError]:
    """The class a client raises for a refusal of `kind` (unknown kinds: NetworkError)."""
    return next((cls for k, cls in _ERROR_KINDS if k == kind), NetworkError)


def cert_fingerprint(der: bytes) -> str:
    """The pin of a certificate: ``sha256:`` and the hex SHA-256 of its DER bytes."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def read_challenge(name: str, nonce: bytes) -> bytes:
    """What a party signs to read session `name` (the nonce comes from the service)."""
    return b"SEML session read v1\n" + name.encode() + b"\n" + nonce


def audit_challenge(name: str, nonce: bytes) -> bytes:
    """What a party signs to read the audit entries of session `name`."""
    return b"SEML audit read v1\n" + name.encode() + b"\n" + nonce


def volume_subject(owner: str, volume: str) -> bytes:
    return b"seml-volume\x00" + owner.encode() + b"\x00" + volume.encode()


class VolumeGrant(BaseModel):
    """A protected volume a service mounts: its key and where its version tag is kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str
    key: str = Field(repr=False)  # hex, 32 bytes
    owner: str  # the session that owns the volume (differs from the service's when imported)
    volume: str
    token: str = Field(repr=False)  # capability for /v1/volumes/{owner}/{volume}


class ServiceConfig(BaseModel):
    """The resolved configuration an attested service receives. repr shows no secret values."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    session: str
    session_hash: str
    service: str
    measurement: str
    tee: str
    simulated: bool
    weaknesses: list[str]
    command: list[str] = Field(repr=False)
    environment: dict[str, str] = Field(repr=False)
    files: dict[str, str] = Field(repr=False)
    volumes: dict[str, VolumeGrant]
    storage: str | None = None
    secrets: list[str]  # names released (values only inside environment/files/command)
    # The capability for this attestation's completion report (`seml.receipt.CompletionReport`):
    # only the attested workload's runtime holds it.
    completion: str | None = Field(default=None, repr=False)
