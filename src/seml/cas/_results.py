"""The service's answers about itself and its sessions, as typed models (server and client).

The server builds its answers from these models and the client parses them back with the same
models, so the wire format has one definition. Kept apart from `_protocol` because they need the
session schema (`seml.policy`), which a workload under `seml run` never loads.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from seml.cas._audit import AuditEntry
from seml.policy import Session, SessionSignature

__all__ = ["AuditPage", "ServiceInfo", "SessionSummary", "SessionVersion", "SessionVersions"]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceInfo(_Answer):
    """`GET /v1/info`: who the service is."""

    service: str
    identity_key: str  # base64 Ed25519 public key: signs the audit log
    box_key: str  # base64 X25519 public key: provided secrets are sealed to it
    fingerprint: str  # sha256:... of its TLS certificate, the pin


class SessionSummary(_Answer):
    """One accepted version of a session (`POST /v1/sessions` answers with it)."""

    name: str
    hash: str
    version: int
    predecessor: str | None
    accepted: float  # unix time
    signers: list[str]


class SessionVersion(SessionSummary):
    """One accepted version with its document and signatures (`GET /v1/sessions/{name}`)."""

    document: Session
    signatures: list[SessionSignature]

    def to_json(self, *, document: bool = True) -> dict[str, object]:
        """Plain data, the document in its canonical form (as hashed and signed)."""
        exclude = None if document else {"document"}
        return self.model_dump(mode="json", by_alias=True, exclude=exclude)


class SessionVersions(_Answer):
    versions: list[SessionVersion]


class AuditPage(_Answer):
    """`GET /v1/audit`: entries after a sequence number, with the key that signed them."""

    identity_key: str
    entries: list[AuditEntry]
