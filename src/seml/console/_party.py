"""The party's side of the console: what it reads at the attestation service and what it signs.

`PartyDesk` holds the party's signing key (loaded from this machine, never sent anywhere) and a
`CasClient` (pinned HTTPS). It reads exactly what the CLI reads with the same key (session
list, status, review, audit) and signs decisions in this process: the browser only ever sees
the results, and the service only ever sees signatures.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seml.errors import PolicyError, UsageError

if TYPE_CHECKING:
    from seml.cas import AuditEntry, CasClient, ProposalView, SessionStatus
    from seml.policy import PartyKey, Review

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

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

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
        """The audit log as the service serves it, chain and signatures verified
        (IntegrityError otherwise)."""
        with self._lock:
            return self.client.audit(verify=True)
