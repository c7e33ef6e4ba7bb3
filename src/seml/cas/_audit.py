"""The audit log: append-only entries, each hash-chained to the previous and signed.

Entry hash = sha256 over the canonical JSON of {seq, time, event, details, prev}; the service
signs ``b"SEML audit v1\\n" + hash`` with its Ed25519 identity. Anyone holding the service's public
key can check that no entry was edited, dropped or reordered (truncating the tail is only
detectable against a previously seen head: compare `seq`/`hash` with what you saw before).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from seml.errors import IntegrityError
from seml.policy import canonical_json, verify_ed25519

__all__ = ["GENESIS", "AuditEntry", "entry_hash", "verify_audit_chain"]

GENESIS = "sha256:" + "0" * 64
_DOMAIN = b"SEML audit v1\n"


class AuditEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int
    time: float
    event: str
    details: dict[str, Any]
    prev: str
    hash: str
    signature: str


def entry_hash(seq: int, time: float, event: str, details: dict[str, Any], prev: str) -> str:
    body = {"seq": seq, "time": time, "event": event, "details": details, "prev": prev}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def signing_message(hash_: str) -> bytes:
    return _DOMAIN + hash_.encode()


def verify_audit_chain(entries: Iterable[AuditEntry], public_key: bytes) -> int:
    """Check order, chain and signatures; return the number of entries. IntegrityError if not."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for e in entries:
        if e.seq != expected_seq:
            raise IntegrityError(f"audit entry {e.seq}: expected sequence number {expected_seq}")
        if e.prev != prev:
            raise IntegrityError(f"audit entry {e.seq}: not chained to entry {e.seq - 1}")
        if entry_hash(e.seq, e.time, e.event, e.details, e.prev) != e.hash:
            raise IntegrityError(f"audit entry {e.seq}: content does not match its hash (edited)")
        try:
            sig = base64.b64decode(e.signature, validate=True)
        except (binascii.Error, ValueError):
            sig = b""
        if not verify_ed25519(public_key, sig, signing_message(e.hash)):
            raise IntegrityError(f"audit entry {e.seq}: bad signature")
        prev = e.hash
        expected_seq += 1
        count += 1
    return count
