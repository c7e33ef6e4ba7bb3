"""Detached session signatures and the rules for accepting a new session or an update.

A signature is Ed25519 over ``b"SEML session signature v1\\n" + hash`` (the domain prefix keeps a
session signature from ever being a valid signature of anything else a party signs).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from seml.errors import PolicyError, UsageError
from seml.policy._document import session_hash
from seml.policy._keys import PartyKey, fingerprint, parse_public_key, verify_ed25519
from seml.policy._model import Session

__all__ = [
    "SessionSignature",
    "check_creation",
    "check_update",
    "sign_session",
    "signature_message",
]

_DOMAIN = b"SEML session signature v1\n"


def signature_message(hash_: str) -> bytes:
    return _DOMAIN + hash_.encode()


class SessionSignature(BaseModel):
    """A detached signature file: who signed which session hash, with which key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    session: str = Field(max_length=64)
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    party: str = Field(max_length=64)
    key: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    signature: str = Field(max_length=200)

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "signature") -> SessionSignature:
        try:
            return cls.model_validate_json(text)
        except ValidationError as e:
            raise UsageError(
                f"{source}: not a session signature ({e.error_count()} errors)"
            ) from None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2) + "\n"

    def valid_for(self, hash_: str, raw_public_key: bytes) -> bool:
        if self.hash != hash_ or self.key != fingerprint(raw_public_key):
            return False
        try:
            sig = base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        return verify_ed25519(raw_public_key, sig, signature_message(hash_))


def sign_session(session: Session, party: str, key: PartyKey) -> SessionSignature:
    """Sign as `party`; refuses if `key` is not the key the session lists for that party."""
    listed = session.parties.get(party)
    if listed is None:
        raise UsageError(f"session {session.name} has no party {party}")
    if parse_public_key(listed) != key.public:
        raise UsageError(
            f"key {key.fingerprint} is not party {party}'s key in session {session.name}"
        )
    h = session_hash(session)
    return SessionSignature(
        session=session.name,
        hash=h,
        party=party,
        key=key.fingerprint,
        signature=base64.b64encode(key.sign(signature_message(h))).decode(),
    )


def _require(
    signers: Iterable[str],
    keys: dict[str, str],
    hash_: str,
    signatures: Iterable[SessionSignature],
    what: str,
) -> None:
    sigs = list(signatures)
    missing = []
    for party in sorted(set(signers)):
        raw = parse_public_key(keys[party])
        if not any(s.party == party and s.valid_for(hash_, raw) for s in sigs):
            missing.append(party)
    if missing:
        raise PolicyError(f"{what} needs a valid signature from {', '.join(missing)} over {hash_}")


def check_creation(session: Session, signatures: Iterable[SessionSignature]) -> None:
    """A first version: no predecessor and every `approval.create` party has signed."""
    if session.predecessor is not None:
        raise PolicyError(
            f"session {session.name} does not exist; a first version has predecessor: null"
        )
    _require(
        session.approval.create,
        session.parties,
        session_hash(session),
        signatures,
        f"creating session {session.name}",
    )


def check_update(
    previous: Session, session: Session, signatures: Iterable[SessionSignature]
) -> None:
    """An update names the latest version's hash and carries the signatures that version requires.

    The signers required are the predecessor's `approval.update` parties, verified with the keys
    the *predecessor* lists (an update cannot swap a party's key and sign with the new one), plus
    every party the update newly adds to its approval rules (nobody is enrolled without consent).
    """
    prev_hash = session_hash(previous)
    if session.name != previous.name:
        raise PolicyError(f"an update of {previous.name} cannot rename it to {session.name}")
    if session.predecessor is None:
        raise PolicyError(
            f"session {session.name} exists; an update must name its predecessor ({prev_hash})"
        )
    if session.predecessor != prev_hash:
        raise PolicyError(
            f"stale update of {session.name}: predecessor {session.predecessor} is not the "
            f"latest version {prev_hash}"
        )
    sigs = list(signatures)
    h = session_hash(session)
    _require(
        previous.approval.update, previous.parties, h, sigs, f"updating session {session.name}"
    )
    newcomers = {
        p
        for p in (*session.approval.create, *session.approval.update)
        if previous.parties.get(p) != session.parties[p]
    }
    _require(newcomers, session.parties, h, sigs, f"enrolling new approvers in {session.name}")
