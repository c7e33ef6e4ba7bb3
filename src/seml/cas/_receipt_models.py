"""What the service answers about completions, receipts and model releases (server and
client share these models; JSON-serialisable, for the command line and the web console)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from seml.policy import ModelDecision
from seml.receipt import SignedReceipt

__all__ = [
    "CompletionAnswer",
    "ReceiptEntry",
    "ReceiptList",
    "ReleaseState",
    "ReleaseStatus",
    "receipts_challenge",
]

_CHALLENGE = b"SEML receipts read v1\n"


def receipts_challenge(session: str, nonce: bytes) -> bytes:
    """What a party signs to read the receipts of session `session`."""
    return _CHALLENGE + session.encode() + b"\n" + nonce


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CompletionAnswer(_Answer):
    """`POST /v1/completions`: the report was recorded (audit entry `seq`); `receipt` is the id
    of the receipt it completed, if any, and `note` why a publish completed no receipt."""

    seq: int
    receipt: str | None = None
    note: str = ""


class ReleaseState(StrEnum):
    RELEASED = "released"  # no release rule, or its rule is met
    AWAITING = "awaiting"  # the rule can still be met: `needs` says by whom
    REJECTED = "rejected"  # rejections make the rule impossible to meet


class ReleaseStatus(_Answer):
    """Where the release of one receipt's model stands."""

    session: str
    receipt: str
    model: str
    required: bool  # the session has a release rule on the model's key
    state: ReleaseState
    summary: str  # one sentence: "model sha256:... awaits approval by bob"
    rule: str
    approved: list[str]
    rejected: list[str]
    needs: list[str]
    waiting: list[str]
    decisions: list[ModelDecision]


class ReceiptEntry(_Answer):
    receipt: SignedReceipt
    status: ReleaseStatus


class ReceiptList(_Answer):
    """`GET /v1/receipts/{session}`: every receipt of the session, oldest first."""

    session: str
    receipts: list[ReceiptEntry]
