"""Session documents: schema, canonical hash, party keys, detached signatures, update rules.

Pure: nothing here touches the network; reading files is left to the caller (and the CLI).
"""

from seml.policy._approval import (
    SessionSignature,
    check_creation,
    check_update,
    sign_session,
    signature_message,
)
from seml.policy._document import (
    canonical_json,
    parse_session,
    schema_errors,
    session_from_document,
    session_hash,
)
from seml.policy._keys import (
    PartyKey,
    fingerprint,
    load_private_key,
    new_key_pair,
    parse_public_key,
    public_key_text,
    verify_ed25519,
    write_private_key,
)
from seml.policy._model import (
    PLACEHOLDER,
    Approval,
    Export,
    Placeholder,
    Secret,
    SecretImport,
    SecretKind,
    Security,
    Service,
    Session,
    Storage,
    Volume,
    VolumeImport,
    placeholders_in,
)

__all__ = [
    "PLACEHOLDER",
    "Approval",
    "Export",
    "PartyKey",
    "Placeholder",
    "Secret",
    "SecretImport",
    "SecretKind",
    "Security",
    "Service",
    "Session",
    "SessionSignature",
    "Storage",
    "Volume",
    "VolumeImport",
    "canonical_json",
    "check_creation",
    "check_update",
    "fingerprint",
    "load_private_key",
    "new_key_pair",
    "parse_public_key",
    "parse_session",
    "placeholders_in",
    "public_key_text",
    "schema_errors",
    "session_from_document",
    "session_hash",
    "sign_session",
    "signature_message",
    "verify_ed25519",
    "write_private_key",
]
