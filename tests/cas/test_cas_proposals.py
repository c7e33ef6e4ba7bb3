"""Proposals and approvals at the attestation service, through its client (app in this process):
the ledger, the checks on every upload, activation, supersession, visibility, the audit log."""

from __future__ import annotations

import base64
import sqlite3
from typing import Any

import pytest

from _cas_inprocess import InProcessCas
from _casdata import GOOD, Parties, session_of, shared_document, update_of
from seml.cas import AuditEntry, CasClient, ProposalState, ProposalView
from seml.errors import PolicyError, UsageError
from seml.policy import (
    Decision,
    PartyKey,
    Session,
    new_key_pair,
    public_key_text,
    session_hash,
    sign_decision,
)

PROVIDED = b"proposal-provided-3f9a"


def decide(
    client: CasClient,
    session: Session,
    party: str,
    key: PartyKey,
    decision: Decision = Decision.APPROVE,
    provided: dict[str, str] | None = None,
) -> ProposalView:
    signed = sign_decision(session_hash(session), session.name, party, key, decision)
    return client.decide(signed, provided)


def propose(
    client: CasClient,
    session: Session,
    party: str,
    key: PartyKey,
    provided: dict[str, str] | None = None,
) -> ProposalView:
    signed = sign_decision(session_hash(session), session.name, party, key, Decision.APPROVE)
    return client.propose(session, signed, provided)


def small(name: str, public: dict[str, str], approval: dict[str, Any], **over: Any) -> Session:
    """A one-service session of the parties `public` (name: key) with the given approval rules."""
    doc: dict[str, Any] = {
        "version": 1,
        "name": name,
        "parties": public,
        "approval": approval,
        "security": {"tolerate": ["simulation"]},
        "services": [{"name": "svc", "measurements": [GOOD]}],
    }
    doc.update(over)
    return session_of(doc)


def operator_audit(cas: InProcessCas) -> list[AuditEntry]:
    """Every audit entry in full, as the operator reads the state folder (`seml cas audit
    --dir`): over the network an outsider sees no content."""
    return cas.service.store.audit(0, 100_000)


def events(cas: InProcessCas, name: str) -> list[str]:
    """The accepted changes logged about session `name` (refusals left out)."""
    return [
        e.event or ""
        for e in operator_audit(cas)
        if (e.details or {}).get("session") == name and e.event != "refused"
    ]


def test_propose_approve_activate(cas: InProcessCas, client: CasClient) -> None:
    parties = Parties("alice", "bob")
    s = session_of(shared_document("p-shared", parties))
    h = session_hash(s)
    view = propose(client, s, "alice", parties.keys["alice"], parties.provide(client, s, PROVIDED))
    assert view.state is ProposalState.OPEN and view.kind == "create"
    assert view.approved == ["alice"] and view.needs == ["bob must approve"]
    assert view.waiting == ["bob"] and view.provided == ["pw"] and view.rule == "all of alice, bob"
    status = client.session_status("p-shared", parties.keys["bob"])
    assert status.active is None and [p.hash for p in status.proposals] == [h]

    view = decide(client, s, "bob", parties.keys["bob"])
    assert view.state is ProposalState.ACCEPTED and view.version == 1
    status = client.session_status(h, parties.keys["alice"])
    assert status.active is not None and status.active.hash == h
    assert status.active.signers == ["alice", "bob"]
    # Accepted exactly as a submission: both signatures stored with the version.
    version = client.get_session("p-shared", hash_=h, party=("alice", parties.keys["alice"]))
    assert sorted(x.party for x in version.signatures) == ["alice", "bob"]
    assert events(cas, "p-shared") == [
        "proposal.create",
        "proposal.approve",
        "session.create",
        "proposal.activate",
    ]
    activation = [e for e in operator_audit(cas) if e.event == "proposal.activate"][-1]
    assert (activation.details or {})["approvers"] == ["alice", "bob"]
    assert (activation.details or {})["hash"] == h
    assert PROVIDED.decode() not in str([e.details for e in operator_audit(cas)])
    with pytest.raises(PolicyError, match="is accepted: accepted as version 1"):
        decide(client, s, "alice", parties.keys["alice"], Decision.REJECT)
    with pytest.raises(PolicyError, match=f"{h} is already version 1 of p-shared"):
        propose(client, s, "alice", parties.keys["alice"])


