"""The Configuration and Attestation Service (CAS): keeps sessions, guards their secrets, and
releases a service's configuration only to evidence the session allows.

Server side: `init_state_dir`, `serve` (HTTPS, SQLite WAL state, signed audit log).
Client side: `CasClient` (pinned certificate), `ServiceConfig` (what an attested service gets).
"""

from seml.cas._audit import AuditEntry, verify_audit_chain
from seml.cas._client import CasClient, client_from_env
from seml.cas._identity import CasIdentity, cert_fingerprint, init_state_dir, load_identity
from seml.cas._protocol import ServiceConfig, VolumeGrant
from seml.cas._serve import serve

__all__ = [
    "AuditEntry",
    "CasClient",
    "CasIdentity",
    "ServiceConfig",
    "VolumeGrant",
    "cert_fingerprint",
    "client_from_env",
    "init_state_dir",
    "load_identity",
    "serve",
    "verify_audit_chain",
]
