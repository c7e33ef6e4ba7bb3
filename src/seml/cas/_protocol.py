"""What travels between the service and its clients (besides session documents).

`ServiceConfig` is what `seml run` receives at every service start: a frozen dataclass with its
own strict parser (exact key set, exact JSON types, no coercion), so the workload's runtime
loads no schema library for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

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
    "listing_challenge",
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


@dataclass(frozen=True)
class VolumeGrant:
    """A protected volume a service mounts: its key and where its version tag is kept."""

    path: str
    key: str = field(repr=False)  # hex, 32 bytes
    owner: str  # the session that owns the volume (differs from the service's when imported)
    volume: str
    token: str = field(repr=False)  # capability for /v1/volumes/{owner}/{volume}

    def __post_init__(self) -> None:
        for name in ("path", "key", "owner", "volume", "token"):
            _expect(f"volume grant {name}", getattr(self, name), str)


@dataclass(frozen=True)
class ServiceConfig:
    """The resolved configuration an attested service receives. repr shows no secret values.

    Built by the service (`seml.cas._resolve`), sent as `to_json`, read back with `from_json`;
    either way every field is checked for its exact type (ValueError naming the field)."""

    session: str
    session_hash: str
    service: str
    measurement: str
    tee: str
    simulated: bool
    weaknesses: list[str]
    command: list[str] = field(repr=False)
    environment: dict[str, str] = field(repr=False)
    files: dict[str, str] = field(repr=False)
    volumes: dict[str, VolumeGrant]
    secrets: list[str]  # names released (values only inside environment/files/command)
    storage: str | None = None

    # The capability for this attestation's completion report (`seml.receipt.CompletionReport`):
    # only the attested workload's runtime holds it.
    completion: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("session", "session_hash", "service", "measurement", "tee"):
            _expect(name, getattr(self, name), str)
        _expect("simulated", self.simulated, bool)
        for name in ("weaknesses", "command", "secrets"):
            _expect(name, getattr(self, name), list)
            for item in getattr(self, name):
                _expect(f"an item of {name}", item, str)
        for name in ("environment", "files"):
            _expect(name, getattr(self, name), dict)
            for key, value in getattr(self, name).items():
                _expect(f"a key of {name}", key, str)
                _expect(f"{name}[{key!r}]", value, str)
        _expect("volumes", self.volumes, dict)
        for key, grant in self.volumes.items():
            _expect("a key of volumes", key, str)
            _expect(f"volumes[{key!r}]", grant, VolumeGrant)
        for name in ("storage", "completion"):
            if getattr(self, name) is not None:
                _expect(name, getattr(self, name), str)

    def replace(self, **changes: Any) -> ServiceConfig:
        """A copy with `changes` applied (checked like any other)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        # What `dataclasses.asdict` gives (fields in order, grants as objects), without its
        # deep copy of every value: every field holds only str, bool, None, or lists and dicts
        # of str, which JSON writes as they are (`__post_init__` checked that).
        data = {name: getattr(self, name) for name in _CONFIG_FIELDS}
        data["volumes"] = {
            key: {name: getattr(grant, name) for name in _GRANT_FIELDS}
            for key, grant in self.volumes.items()
        }
        return _COMPACT.encode(data)

    @classmethod
    def from_json(cls, data: bytes | str) -> ServiceConfig:
        """Parse what `to_json` wrote: a JSON object with exactly these fields (the optional
        ones may be absent), each of its exact JSON type; ValueError naming what is wrong."""
        document = json.loads(data)
        fields = _fields(cls, document, "service configuration")
        volumes = fields.get("volumes")
        if isinstance(volumes, dict):
            fields["volumes"] = {
                name: VolumeGrant(**_fields(VolumeGrant, grant, f"volume grant {name!r}"))
                for name, grant in volumes.items()
            }
        return cls(**fields)


_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(ServiceConfig))
_GRANT_FIELDS = tuple(f.name for f in dataclasses.fields(VolumeGrant))
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _fields(cls: type, document: object, what: str) -> dict[str, Any]:
    """`document`'s items, if it is a JSON object with all of `cls`'s required fields and no
    other key."""
    if not isinstance(document, dict):
        raise ValueError(f"{what} is not a JSON object")
    known = {f.name: f for f in dataclasses.fields(cls)}
    extra = sorted(set(document) - set(known))
    if extra:
        raise ValueError(f"{what} has unknown field {extra[0]!r}")
    missing = [
        name
        for name, f in known.items()
        if name not in document
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{what} lacks field {missing[0]!r}")
    return dict(document)


def _expect(what: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise ValueError(f"{what} must be {kind.__name__}, not {type(value).__name__}")


def listing_challenge(nonce: bytes) -> bytes:
    """What a party signs to list the sessions its key is in (`GET /v1/parties/sessions`)."""
    return b"SEML sessions list v1\n" + nonce
