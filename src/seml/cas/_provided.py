"""Secret values a party provides: sealed to the service's key and signed by that party.

The party seals ``{session hash, secret name, value, signature}`` to the service's X25519 key
(NaCl sealed box). The signature is the providing party's Ed25519 signature over the session
hash, the secret name and sha256(value), so whoever carries the sealed blob to the service (any
submitter) can neither read the value nor swap in one of their own, and the value is bound to
exactly one session version.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from seml.errors import PolicyError, UsageError
from seml.policy import (
    PartyKey,
    SecretKind,
    Session,
    parse_public_key,
    session_hash,
    verify_ed25519,
)

__all__ = ["open_provided", "provided_message", "seal_provided"]


def provided_message(hash_: str, secret: str, value: bytes) -> bytes:
    digest = hashlib.sha256(value).hexdigest()
    return f"SEML provided secret v1\n{hash_}\n{secret}\n{digest}".encode()


def _provider(session: Session, secret: str) -> str:
    spec = session.secret(secret)
    if spec is None or spec.kind is not SecretKind.PROVIDED or spec.provided_by is None:
        raise UsageError(f"session {session.name} has no provided secret {secret}")
    return spec.provided_by


def seal_provided(
    box_key: bytes, session: Session, secret: str, value: bytes, key: PartyKey
) -> bytes:
    """Seal `value` for the service, signed by the party the session names as its provider."""
    party = _provider(session, secret)
    if parse_public_key(session.parties[party]) != key.public:
        raise UsageError(
            f"secret {secret} of session {session.name} is provided by {party}; "
            f"key {key.fingerprint} is not {party}'s"
        )
    h = session_hash(session)
    inner = {
        "hash": h,
        "secret": secret,
        "value": base64.b64encode(value).decode(),
        "signature": base64.b64encode(key.sign(provided_message(h, secret, value))).decode(),
    }
    sealed: bytes = SealedBox(PublicKey(box_key)).encrypt(json.dumps(inner).encode())
    return sealed


def open_provided(box: PrivateKey, session: Session, secret: str, sealed: bytes) -> bytes:
    """The value, if sealed to this service for this session version and signed by its provider."""
    party = _provider(session, secret)
    try:
        inner = json.loads(SealedBox(box).decrypt(sealed))
        h, name = str(inner["hash"]), str(inner["secret"])
        value = base64.b64decode(inner["value"], validate=True)
        signature = base64.b64decode(inner["signature"], validate=True)
    except (CryptoError, ValueError, KeyError, TypeError, binascii.Error) as e:
        raise UsageError(f"provided secret {secret} is not sealed to this service's key") from e
    if name != secret or h != session_hash(session):
        raise PolicyError(
            f"provided secret {secret} was sealed for another session version or secret"
        )
    if not verify_ed25519(
        parse_public_key(session.parties[party]), signature, provided_message(h, secret, value)
    ):
        raise PolicyError(f"provided secret {secret} is not signed by its provider {party}")
    return value
