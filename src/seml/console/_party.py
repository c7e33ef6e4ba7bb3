"""The party's side of the console: what it reads at the attestation service and what it signs.

`PartyDesk` holds the party's signing key (loaded from this machine, never sent anywhere) and a
`CasClient` (pinned HTTPS). It reads exactly what the CLI reads with the same key (session
list, status, review, audit) and signs decisions in this process: the browser only ever sees
the results, and the service only ever sees signatures.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from seml.errors import PolicyError, UsageError

if TYPE_CHECKING:
    from seml.cas import AuditEntry, CasClient, ProposalView, SessionStatus
    from seml.cas._receipt_models import ReceiptEntry, ReceiptList, ReleaseStatus
    from seml.policy import PartyKey, Review, Session
    from seml.receipt import ManifestSeen, ReceiptCheck

__all__ = ["DECISIONS", "PartyDesk"]

_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
DECISIONS = ("approve", "reject")


def check_subject(subject: str) -> str:
    """A session name or a sha256: hash, else a UsageError (before anything reaches the
    service)."""
    if not (_HASH.match(subject) or _NAME.match(subject)):
        raise UsageError("not a session name or a sha256: hash")
    return subject


@dataclass
class PartyDesk:
    """One party's view of one attestation service. Calls are serialised: the console's
    handlers run in threads and share one pinned client."""

    client: CasClient
    key: PartyKey
    label: str  # the profile's party name, or the key's fingerprint
    # The service's identity key as the party pinned it (`--cas-identity`); None: the one the
    # service states over the pinned TLS connection.
    identity: bytes | None = None
    # This machine's sync state folder (the profile's `state`): its `sync-versions.json` holds
    # the manifests this party pushed, which a receipt's inputs are checked against.
    state_dir: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def session_names(self) -> list[str]:
        with self._lock:
            return self.client.my_sessions(self.key)

    def status(self, subject: str) -> SessionStatus:
        with self._lock:
            return self.client.session_status(check_subject(subject), self.key)

    def statuses(self) -> list[SessionStatus]:
        return [self.status(name) for name in self.session_names()]

    def review(self, subject: str) -> tuple[SessionStatus, Review]:
        from seml.cas._review_read import review_at_service

        status = self.status(subject)
        with self._lock:
            return status, review_at_service(self.client, self.key, subject, status)

    def proposal(self, hash_: str) -> tuple[SessionStatus, ProposalView]:
        if not _HASH.match(hash_):
            raise UsageError("a proposal is named by its sha256: hash")
        status = self.status(hash_)
        for p in status.proposals:
            if p.hash == hash_:
                return status, p
        raise UsageError(f"{hash_} is not a proposal of {status.name} that you are a party of")

    def decide(self, hash_: str, decision: str) -> ProposalView:
        """Sign `decision` (approve or reject) of proposal `hash_` with the party's key, here,
        and upload the signature."""
        from seml.policy import Decision, decision_party, sign_decision

        if decision not in DECISIONS:
            raise UsageError(f"decision must be one of {', '.join(DECISIONS)}")
        status, view = self.proposal(hash_)
        if view.state.closed:
            raise PolicyError(f"proposal {hash_} is {view.state.value}: it takes no decision")
        previous = None
        if status.active is not None and status.active.hash == view.predecessor:
            previous = status.active.document
        party = decision_party(previous, view.document, self.key.public)
        signed = sign_decision(view.hash, view.name, party, self.key, Decision(decision))
        with self._lock:
            return self.client.decide(signed)

    def audit(self) -> list[AuditEntry]:
        """The audit log as this party may read it: the whole chain (hashes and signatures
        verified, IntegrityError otherwise), with content shown for the entries of the sessions
        it is a party of (the service asks for a signed challenge per session)."""
        from seml.policy import parse_public_key

        by_party: dict[str, list[str]] = {}
        for status in self.statuses():
            if status.active is None:
                continue
            parties = status.active.document.parties
            me = next(
                (p for p, t in parties.items() if parse_public_key(t) == self.key.public), None
            )
            if me is not None:
                by_party.setdefault(me, []).append(status.name)
        merged: dict[int, AuditEntry] = {}
        with self._lock:
            if not by_party:
                return self.client.audit(verify=True)
            for party, sessions in sorted(by_party.items()):
                for e in self.client.audit(verify=True, party=(party, self.key), sessions=sessions):
                    if e.seq not in merged or e.revealed:
                        merged[e.seq] = e
        return [merged[seq] for seq in sorted(merged)]

    # -- runs and models ----------------------------------------------------------------

    def identity_key(self) -> tuple[bytes, str]:
        """The key receipts must be signed with, and where it comes from (in words)."""
        if self.identity is not None:
            return self.identity, "the identity key you pinned (--cas-identity)"
        with self._lock:
            info = self.client.info()
        return (
            base64.b64decode(info.identity_key),
            "the identity key the service states over its pinned TLS connection",
        )

    def receipts(self, session: str) -> ReceiptList:
        with self._lock:
            return self.client.receipts(check_subject(session), self.key)

    def session_at(self, name: str, hash_: str) -> Session | None:
        """The version `hash_` of session `name`, if this party can read it (a party's signed
        challenge: a hash alone reads nothing)."""
        from seml.cas._review_read import read_version

        with self._lock:
            v = read_version(self.client, self.key, check_subject(name), hash_)
        return v.document if v is not None else None

    def manifests(self) -> list[ManifestSeen]:
        """The manifests this machine pushed or pulled (none without a state folder)."""
        from seml.receipt import parse_sync_state

        if self.state_dir is None:
            return []
        path = self.state_dir / "sync-versions.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror or e}") from e
        return parse_sync_state(data, source=str(path))

    def verify(self, data: bytes) -> tuple[ReceiptCheck, str]:
        """A receipt (JSON bytes) checked here: the service's signature with the identity key,
        its consistency, the session version it names (when this party can read it) and this
        party's inputs against this machine's sync state. Also where the key came from."""
        from seml.receipt import verify_receipt

        identity, source = self.identity_key()
        session: Session | None = None
        manifests: dict[str, list[ManifestSeen]] = {}
        try:
            doc = json.loads(data)
            bound = doc["receipt"]["session"]
            name, hash_, parties = str(bound["name"]), str(bound["hash"]), dict(bound["parties"])
        except (ValueError, KeyError, TypeError):
            name = hash_ = ""
            parties = {}
        if name and hash_:
            try:
                session = self.session_at(name, hash_)
            except UsageError:
                session = None
            seen = self.manifests()
            for party, fp in parties.items():
                if fp == self.key.fingerprint and seen:
                    manifests[str(party)] = seen
        check = verify_receipt(data, identity, session=session, manifests=manifests or None)
        return check, source

    def receipt(self, session: str, receipt_id: str) -> ReceiptEntry:
        for entry in self.receipts(session).receipts:
            if entry.receipt.id == receipt_id:
                return entry
        raise UsageError(f"no receipt {receipt_id} of session {session} that you may read")

    def decide_model(self, session: str, receipt_id: str, decision: str) -> ReleaseStatus:
        """Sign an approval or rejection of the model receipt `receipt_id` names, here, with the
        party's key, and upload it."""
        from seml.policy import Decision, sign_model_decision

        if decision not in DECISIONS:
            raise UsageError(f"decision must be one of {', '.join(DECISIONS)}")
        entry = self.receipt(session, receipt_id)
        body = entry.receipt.receipt
        mine = [p for p, fp in body.session.parties.items() if fp == self.key.fingerprint]
        if not mine:
            raise PolicyError(f"your key is no party's in session {session} of this receipt")
        signed = sign_model_decision(
            body.model.digest, session, mine[0], self.key, Decision(decision)
        )
        with self._lock:
            return self.client.decide_model(signed)
