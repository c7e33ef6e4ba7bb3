"""What the service answers about proposals (server and client share these models).

A proposal is a session version (a first version or an update) kept by the service until the
decisions recorded about it meet its approval rule, when it becomes the active version. Its
state is computed from append-only facts (the proposal, the decisions, the accepted versions):

- `open`: the rule can still be met; `missing` says what is needed;
- `approved`: the rule is met but the version could not be accepted yet (`reason`, e.g. a
  provided secret not attached yet);
- `accepted`: it is version `version` of the session;
- `withdrawn`: its proposer withdrew it;
- `superseded`: another version was accepted first, so its predecessor is no longer the latest;
- `defeated`: rejections make its rule impossible to meet.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from seml.cas._results import SessionVersion
from seml.policy import Session, SignedDecision

__all__ = [
    "DecisionEntry",
    "ExporterPins",
    "ProposalState",
    "ProposalView",
    "SessionStatus",
    "proposals_challenge",
]

_CHALLENGE = b"SEML proposals read v1\n"


def proposals_challenge(subject: str, nonce: bytes) -> bytes:
    """What a party signs to read the proposals of `subject` (a session name or a hash)."""
    return _CHALLENGE + subject.encode() + b"\n" + nonce


class ProposalState(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"
    SUPERSEDED = "superseded"
    DEFEATED = "defeated"

    @property
    def closed(self) -> bool:
        """No decision can change it any more."""
        return self not in (ProposalState.OPEN, ProposalState.APPROVED)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DecisionEntry(_Answer):
    """One recorded decision, with the signature it was recorded with."""

    decision: SignedDecision
    time: float


class ProposalView(_Answer):
    name: str
    hash: str
    predecessor: str | None
    proposer: str
    created: float
    state: ProposalState
    reason: str  # why it is approved-but-waiting, superseded, defeated or withdrawn
    version: int | None  # once accepted
    rule: str  # the rule(s) it must meet, in words
    approved: list[str]  # parties whose approvals count
    rejected: list[str]  # parties whose rejections count
    needs: list[str]  # what is still missing, one sentence each (open proposals)
    waiting: list[str]  # parties whose approval would still count
    provided: list[str]  # provided secrets attached (names; the values stay sealed)
    decisions: list[DecisionEntry]
    document: Session
    note: str = ""  # what this request did beyond recording (e.g. a secret already provided)

    @property
    def kind(self) -> str:
        return "create" if self.predecessor is None else "update"


class ExporterPins(_Answer):
    """A session this one imports secrets or volumes from, as its latest version stands: its
    parties (name: key fingerprint) and which hashes of this session it exports to."""

    session: str
    exists: bool
    version: int | None
    parties: dict[str, str]
    pinned: list[str]


class SessionStatus(_Answer):
    """`GET /v1/proposals/{name or hash}`: the active version (when the reader is one of its
    parties), the proposals the reader is a party of, and the sessions they import from."""

    name: str
    active: SessionVersion | None
    proposals: list[ProposalView]
    exporters: list[ExporterPins]
