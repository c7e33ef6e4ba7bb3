"""`release` on a secret: strict schema, and absent it changes no session's hash."""

from __future__ import annotations

from typing import Any

import pytest

from seml.errors import UsageError
from seml.policy import (
    Decision,
    ModelDecision,
    new_key_pair,
    public_key_text,
    session_from_document,
    session_hash,
    sign_model_decision,
)


def _doc(release: Any = None, *, second: Any = None) -> dict[str, Any]:
    keys = {p: public_key_text(new_key_pair().public) for p in ("alice", "bob")}
    model: dict[str, Any] = {"name": "model_key", "kind": "key", "readers": ["publish", "pull"]}
    if release is not None:
        model["release"] = release
    other: dict[str, Any] = {"name": "other", "kind": "key", "readers": ["pull"]}
    if second is not None:
        other["release"] = second
    return {
        "version": 1,
        "name": "s",
        "parties": keys,
        "approval": {"create": ["alice", "bob"], "update": ["alice", "bob"]},
        "secrets": [model, other],
        "services": [
            {"name": "publish", "measurements": ["ab" * 32]},
            {"name": "pull", "measurements": ["ab" * 32]},
        ],
    }


def test_a_release_rule_parses_and_round_trips() -> None:
    doc = _doc({"approve": {"require": 1, "of": ["alice", "bob"]}, "producers": ["publish"]})
    s = session_from_document(doc)
    secret = s.secret("model_key")
    assert secret is not None and secret.release is not None
    assert secret.release.approve.parties() == {"alice", "bob"}
    assert session_from_document(s.document()) == s


def test_absent_release_is_not_in_the_document() -> None:
    s = session_from_document(_doc())
    assert all("release" not in x for x in s.document()["secrets"])
    assert session_hash(session_from_document(s.document())) == session_hash(s)


@pytest.mark.parametrize(
    ("release", "second", "reason"),
    [
        ({"approve": ["carol"], "producers": ["publish"]}, None, "carol is not one of the parties"),
        (
            {"approve": ["alice"], "producers": ["pull-x"]},
            None,
            "pull-x is not a reader of model_key",
        ),
        ({"approve": ["alice"], "producers": []}, None, "producers"),
        ({"approve": ["alice"]}, None, "producers"),
        (
            {"approve": ["alice"], "producers": ["publish"], "by": 1},
            None,
            "unknown key 'by' in secrets\\[0\\].release",
        ),
        (
            {"approve": ["alice"], "producers": ["publish"]},
            {"approve": ["bob"], "producers": ["pull"]},
            "a session releases one model key",
        ),
    ],
)
def test_a_bad_release_is_refused_naming_why(release: Any, second: Any, reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        session_from_document(_doc(release, second=second))


def test_model_decisions_are_bound_to_their_session_model_and_kind() -> None:
    key = new_key_pair()
    model = "sha256:" + "ab" * 32
    d = sign_model_decision(model, "s", "alice", key, Decision.APPROVE)
    assert d.valid_for(model, key.public)
    assert not d.valid_for("sha256:" + "cd" * 32, key.public)
    other_session = ModelDecision(**{**d.model_dump(), "session": "t"})
    assert not other_session.valid_for(model, key.public)
    as_rejection = ModelDecision(**{**d.model_dump(), "decision": Decision.REJECT})
    assert not as_rejection.valid_for(model, key.public)
    with pytest.raises(UsageError, match="approved or rejected"):
        sign_model_decision(model, "s", "alice", key, Decision.WITHDRAW)