def test_threshold_and_veto(client: CasClient) -> None:
    parties = Parties("alice", "bob", "carol")
    rule = {"require": 1, "of": ["bob", "carol"], "veto": ["alice"]}
    s = small("p-veto", parties.public(), {"create": rule, "update": rule})
    view = propose(client, s, "bob", parties.keys["bob"])
    assert view.state is ProposalState.OPEN and view.needs == ["alice must approve (veto)"]
    assert view.rule == "1 of bob, carol; alice must approve (veto)"
    view = decide(client, s, "carol", parties.keys["carol"], Decision.REJECT)
    assert view.state is ProposalState.OPEN and view.rejected == ["carol"]
    view = decide(client, s, "alice", parties.keys["alice"], Decision.REJECT)
    assert view.state is ProposalState.DEFEATED and view.reason == "alice rejected (veto)"
    with pytest.raises(PolicyError, match="is defeated: alice rejected"):
        decide(client, s, "carol", parties.keys["carol"])

    # The same rule met: one of bob/carol and the veto party.
    s2 = small("p-veto2", parties.public(), {"create": rule, "update": rule})
    view = propose(client, s2, "alice", parties.keys["alice"])
    assert view.needs == ["needs 1 more of bob, carol"]
    assert decide(client, s2, "carol", parties.keys["carol"]).state is ProposalState.ACCEPTED


def test_decisions_from_other_keys_are_refused_with_the_reason(
    cas: InProcessCas, client: CasClient
) -> None:
    parties = Parties("alice", "bob")
    s = small("p-keys", parties.public(), {"create": ["alice", "bob"], "update": ["alice", "bob"]})
    h = session_hash(s)
    propose(client, s, "alice", parties.keys["alice"])
    mallory = new_key_pair()
    with pytest.raises(PolicyError, match=r"key sha256:\w+ is not bob's key .*no party's key"):
        decide(client, s, "bob", mallory)
    with pytest.raises(PolicyError, match="is not the key of any party of session p-keys"):
        decide(client, s, "mallory", mallory)
    # Alice's valid key, but signing as bob: named as alice's.
    with pytest.raises(
        PolicyError, match=r"key sha256:\w+ is not bob's key in session p-keys \(it is alice's\)"
    ):
        decide(client, s, "bob", parties.keys["alice"])
    forged = sign_decision(h, "p-keys", "bob", parties.keys["bob"], Decision.APPROVE)
    sig = bytearray(base64.b64decode(forged.signature))
    sig[0] ^= 1
    forged = forged.model_copy(update={"signature": base64.b64encode(bytes(sig)).decode()})
    with pytest.raises(PolicyError, match=f"bob's approve signature over {h} does not verify"):
        client.decide(forged)
    # A rejection cannot be relabelled as an approval (domain-separated messages).
    rejection = sign_decision(h, "p-keys", "bob", parties.keys["bob"], Decision.REJECT)
    relabelled = rejection.model_copy(update={"decision": Decision.APPROVE})
    with pytest.raises(PolicyError, match="does not verify"):
        client.decide(relabelled)
    with pytest.raises(PolicyError, match="is not the key of a party of session p-keys"):
        client.session_status("p-keys", mallory)
    # A refusal keeps the session it names (bounded), never the party or hash a caller claims.
    refusals = [e.details or {} for e in operator_audit(cas) if e.event == "refused"]
    assert any(r.get("request") == "decide" and r.get("session") == "p-keys" for r in refusals)
    assert client.session_status(h, parties.keys["bob"]).proposals[0].state is ProposalState.OPEN


