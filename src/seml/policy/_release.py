"""Signed decisions about a model's release: a data owner approves or rejects the model a
receipt names, under one session.

Ed25519 over ``b"SEML model release approval v1\\n"`` (or ``rejection``) ``+ session name + "\\n"
+ model digest``: domain-separated from session signatures and decisions, so a model approval
can never count as a session approval (or the other way round), nor a rejection as an approval.
The record has the same fields as a session decision (the approvals ledger stores both), with
`hash` the model digest.
"""

from __future__ import annotations

import base64

from seml.errors import UsageError
from seml.policy._approval import Decision, _Signed
from seml.policy._keys import PartyKey

__all__ = ["ModelDecision", "model_decision_message", "sign_model_decision"]

_DOMAINS = {
    Decision.APPROVE: b"SEML model release approval v1\n",
    Decision.REJECT: b"SEML model release rejection v1\n",
}


def model_decision_message(decision: Decision, session: str, model: str) -> bytes:
    domain = _DOMAINS.get(decision)
    if domain is None:
        raise UsageError(f"a model release is approved or rejected, not {decision.value}d")
    return domain + session.encode() + b"\n" + model.encode()


class ModelDecision(_Signed):
    """A party's signed approval or rejection of the model `hash` (a receipt's model digest)
    under session `session`."""

    decision: Decision

    def _message(self, hash_: str) -> bytes:
        return model_decision_message(self.decision, self.session, hash_)


def sign_model_decision(
    model: str, session: str, party: str, key: PartyKey, decision: Decision
) -> ModelDecision:
    return ModelDecision(
        session=session,
        hash=model,
        party=party,
        key=key.fingerprint,
        decision=decision,
        signature=base64.b64encode(
            key.sign(model_decision_message(decision, session, model))
        ).decode(),
    )
