"""The audit log: append-only entries, hash-chained, signed, readable in parts.

Each entry commits to its content with a salted hash, and the chain links only the commitments:

    body = sha256(canonical JSON of {time, event, details, salt})     (salt: 16 random bytes)
    hash = sha256(canonical JSON of {seq, prev, body})
    signature = Ed25519(identity key, b"SEML audit v2\\n" + hash)

So the chain can be shown without the content: anyone can check that entries are numbered
without gaps, linked and signed (and compare the head with one seen before: truncating the tail
is only detectable that way), while the content of an entry (who got which secret, which
session, which measurement) is shown only to whom may read it: a party of a session the entry
names, after a signed challenge, and the operator reading the state folder. The salt keeps an
outsider from confirming a guess of an entry's content against its commitment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from seml.errors import IntegrityError
from seml.policy import canonical_json, verify_ed25519

__all__ = [
    "GENESIS",
    "AuditEntry",
    "body_hash",
    "entry_hash",
    "new_salt",
    "signing_message",
    "verify_audit_chain",
]

GENESIS = "sha256:" + "0" * 64
_DOMAIN = b"SEML audit v2\n"


class AuditEntry(BaseModel):
    """One entry; `time`, `event`, `details` and `salt` are None unless the reader may see it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int
    prev: str
    body: str
    hash: str
    signature: str
    time: float | None = None
    event: str | None = None
    details: dict[str, Any] | None = None
    salt: str | None = None

    @property
    def revealed(self) -> bool:
        return self.salt is not None

    def sealed(self) -> AuditEntry:
        """The same entry without its content (what an outsider sees)."""
        return self.model_copy(update={"time": None, "event": None, "details": None, "salt": None})


def new_salt() -> str:
    return os.urandom(16).hex()


def _sha256(data: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(data)).hexdigest()


def body_hash(time: float, event: str, details: dict[str, Any], salt: str) -> str:
    return _sha256({"time": time, "event": event, "details": details, "salt": salt})


def entry_hash(seq: int, prev: str, body: str) -> str:
    return _sha256({"seq": seq, "prev": prev, "body": body})


def signing_message(hash_: str) -> bytes:
    return _DOMAIN + hash_.encode()


def verify_audit_chain(entries: Iterable[AuditEntry], public_key: bytes) -> int:
    """Check order, links, commitments, signatures, and the content of every revealed entry;
    return the number of entries. IntegrityError naming the first entry that fails."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for e in entries:
        if e.seq != expected_seq:
            raise IntegrityError(f"audit entry {e.seq}: expected sequence number {expected_seq}")
        if e.prev != prev:
            raise IntegrityError(f"audit entry {e.seq}: not chained to entry {e.seq - 1}")
        if entry_hash(e.seq, e.prev, e.body) != e.hash:
            raise IntegrityError(f"audit entry {e.seq}: does not match its hash (edited)")
        try:
            sig = base64.b64decode(e.signature, validate=True)
        except (binascii.Error, ValueError):
            sig = b""
        if not verify_ed25519(public_key, sig, signing_message(e.hash)):
            raise IntegrityError(f"audit entry {e.seq}: bad signature")
        shown = (e.time, e.event, e.details, e.salt)
        if any(x is not None for x in shown):
            if e.time is None or e.event is None or e.details is None or e.salt is None:
                raise IntegrityError(f"audit entry {e.seq}: content shown only in part")
            if body_hash(e.time, e.event, e.details, e.salt) != e.body:
                raise IntegrityError(f"audit entry {e.seq}: content does not match (edited)")
        prev = e.hash
        expected_seq += 1
        count += 1
    return count
