"""Proposals and approvals held by the service: the lifecycle parties drive with
`seml session propose / approve / reject / withdraw / status`.

A party proposes a version (a first version, or an update of the latest one) with its own
approval; the other parties approve or reject it by uploading signed decisions, each checked
when it arrives. When the decisions meet the rule (`seml.policy.tally`: the new session's
`approval.create`, or the predecessor's `approval.update` plus the consent of newly enrolled
approvers), the version is accepted exactly as `POST /v1/sessions` would accept it with those
signatures (`CasService.submit`), in the same transaction as its activation entry in the
audit log. Every proposal, decision, withdrawal and activation is logged.

Every method takes `now`; nothing here speaks HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from seml.cas._ledger import Ledger, ProposalRecord
from seml.cas._proposal_models import (
    DecisionEntry,
    ExporterPins,
    ProposalState,
    ProposalView,
    SessionStatus,
    proposals_challenge,
)
from seml.cas._provided import open_provided
from seml.cas._service import CasService, NotFoundError
from seml.cas._state import SessionRecord
from seml.errors import IntegrityError, PolicyError, SemlError, UsageError
from seml.policy import (
    Decision,
    RuleState,
    SecretKind,
    Session,
    SignedDecision,
    Tally,
    check_lineage,
    fingerprint,
    parse_public_key,
    session_from_document,
    session_hash,
    tally,
    verify_decision,
    verify_ed25519,
)

__all__ = ["MAX_OPEN", "ProposalDesk"]

# Open proposals per session name: enough for real negotiation, not a way to fill the disk.
MAX_OPEN = 16
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_PAST = {Decision.APPROVE: "approved", Decision.REJECT: "rejected", Decision.WITHDRAW: "withdrawn"}


@dataclass(frozen=True)
class _Standing:
    state: ProposalState
    reason: str
    version: int | None
    tally: Tally
    decisions: list[tuple[SignedDecision, float]]
    previous: SessionRecord | None  # the version it updates


def _fp(text: str) -> str:
    return fingerprint(parse_public_key(text))


def _imports(session: Session) -> set[str]:
    return {s.import_.session for s in session.secrets if s.import_ is not None} | {
        v.import_.session for v in session.volumes if v.import_ is not None
    }


class ProposalDesk:
    def __init__(self, service: CasService) -> None:
        self.service = service
        self.store = service.store
        self.ledger = Ledger(service.store)

    # -- state ------------------------------------------------------------------------

    def _standing(self, record: ProposalRecord) -> _Standing:
        s = record.session
        previous = self.store.by_hash(s.predecessor) if s.predecessor is not None else None
        if s.predecessor is not None and previous is None:
            raise IntegrityError(f"proposal {record.hash} updates {s.predecessor}, not stored")
        decisions = self.ledger.decisions(record.hash)
        t = tally(previous.session if previous else None, s, [d for d, _ in decisions])

        def standing(state: ProposalState, reason: str, version: int | None = None) -> _Standing:
            return _Standing(state, reason, version, t, decisions, previous)

        accepted = self.store.by_hash(record.hash)
        if accepted is not None:
            return standing(
                ProposalState.ACCEPTED,
                f"accepted as version {accepted.version}",
                accepted.version,
            )
        withdrawal = next((d for d, _ in decisions if d.decision is Decision.WITHDRAW), None)
        if withdrawal is not None:
            return standing(ProposalState.WITHDRAWN, f"withdrawn by {withdrawal.party}")
        latest = self.store.latest(s.name)
        if latest is not None and latest.hash != s.predecessor:
            what = "created" if s.predecessor is None else "updated"
            return standing(
                ProposalState.SUPERSEDED,
                f"{s.name} was {what} meanwhile: it is now version {latest.version} "
                f"({latest.hash}); propose again from it",
            )
        if t.state is RuleState.DEFEATED:
            return standing(ProposalState.DEFEATED, t.reason)
        if t.state is RuleState.SATISFIED:
            return standing(
                ProposalState.APPROVED,
                self._blocking(record, previous) or "the rule is met; not accepted yet",
            )
        return standing(ProposalState.OPEN, t.missing)

    def _blocking(self, record: ProposalRecord, previous: SessionRecord | None) -> str:
        """Why an approved proposal cannot be accepted yet: provided secrets not attached (and
        not kept from the predecessor, as `CasService.submit` would keep them)."""
        attached = set(self.ledger.provided(record.hash))
        missing = []
        for secret in record.session.secrets:
            if secret.kind is not SecretKind.PROVIDED or secret.name in attached:
                continue
            before = previous.session.secret(secret.name) if previous is not None else None
            kept = before is not None and (before.kind, before.size) == (secret.kind, secret.size)
            if not kept:
                missing.append(f"{secret.name} (from {secret.provided_by})")
        if not missing:
            return ""
        return (
            f"waiting for provided secret {', '.join(missing)}: its provider attaches it with "
            "`seml session approve --secret-file NAME=FILE`"
        )

    def _view(self, record: ProposalRecord, note: str = "") -> ProposalView:
        st = self._standing(record)
        t = st.tally
        is_open = st.state is ProposalState.OPEN
        return ProposalView(
            name=record.session.name,
            hash=record.hash,
            predecessor=record.session.predecessor,
            proposer=record.proposer,
            created=record.created,
            state=st.state,
            reason=st.reason,
            version=st.version,
            rule=t.rule,
            approved=list(t.approved),
            rejected=list(t.rejected),
            needs=list(t.needs) if is_open else [],
            waiting=list(t.waiting) if is_open else [],
            provided=sorted(self.ledger.provided(record.hash)),
            decisions=[DecisionEntry(decision=d, time=when) for d, when in st.decisions],
            document=record.session,
            note=note,
        )

    def _activate(self, record: ProposalRecord, now: float) -> str:
        """Accept the proposal if its rule is met and nothing blocks it; a note if it cannot."""
        st = self._standing(record)
        if st.state is not ProposalState.APPROVED or self._blocking(record, st.previous):
            return ""
        try:
            self.service.submit(
                record.session.document(),
                list(st.tally.signatures),
                self.ledger.provided(record.hash),
                now,
                proposal={"proposer": record.proposer, "approvers": list(st.tally.approved)},
            )
        except SemlError as e:
            return f"the rule is met but the version was not accepted: {e}"
        return ""

    def _check_provided(self, session: Session, provided: dict[str, bytes]) -> None:
        for name, sealed in provided.items():
            open_provided(self.service.identity.box_key, session, name, sealed)

    # -- writing ----------------------------------------------------------------------

    def propose(
        self, document: Any, signature: SignedDecision, provided: dict[str, bytes], now: float
    ) -> ProposalView:
        """Keep a proposed version, with its proposer's approval (a party of the new session,
        or of the version an update follows) and any provided secrets it attaches."""
        session = session_from_document(document, source="proposed session")
        h = session_hash(session)
        if signature.decision is not Decision.APPROVE:
            raise UsageError(
                f"a proposal carries its proposer's approval, not a {signature.decision.value}"
            )
        if signature.hash != h:
            raise UsageError(f"the proposer's approval is about {signature.hash}, not {h}")
        accepted = self.store.by_hash(h)
        if accepted is not None:
            raise PolicyError(f"{h} is already version {accepted.version} of {session.name}")
        existing = self.ledger.proposal(h)
        if existing is not None:
            state = self._standing(existing).state
            hint = f": approve it with `seml session approve {h}`" if not state.closed else ""
            raise PolicyError(
                f"{h} was already proposed by {existing.proposer} (now {state.value}){hint}"
            )
        latest = self.store.latest(session.name)
        previous = latest.session if latest is not None else None
        check_lineage(previous, session)
        where = session if previous is None else previous
        whose = f"session {session.name}" if previous is None else f"the active {session.name}"
        listed = where.parties.get(signature.party)
        if listed is None:
            raise PolicyError(
                f"{signature.party} is not a party of {whose}: only its parties can propose "
                + ("it" if previous is None else "an update")
            )
        if _fp(listed) != signature.key:
            raise PolicyError(f"key {signature.key} is not {signature.party}'s key in {whose}")
        if not signature.valid_for(h, parse_public_key(listed)):
            raise PolicyError(f"{signature.party}'s approval of {h} does not verify")
        still_open = [
            r for r in self.ledger.proposals(session.name) if not self._standing(r).state.closed
        ]
        if len(still_open) >= MAX_OPEN:
            raise PolicyError(
                f"session {session.name} has {len(still_open)} open proposals: withdraw or "
                "decide some first"
            )
        self._check_provided(session, provided)
        record = ProposalRecord(h, session, signature.party, signature.key, now)
        with self.store.transaction() as db:
            self.ledger.add_proposal(db, record)
            self.ledger.add_decision(db, signature, now)
            for name, sealed in provided.items():
                self.ledger.add_provided(db, h, name, sealed, now)
            self.store.append_audit(
                db,
                "proposal.create",
                {
                    "session": session.name,
                    "hash": h,
                    "predecessor": session.predecessor,
                    "proposer": signature.party,
                    "key": signature.key,
                    "provided": sorted(provided),
                },
                now,
            )
        return self._view(record, self._activate(record, now))

    def decide(
        self, hash_: str, decision: SignedDecision, provided: dict[str, bytes], now: float
    ) -> ProposalView:
        """Record a party's signed approval, rejection or (its proposer's) withdrawal, with any
        provided secrets it attaches; accept the proposal if its rule is now met.

        A decision is final: a party that approved cannot reject, and the other way round.
        Approving again is not an error (it may attach a secret); it is recorded once.
        """
        record = self.ledger.proposal(hash_)
        if record is None:
            raise NotFoundError(f"no proposal {hash_}")
        name = record.session.name
        if decision.hash != hash_ or decision.session != name:
            raise UsageError(
                f"the decision is about {decision.session} {decision.hash}, not {name} {hash_}"
            )
        st = self._standing(record)
        if st.state.closed:
            raise PolicyError(f"proposal {hash_} of {name} is {st.state.value}: {st.reason}")
        verify_decision(st.previous.session if st.previous else None, record.session, decision)
        mine = [d for d, _ in st.decisions if (d.party, d.key) == (decision.party, decision.key)]
        if decision.decision is Decision.WITHDRAW:
            if (decision.party, decision.key) != (record.proposer, record.proposer_key):
                raise PolicyError(
                    f"only its proposer {record.proposer} can withdraw proposal {hash_}; "
                    f"{decision.party} can reject it"
                )
        else:
            other = next(
                (d for d in mine if d.decision not in (decision.decision, Decision.WITHDRAW)), None
            )
            if other is not None:
                raise PolicyError(
                    f"{decision.party} already {_PAST[other.decision]} proposal {hash_}: a "
                    "decision is final"
                )
        if provided and decision.decision is not Decision.APPROVE:
            raise UsageError(f"a {decision.decision.value} carries no secrets")
        self._check_provided(record.session, provided)
        attached = set(self.ledger.provided(hash_))
        fresh = {n: b for n, b in provided.items() if n not in attached}
        again = any(d.decision is decision.decision for d in mine)
        notes = []
        if again:
            notes.append(f"{decision.party} had {_PAST[decision.decision]} it already")
        if set(provided) - set(fresh):
            kept = ", ".join(sorted(set(provided) - set(fresh)))
            notes.append(f"{kept} was provided already (the first value is kept)")
        if not again or fresh:
            with self.store.transaction() as db:
                if not again:
                    self.ledger.add_decision(db, decision, now)
                    self.store.append_audit(
                        db,
                        f"proposal.{decision.decision.value}",
                        {
                            "session": name,
                            "hash": hash_,
                            "party": decision.party,
                            "key": decision.key,
                        },
                        now,
                    )
                for secret, sealed in fresh.items():
                    self.ledger.add_provided(db, hash_, secret, sealed, now)
                if fresh:
                    self.store.append_audit(
                        db,
                        "proposal.provide",
                        {
                            "session": name,
                            "hash": hash_,
                            "party": decision.party,
                            "secrets": sorted(fresh),
                        },
                        now,
                    )
        if decision.decision is not Decision.WITHDRAW:
            notes.append(self._activate(record, now))
        return self._view(record, "; ".join(n for n in notes if n))

    # -- reading ----------------------------------------------------------------------

    def _name_of(self, subject: str) -> str:
        if _HASH.match(subject):
            proposal = self.ledger.proposal(subject)
            if proposal is not None:
                return proposal.session.name
            version = self.store.by_hash(subject)
            if version is not None:
                return version.session.name
            raise NotFoundError(f"no proposal or session version {subject}")
        if not _NAME.match(subject):
            raise UsageError(f"{subject!r} is neither a session name nor a sha256: hash")
        return subject

    def status(
        self, subject: str, *, key: bytes, nonce: bytes, signature: bytes, now: float
    ) -> SessionStatus:
        """What a party sees of a session (name, or the hash of a proposal or version): the
        active version if it is one of its parties, every proposal it is a party of (or of the
        version the proposal updates), and the sessions those import from."""
        self.service.nonces.consume(nonce, now)
        if len(key) != 32:
            raise UsageError("the reader's key must be a 32-byte Ed25519 public key")
        if not verify_ed25519(key, signature, proposals_challenge(subject, nonce)):
            raise PolicyError(f"bad read challenge signature for {subject}")
        name = self._name_of(subject)
        latest = self.store.latest(name)
        records = self.ledger.proposals(name)
        if latest is None and not records:
            raise NotFoundError(f"no session or proposal named {name}")

        def listed(doc: Session) -> bool:
            return any(parse_public_key(text) == key for text in doc.parties.values())

        active = latest if latest is not None and listed(latest.session) else None
        views = []
        for r in records:
            prev = self.store.by_hash(r.session.predecessor) if r.session.predecessor else None
            if listed(r.session) or (prev is not None and listed(prev.session)):
                views.append(self._view(r))
        if active is None and not views:
            raise PolicyError(
                f"key {fingerprint(key)} is not the key of a party of session {name} or of a "
                "proposal for it"
            )
        docs = [active.session] if active is not None else []
        docs += [v.document for v in views if not v.state.closed]
        return SessionStatus(
            name=name,
            active=active.answer() if active is not None else None,
            proposals=views,
            exporters=[self._exporter(e, name) for e in sorted(set().union(*map(_imports, docs)))],
        )

    def _exporter(self, session: str, importer: str) -> ExporterPins:
        record = self.store.latest(session)
        if record is None:
            return ExporterPins(session=session, exists=False, version=None, parties={}, pinned=[])
        s = record.session
        exports = [e for x in s.secrets for e in x.export] + [
            e for v in s.volumes for e in v.export
        ]
        return ExporterPins(
            session=session,
            exists=True,
            version=record.version,
            parties={p: _fp(k) for p, k in s.parties.items()},
            pinned=sorted({e.session_hash for e in exports if e.session == importer}),
        )