def test_a_decision_is_final_and_only_the_proposer_withdraws(
    cas: InProcessCas, client: CasClient
) -> None:
    parties = Parties("alice", "bob", "carol")
    everyone = ["alice", "bob", "carol"]
    s = small("p-final", parties.public(), {"create": everyone, "update": everyone})
    propose(client, s, "alice", parties.keys["alice"])
    decide(client, s, "bob", parties.keys["bob"])
    again = decide(client, s, "bob", parties.keys["bob"])
    assert "bob had approved it already" in again.note
    assert [d.decision.party for d in again.decisions] == ["alice", "bob"]
    with pytest.raises(PolicyError, match=r"bob already approved proposal .*: a decision is final"):
        decide(client, s, "bob", parties.keys["bob"], Decision.REJECT)
    with pytest.raises(PolicyError, match="only its proposer alice can withdraw"):
        decide(client, s, "bob", parties.keys["bob"], Decision.WITHDRAW)
    view = decide(client, s, "alice", parties.keys["alice"], Decision.WITHDRAW)
    assert view.state is ProposalState.WITHDRAWN and view.reason == "withdrawn by alice"
    with pytest.raises(PolicyError, match="is withdrawn"):
        decide(client, s, "carol", parties.keys["carol"])
    assert events(cas, "p-final") == [
        "proposal.create",
        "proposal.approve",
        "proposal.withdraw",
    ]


def test_updates_follow_the_predecessor_and_stale_ones_are_superseded(client: CasClient) -> None:
    parties = Parties("alice", "bob", "carol")
    two = ["alice", "bob"]
    both = {n: public_key_text(parties.keys[n].public) for n in two}
    v1 = small("p-update", both, {"create": two, "update": two})
    propose(client, v1, "alice", parties.keys["alice"])
    decide(client, v1, "bob", parties.keys["bob"])
    a = update_of(v1, services=[{"name": "svc", "measurements": ["cd" * 32]}])
    b = update_of(v1, services=[{"name": "svc", "measurements": ["ef" * 32]}])
    # carol is no party of the active version: she cannot propose its update.
    with pytest.raises(PolicyError, match="carol is not a party of the active p-update"):
        propose(client, a, "carol", parties.keys["carol"])
    stale = small(
        "p-update", both, {"create": two, "update": two}, predecessor="sha256:" + "1" * 64
    )
    with pytest.raises(PolicyError, match="stale update of p-update"):
        propose(client, stale, "alice", parties.keys["alice"])
    assert propose(client, a, "alice", parties.keys["alice"]).state is ProposalState.OPEN
    assert propose(client, b, "bob", parties.keys["bob"]).state is ProposalState.OPEN
    assert decide(client, a, "bob", parties.keys["bob"]).version == 2
    status = client.session_status("p-update", parties.keys["alice"])
    states = {p.hash: p for p in status.proposals}
    assert states[session_hash(b)].state is ProposalState.SUPERSEDED
    assert f"now version 2 ({session_hash(a)})" in states[session_hash(b)].reason
    with pytest.raises(PolicyError, match="is superseded"):
        decide(client, b, "alice", parties.keys["alice"])

    # Enrolling carol as an approver needs her consent on top of the active rule.
    doc = a.document()
    doc["parties"] = parties.public()
    doc["approval"] = {"create": two, "update": ["alice", "bob", "carol"]}
    c = update_of(a, parties=doc["parties"], approval=doc["approval"])
    propose(client, c, "alice", parties.keys["alice"])
    view = decide(client, c, "bob", parties.keys["bob"])
    assert view.state is ProposalState.OPEN
    assert view.needs == ["carol must approve (consent to be enrolled as an approver)"]
    assert decide(client, c, "carol", parties.keys["carol"]).version == 3


