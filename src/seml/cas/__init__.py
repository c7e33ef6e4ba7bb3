"""The Configuration and Attestation Service (CAS): keeps sessions, guards their secrets, and
releases a service's configuration only to evidence the session allows.

Server side: `init_state_dir`, `serve` (HTTPS, SQLite WAL state, signed audit log), and
`LocalCas`, which runs `seml cas serve` as a child process on this machine (the demo, the bench,
the benchmarks and the tests all start their service through it).
Client side: `CasClient` (pinned certificate; typed answers: `ServiceInfo`, `SessionSummary`,
`SessionVersion`, `AuditEntry`; for proposals `SessionStatus`, `ProposalView`, `ProposalState`),
`ServiceConfig` (what an attested service gets).
"""

from typing import TYPE_CHECKING, Any

from seml.cas._client import CasClient, PinMismatchError, client_from_env
from seml.cas._protocol import ServiceConfig, VolumeGrant, cert_fingerprint

if TYPE_CHECKING:
    from seml.cas._audit import AuditEntry, verify_audit_chain
    from seml.cas._identity import CasIdentity, init_state_dir, load_identity
    from seml.cas._local import LocalCas
    from seml.cas._proposal_models import ProposalState, ProposalView, SessionStatus
    from seml.cas._results import ServiceInfo, SessionSummary, SessionVersion
    from seml.cas._serve import serve

# The server side (x509, SQLite, FastAPI) loads on first use: a workload under `seml run` only
# needs the client, and pays for every import at each start.
_LAZY = {
    "AuditEntry": "seml.cas._audit",
    "verify_audit_chain": "seml.cas._audit",
    "CasIdentity": "seml.cas._identity",
    "init_state_dir": "seml.cas._identity",
    "load_identity": "seml.cas._identity",
    "LocalCas": "seml.cas._local",
    "ProposalState": "seml.cas._proposal_models",
    "ProposalView": "seml.cas._proposal_models",
    "SessionStatus": "seml.cas._proposal_models",
    "ServiceInfo": "seml.cas._results",
    "SessionSummary": "seml.cas._results",
    "SessionVersion": "seml.cas._results",
    "serve": "seml.cas._serve",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seml.cas' has no attribute {name!r}")


__all__ = [
    "AuditEntry",
    "CasClient",
    "CasIdentity",
    "LocalCas",
    "PinMismatchError",
    "ProposalState",
    "ProposalView",
    "ServiceConfig",
    "ServiceInfo",
    "SessionStatus",
    "SessionSummary",
    "SessionVersion",
    "VolumeGrant",
    "cert_fingerprint",
    "client_from_env",
    "init_state_dir",
    "load_identity",
    "serve",
    "verify_audit_chain",
]
