"""Detached session signatures, signed decisions, and the rules for accepting a new session or an
update.

An approval is Ed25519 over ``b"SEML session signature v1\\n" + hash`` (the domain prefix keeps a
session signature from ever being a valid signature of anything else a party signs); a rejection
and a withdrawal sign the same hash under their own prefixes, so none can stand for another.
"""

from __future__ import annotations

import base64
import binascii
import json
from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from seml.errors import PolicyError, UsageError
from seml.policy._document import session_hash
from seml.policy._keys import PartyKey, fingerprint, parse_public_key, verify_ed25519
from seml.policy._model import Session
from seml.policy._rules import ApprovalRule, RuleState, RuleVerdict

__all__ = [
    "Decision",
    "SessionSignature",
    "SignedDecision",
    "Tally",
    "check_creation",
    "check_lineage",
    "check_update",
    "decision_message",
    "decision_party",
    "sign_decision",
    "sign_session",
    "signature_message",
    "tally",
    "verify_decision",
]

_DOMAIN = b"SEML session signature v1\n"


def signature_message(hash_: str) -> bytes:
    return _DOMAIN + hash_.encode()


class _Signed(BaseModel):
    """Who signed what about which session hash, with which key; `_message` is what was signed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    session: str = Field(max_length=64)
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    party: str = Field(max_length=64)
    key: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    signature: str = Field(max_length=200)

    @abstractmethod
    def _message(self, hash_: str) -> bytes:
        """The bytes a signature of this kind covers (domain-separated per subclass)."""

    def valid_for(self, hash_: str, raw_public_key: bytes) -> bool:
        if self.hash != hash_ or self.key != fingerprint(raw_public_key):
            return False
        try:
            sig = base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        return verify_ed25519(raw_public_key, sig, self._message(hash_))


class SessionSignature(_Signed):
    """A detached signature file: an approval of one session hash."""

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

    def _message(self, hash_: str) -> bytes:
        return signature_message(hash_)


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


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    WITHDRAW = "withdraw"  # only the proposer, of its own proposal


_DECISION_DOMAINS = {
    Decision.APPROVE: _DOMAIN,  # an approval is exactly a session signature
    Decision.REJECT: b"SEML session rejection v1\n",
    Decision.WITHDRAW: b"SEML session withdrawal v1\n",
}


def decision_message(decision: Decision, hash_: str) -> bytes:
    return _DECISION_DOMAINS[decision] + hash_.encode()


class SignedDecision(_Signed):
    """A party's signed decision about one session hash: approve, reject or withdraw. Not a
    `SessionSignature` (a rejection must never pass for an approval); `as_signature` converts
    an approval."""

    decision: Decision

    @classmethod
    def approval(cls, signature: SessionSignature) -> SignedDecision:
        return cls(**signature.model_dump(), decision=Decision.APPROVE)

    def as_signature(self) -> SessionSignature:
        if self.decision is not Decision.APPROVE:
            raise UsageError(f"a {self.decision.value} is not an approval signature")
        return SessionSignature(**self.model_dump(exclude={"decision"}))

    def _message(self, hash_: str) -> bytes:
        return decision_message(self.decision, hash_)


def sign_decision(
    hash_: str, session: str, party: str, key: PartyKey, decision: Decision
) -> SignedDecision:
    """Sign `decision` about `hash_` as `party` (which key is whose is checked by whoever counts
    the decision: `verify_decision`, `tally`)."""
    return SignedDecision(
        session=session,
        hash=hash_,
        party=party,
        key=key.fingerprint,
        decision=decision,
        signature=base64.b64encode(key.sign(decision_message(decision, hash_))).decode(),
    )


def check_lineage(previous: Session | None, session: Session) -> None:
    """`session` may follow `previous` (the latest version, None if there is none): a first
    version names no predecessor, an update names exactly the latest version and keeps the name."""
    if previous is None:
        if session.predecessor is not None:
            raise PolicyError(
                f"session {session.name} does not exist; a first version has predecessor: null"
            )
        return
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


@dataclass(frozen=True)
class _Role:
    """One rule a change must meet, with the keys its parties sign with."""

    label: str  # "creating session s", "updating session s", "enrolling new approvers in s"
    rule: ApprovalRule
    keys: dict[str, str]
    note: str = ""  # appended to what it still needs


def _roles(previous: Session | None, session: Session) -> list[_Role]:
    """A first version meets its own `approval.create`. An update meets the predecessor's
    `approval.update`, checked with the keys the *predecessor* lists (an update cannot swap a
    party's key and sign with the new one), and every party it newly adds to its approval rules,
    or whose key it changes, consents with its new key (nobody is enrolled without consent)."""
    if previous is None:
        return [_Role(f"creating session {session.name}", session.approval.create, session.parties)]
    roles = [_Role(f"updating session {session.name}", previous.approval.update, previous.parties)]
    approvers = session.approval.create.parties() | session.approval.update.parties()
    newcomers = sorted(p for p in approvers if previous.parties.get(p) != session.parties[p])
    if newcomers:
        roles.append(
            _Role(
                f"enrolling new approvers in {session.name}",
                ApprovalRule.all_of(newcomers),
                session.parties,
                note=" (consent to be enrolled as an approver)",
            )
        )
    return roles


def _counts(role: _Role, hash_: str, d: SignedDecision) -> bool:
    """Whether `d` counts for `role`: signed over `hash_` with the key the role lists for it."""
    listed = role.keys.get(d.party)
    return listed is not None and d.valid_for(hash_, parse_public_key(listed))


def _counted(
    role: _Role, hash_: str, decisions: Iterable[SignedDecision], decision: Decision
) -> set[str]:
    return {d.party for d in decisions if d.decision is decision and _counts(role, hash_, d)}


def _verdict(role: _Role, hash_: str, decisions: list[SignedDecision]) -> RuleVerdict:
    return role.rule.evaluate(
        _counted(role, hash_, decisions, Decision.APPROVE),
        _counted(role, hash_, decisions, Decision.REJECT),
    )


def _check(
    previous: Session | None, session: Session, signatures: Iterable[SessionSignature]
) -> None:
    h = session_hash(session)
    decisions = [SignedDecision.approval(s) for s in signatures]
    for role in _roles(previous, session):
        verdict = _verdict(role, h, decisions)
        if verdict.state is not RuleState.SATISFIED:
            raise PolicyError(
                f"{role.label} needs a valid signature from {verdict.signers} over {h}"
            )


def check_creation(session: Session, signatures: Iterable[SessionSignature]) -> None:
    """A first version: no predecessor, and valid signatures that meet `approval.create`."""
    check_lineage(None, session)
    _check(None, session, signatures)


def check_update(
    previous: Session, session: Session, signatures: Iterable[SessionSignature]
) -> None:
    """An update names the latest version's hash and carries the signatures that version's
    `approval.update` requires, plus the consent of every newly enrolled approver (`_roles`)."""
    check_lineage(previous, session)
    _check(previous, session, signatures)


@dataclass(frozen=True)
class Tally:
    """Where a proposed version stands, given the decisions recorded about it.

    `approved`/`rejected` name the parties whose decisions count; `needs` says what is still
    missing, `reason` why it is defeated; `signatures` are the approvals that count (what the
    version is accepted with).
    """

    state: RuleState
    rule: str
    approved: tuple[str, ...]
    rejected: tuple[str, ...]
    needs: tuple[str, ...]
    reason: str
    waiting: tuple[str, ...]
    signatures: tuple[SessionSignature, ...]

    @property
    def missing(self) -> str:
        return "; ".join(self.needs)


def tally(previous: Session | None, session: Session, decisions: Iterable[SignedDecision]) -> Tally:
    """Evaluate every rule `session` must meet to follow `previous` (`_roles`) against the
    decisions: satisfied when all are met, defeated when one can no longer be."""
    h = session_hash(session)
    ds = list(decisions)
    roles = _roles(previous, session)
    verdicts = [(role, _verdict(role, h, ds)) for role in roles]
    states = {v.state for _, v in verdicts}
    if RuleState.DEFEATED in states:
        state = RuleState.DEFEATED
    elif states == {RuleState.SATISFIED}:
        state = RuleState.SATISFIED
    else:
        state = RuleState.POSSIBLE
    approved: set[str] = set()
    rejected: set[str] = set()
    signatures: dict[tuple[str, str], SessionSignature] = {}
    for role in roles:
        approved |= _counted(role, h, ds, Decision.APPROVE)
        rejected |= _counted(role, h, ds, Decision.REJECT)
        for d in ds:
            if d.decision is Decision.APPROVE and _counts(role, h, d):
                signatures[(d.party, d.key)] = d.as_signature()
    return Tally(
        state=state,
        rule="; and ".join(
            role.rule.describe() + (role.note if role.note else "") for role in roles
        ),
        approved=tuple(sorted(approved)),
        rejected=tuple(sorted(rejected)),
        needs=tuple(n + role.note for role, v in verdicts for n in v.needs),
        reason="; ".join(v.reason + role.note for role, v in verdicts if v.reason),
        waiting=tuple(sorted({p for _, v in verdicts for p in v.waiting})),
        signatures=tuple(signatures[k] for k in sorted(signatures)),
    )


def _listing(doc: Session, raw: bytes) -> list[str]:
    return [p for p, text in doc.parties.items() if parse_public_key(text) == raw]


def decision_party(previous: Session | None, session: Session, raw_public_key: bytes) -> str:
    """The party `raw_public_key` belongs to in `session` (or, for an update, in the version it
    updates); PolicyError if it is no party's key, UsageError if it is several parties'."""
    names = sorted(
        set(_listing(session, raw_public_key))
        | set(_listing(previous, raw_public_key) if previous else [])
    )
    if not names:
        raise PolicyError(
            f"key {fingerprint(raw_public_key)} is not the key of any party of session "
            f"{session.name}" + (" or of the version it updates" if previous else "")
        )
    if len(names) > 1:
        raise UsageError(
            f"key {fingerprint(raw_public_key)} is the key of several parties of session "
            f"{session.name} ({', '.join(names)}): say which with --party"
        )
    return names[0]


def verify_decision(previous: Session | None, session: Session, d: SignedDecision) -> None:
    """A decision a party signed about `session`: by a party of it (or of the version it updates,
    with the key listed there), over its hash. PolicyError naming what is wrong."""
    h = session_hash(session)
    if d.hash != h:
        raise PolicyError(f"the decision is about {d.hash}, not about {h}")
    docs = [session, *([previous] if previous is not None else [])]
    listed = [doc.parties[d.party] for doc in docs if d.party in doc.parties]
    if not listed:
        owners = sorted({p for doc in docs for p, k in doc.parties.items() if _fp(k) == d.key})
        if owners:
            raise PolicyError(f"key {d.key} is {', '.join(owners)}'s key, not {d.party}'s")
        raise PolicyError(
            f"key {d.key} is not the key of any party of session {session.name}: "
            f"{d.party} is not a party"
        )
    keys = [parse_public_key(k) for k in listed if _fp(k) == d.key]
    if not keys:
        owners = sorted({p for doc in docs for p, k in doc.parties.items() if _fp(k) == d.key})
        whose = f" (it is {', '.join(owners)}'s)" if owners else " (it is no party's key)"
        raise PolicyError(f"key {d.key} is not {d.party}'s key in session {session.name}{whose}")
    if not d.valid_for(h, keys[0]):
        raise PolicyError(f"{d.party}'s {d.decision.value} signature over {h} does not verify")


def _fp(text: str) -> str:
    return fingerprint(parse_public_key(text))
