"""The review of a session version or proposal held by the service, as a party reads it.

One home for what `seml session review NAME --key` and the console's review page show: pick the
version (a hash, or the session's one open proposal, else its active version), read what its
exports pin and which hashes the sessions it imports from export to, and build the `Review`
(`seml.policy.review_session`) with the changes from its predecessor.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from seml.errors import PolicyError, UsageError

if TYPE_CHECKING:
    from seml.cas._client import CasClient
    from seml.cas._proposal_models import SessionStatus
    from seml.cas._results import SessionVersion
    from seml.policy import ExportTarget, PartyKey, Review, Session

__all__ = ["export_targets", "pick_for_review", "read_version", "review_at_service"]

_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


def read_version(client: CasClient, key: PartyKey, name: str, hash_: str) -> SessionVersion | None:
    """Version `hash_` of session `name` as the party holding `key` reads it (the service shows
    a session's versions to its parties only); None when it cannot."""
    from seml.policy import parse_public_key

    try:
        active = client.session_status(name, key).active
    except (PolicyError, UsageError):
        return None
    if active is None:
        return None
    if active.hash == hash_:
        return active
    party = next(
        (p for p, text in active.document.parties.items() if parse_public_key(text) == key.public),
        None,
    )
    if party is None:
        return None
    try:
        return client.get_session(name, party=(party, key), hash_=hash_)
    except (PolicyError, UsageError):
        return None


def export_targets(
    client: CasClient, key: PartyKey | None, session: Session
) -> dict[str, ExportTarget]:
    """The versions `session`'s exports pin, as far as the reader (`key`) may read them: an
    accepted version or a proposal of a session it is a party of, through its signed
    challenge (a hash alone reads nothing)."""
    from seml.policy import ExportTarget

    out: dict[str, ExportTarget] = {}
    pinned = {(e.session, e.session_hash) for x in session.secrets for e in x.export}
    pinned |= {(e.session, e.session_hash) for v in session.volumes for e in v.export}
    for target, h in sorted(pinned):
        if key is None:
            continue
        v = read_version(client, key, target, h)
        if v is not None:
            out[h] = ExportTarget(v.document, f"version {v.version} of {target}")
            continue
        try:
            st = client.session_status(h, key)
        except (PolicyError, UsageError):
            continue
        for p in st.proposals:
            if p.hash == h:
                out[h] = ExportTarget(p.document, f"{p.state.value} proposal of {target}")
    return out


def pick_for_review(status: SessionStatus, subject: str) -> tuple[Session, str, str | None]:
    """(session, what it is, its predecessor's hash) for a name or a hash."""
    if _HASH.match(subject):
        for p in status.proposals:
            if p.hash == subject:
                return p.document, f"{p.state.value} proposal by {p.proposer}", p.predecessor
        if status.active is not None and status.active.hash == subject:
            a = status.active
            return a.document, f"active version {a.version}", a.predecessor
        raise UsageError(f"{subject} is no version or proposal of {status.name} you may read")
    still_open = [p for p in status.proposals if not p.state.closed]
    if len(still_open) > 1:
        listed = "; ".join(f"{p.hash} by {p.proposer}" for p in still_open)
        raise UsageError(f"{len(still_open)} open proposals for {subject}: {listed}; give a hash")
    if still_open:
        p = still_open[0]
        what = f"open proposal by {p.proposer}, missing: {'; '.join(p.needs) or 'nothing'}"
        return p.document, what, p.predecessor
    if status.active is None:
        raise UsageError(f"{subject}: no open proposal and no active version you may read")
    a = status.active
    return a.document, f"active version {a.version}", a.predecessor


def review_at_service(
    client: CasClient, key: PartyKey, subject: str, status: SessionStatus | None = None
) -> Review:
    """The review of `subject` (a session name or a hash) as party `key` reads it at the
    service; `status` is a status read of `subject` already made, if any."""
    from seml.policy import review_session

    if status is None:
        status = client.session_status(subject, key)
    session, what, previous_hash = pick_for_review(status, subject)
    predecessor = None
    if previous_hash is not None:
        if status.active is not None and status.active.hash == previous_hash:
            predecessor = status.active.document
        else:
            v = read_version(client, key, session.name, previous_hash)
            if v is None:
                raise PolicyError(
                    f"cannot read version {previous_hash} of {session.name}: only its "
                    "parties read a session's versions"
                )
            predecessor = v.document
    return review_session(
        session,
        predecessor=predecessor,
        status=what,
        targets=export_targets(client, key, session),
        pins={e.session: e.pinned for e in status.exporters if e.exists},
    )