def test_a_missing_provided_secret_holds_activation_until_attached(
    cas: InProcessCas, client: CasClient
) -> None:
    parties = Parties("alice", "bob")
    doc = shared_document("p-provided", parties)
    doc["secrets"][4]["provided_by"] = "bob"
    s = session_of(doc)
    propose(client, s, "alice", parties.keys["alice"])
    view = decide(client, s, "bob", parties.keys["bob"])
    assert view.state is ProposalState.APPROVED
    assert "waiting for provided secret pw (from bob)" in view.reason
    wrong = client.seal_provided(s, "pw", b"x", parties.keys["bob"])
    other = session_of(shared_document("p-other", parties))
    with pytest.raises(PolicyError, match="sealed for another session version"):
        decide(client, s, "bob", parties.keys["bob"], provided=parties.provide(client, other, b"x"))
    view = decide(client, s, "bob", parties.keys["bob"], provided={"pw": wrong})
    assert view.state is ProposalState.ACCEPTED and view.provided == ["pw"]
    assert "proposal.provide" in events(cas, "p-provided")


def test_parties_see_only_their_proposals(client: CasClient) -> None:
    parties = Parties("alice", "bob")
    s = small(
        "p-private", parties.public(), {"create": ["alice", "bob"], "update": ["alice", "bob"]}
    )
    propose(client, s, "alice", parties.keys["alice"])
    # mallory proposes another first version under the same name, with herself as party ...
    mallory = Parties("mallory")
    rogue = small("p-private", mallory.public(), {"create": ["mallory"], "update": ["mallory"]})
    view = propose(client, rogue, "mallory", mallory.keys["mallory"])
    assert view.state is ProposalState.ACCEPTED
    # ... which wins the name; she still sees only her own, and alice's proposal is superseded.
    seen = client.session_status("p-private", mallory.keys["mallory"])
    assert [p.hash for p in seen.proposals] == [session_hash(rogue)]
    seen = client.session_status("p-private", parties.keys["bob"])
    assert seen.active is None and [p.state for p in seen.proposals] == [ProposalState.SUPERSEDED]
    with pytest.raises(UsageError, match="neither a session name nor a sha256"):
        client.session_status("no such name", parties.keys["bob"])


def test_exporters_and_their_pins(client: CasClient) -> None:
    parties = Parties("alice", "bob")
    collab = session_of(
        {
            "version": 1,
            "name": "p-collab",
            "parties": parties.public(),
            "approval": {"create": ["alice", "bob"], "update": ["alice", "bob"]},
            "security": {"tolerate": ["simulation"]},
            "secrets": [
                {
                    "name": "a",
                    "import": {"session": "p-collab-alice", "secret": "k"},
                    "readers": ["f"],
                }
            ],
            "services": [
                {"name": "f", "measurements": [GOOD], "environment": {"K": "$$SEML::a$$"}}
            ],
        }
    )
    pinned = session_hash(collab)
    alice = Parties()
    alice.keys = {"alice": parties.keys["alice"]}
    private = small(
        "p-collab-alice",
        alice.public(),
        {"create": ["alice"], "update": ["alice"]},
        secrets=[
            {
                "name": "k",
                "kind": "key",
                "export": [{"session": "p-collab", "session_hash": pinned, "services": ["f"]}],
            }
        ],
    )
    assert propose(client, private, "alice", alice.keys["alice"]).version == 1
    propose(client, collab, "alice", parties.keys["alice"])
    status = client.session_status("p-collab", parties.keys["bob"])
    (pins,) = status.exporters
    assert pins.session == "p-collab-alice" and pins.pinned == [pinned] and pins.version == 1
    assert pins.parties == {"alice": parties.keys["alice"].fingerprint}


def test_the_ledger_is_append_only(cas: InProcessCas, client: CasClient) -> None:
    db = sqlite3.connect(cas.directory / "cas.sqlite")
    try:
        for table in ("proposals", "approvals", "proposal_secrets"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608
    finally:
        db.close()
    client.audit(verify=True)
