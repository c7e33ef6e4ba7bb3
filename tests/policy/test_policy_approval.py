"""Signatures over the session hash and the rules for creation and update."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import pytest

from seml.errors import PolicyError, UsageError
from seml.policy import (
    Decision,
    PartyKey,
    RuleState,
    Session,
    SessionSignature,
    SignedDecision,
    check_creation,
    check_update,
    decision_party,
    load_private_key,
    new_key_pair,
    public_key_text,
    session_from_document,
    session_hash,
    sign_decision,
    sign_session,
    tally,
    verify_decision,
    write_private_key,
)

M = "ab" * 32


@pytest.fixture(scope="module")
def keys() -> dict[str, PartyKey]:
    return {n: new_key_pair() for n in ("A", "B", "C")}


def make(keys: dict[str, PartyKey], **over: Any) -> Session:
    d: dict[str, Any] = {
        "version": 1,
        "name": "s",
        "parties": {n: public_key_text(keys[n].public) for n in ("A", "B")},
        "approval": {"create": ["A", "B"], "update": ["A"]},
        "services": [{"name": "svc", "measurements": [M]}],
    }
    d.update(over)
    return session_from_document(d)


def test_creation_needs_every_creator(keys: dict[str, PartyKey]) -> None:
    s = make(keys)
    a, b = sign_session(s, "A", keys["A"]), sign_session(s, "B", keys["B"])
    check_creation(s, [a, b])
    with pytest.raises(PolicyError, match="needs a valid signature from B"):
        check_creation(s, [a])
    with pytest.raises(PolicyError, match="from A, B"):
        check_creation(s, [])


def test_forged_and_misattributed_signatures_refused(keys: dict[str, PartyKey]) -> None:
    s = make(keys)
    a = sign_session(s, "A", keys["A"])
    forged_sig = bytearray(base64.b64decode(a.signature))
    forged_sig[0] ^= 1
    forged = a.model_copy(update={"signature": base64.b64encode(bytes(forged_sig)).decode()})
    b = sign_session(s, "B", keys["B"])
    with pytest.raises(PolicyError, match="from A"):
        check_creation(s, [forged, b])
    # B's valid signature relabelled as A's does not count for A.
    with pytest.raises(PolicyError, match="from A"):
        check_creation(s, [b.model_copy(update={"party": "A"}), b])
    # A signature over another session's hash does not count.
    other = make(keys, name="other")
    with pytest.raises(PolicyError, match="from A"):
        check_creation(s, [sign_session(other, "A", keys["A"]), b])
    with pytest.raises(PolicyError, match="from A"):
        check_creation(s, [a.model_copy(update={"signature": "!!!"}), b])


def test_sign_refuses_a_key_that_is_not_the_partys(keys: dict[str, PartyKey]) -> None:
    with pytest.raises(UsageError, match="is not party A's key"):
        sign_session(make(keys), "A", keys["C"])
    with pytest.raises(UsageError, match="has no party Z"):
        sign_session(make(keys), "Z", keys["A"])


def test_first_version_must_not_name_a_predecessor(keys: dict[str, PartyKey]) -> None:
    s = make(keys, predecessor="sha256:" + "1" * 64)
    with pytest.raises(PolicyError, match="predecessor: null"):
        check_creation(s, [sign_session(s, p, keys[p]) for p in ("A", "B")])


def test_update_rules(keys: dict[str, PartyKey]) -> None:
    v1 = make(keys)
    h1 = session_hash(v1)
    no_pred = make(keys, services=[{"name": "svc", "measurements": ["cd" * 32]}])
    with pytest.raises(PolicyError, match="must name its predecessor"):
        check_update(v1, no_pred, [sign_session(no_pred, "A", keys["A"])])
    stale = make(keys, predecessor="sha256:" + "2" * 64)
    with pytest.raises(PolicyError, match="stale update"):
        check_update(v1, stale, [sign_session(stale, "A", keys["A"])])
    v2 = make(keys, predecessor=h1, services=[{"name": "svc", "measurements": ["cd" * 32]}])
    with pytest.raises(PolicyError, match="updating session s needs a valid signature from A"):
        check_update(v1, v2, [sign_session(v2, "B", keys["B"])])
    check_update(v1, v2, [sign_session(v2, "A", keys["A"])])
    renamed = make(keys, predecessor=h1, name="t")
    with pytest.raises(PolicyError, match="cannot rename"):
        check_update(v1, renamed, [sign_session(renamed, "A", keys["A"])])


def test_update_cannot_swap_a_key_and_sign_with_it(keys: dict[str, PartyKey]) -> None:
    v1 = make(keys)
    mallory = new_key_pair()
    parties = {"A": public_key_text(mallory.public), "B": public_key_text(keys["B"].public)}
    v2 = make(keys, predecessor=session_hash(v1), parties=parties)
    with pytest.raises(PolicyError, match="from A"):
        check_update(v1, v2, [sign_session(v2, "A", mallory)])


def test_new_approver_must_consent(keys: dict[str, PartyKey]) -> None:
    v1 = make(keys)
    parties = {n: public_key_text(keys[n].public) for n in ("A", "B", "C")}
    v2 = make(
        keys,
        predecessor=session_hash(v1),
        parties=parties,
        approval={"create": ["A", "B"], "update": ["A", "C"]},
    )
    with pytest.raises(PolicyError, match=r"enrolling new approvers in s needs .* from C"):
        check_update(v1, v2, [sign_session(v2, "A", keys["A"])])
    check_update(v1, v2, [sign_session(v2, "A", keys["A"]), sign_session(v2, "C", keys["C"])])


def test_signature_file_roundtrip_and_garbage(keys: dict[str, PartyKey]) -> None:
    s = make(keys)
    sig = sign_session(s, "A", keys["A"])
    assert SessionSignature.from_json(sig.to_json()) == sig
    with pytest.raises(UsageError, match=r"x\.sig: not a session signature"):
        SessionSignature.from_json("{}", source="x.sig")


def test_key_files(tmp_path: Path) -> None:
    key = new_key_pair()
    path = tmp_path / "a.key"
    write_private_key(path, key.pem())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path).public == key.public
    assert "PRIVATE" not in repr(key) and key.fingerprint in repr(key)
    (tmp_path / "bad.key").write_text("nope")
    with pytest.raises(UsageError, match=r"bad\.key is not an unencrypted PEM"):
        load_private_key(tmp_path / "bad.key")
    with pytest.raises(UsageError, match="cannot read key file"):
        load_private_key(tmp_path / "missing.key")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_threshold_and_veto_rules_for_creation_and_update(keys: dict[str, PartyKey]) -> None:
    three = {n: public_key_text(keys[n].public) for n in ("A", "B", "C")}
    rule = {"require": 1, "of": ["B", "C"], "veto": ["A"]}
    s = make(keys, parties=three, approval={"create": rule, "update": ["A", "B", "C"]})
    a, b = sign_session(s, "A", keys["A"]), sign_session(s, "B", keys["B"])
    with pytest.raises(PolicyError, match=r"needs a valid signature from 1 more of B, C over"):
        check_creation(s, [a])
    with pytest.raises(PolicyError, match=r"needs a valid signature from A \(veto\) over"):
        check_creation(s, [b])
    check_creation(s, [a, b])
    # An update is checked with the predecessor's rule: here all three, whatever it says itself.
    v2 = make(
        keys,
        parties=three,
        predecessor=session_hash(s),
        approval={"create": rule, "update": {"require": 1, "of": ["A", "B", "C"]}},
    )
    with pytest.raises(PolicyError, match="updating session s needs a valid signature from C"):
        check_update(s, v2, [sign_session(v2, p, keys[p]) for p in ("A", "B")])
    check_update(s, v2, [sign_session(v2, p, keys[p]) for p in ("A", "B", "C")])


def test_tally_counts_only_valid_decisions_of_the_rule(keys: dict[str, PartyKey]) -> None:
    three = {n: public_key_text(keys[n].public) for n in ("A", "B", "C")}
    rule = {"require": 1, "of": ["B", "C"], "veto": ["A"]}
    s = make(keys, parties=three, approval={"create": rule, "update": rule})
    h = session_hash(s)

    def signed(party: str, decision: Decision, key: PartyKey | None = None) -> SignedDecision:
        return sign_decision(h, "s", party, key or keys[party], decision)

    t = tally(None, s, [signed("B", Decision.APPROVE)])
    assert t.state is RuleState.POSSIBLE and t.needs == ("A must approve (veto)",)
    assert t.approved == ("B",) and t.waiting == ("A",)
    # C's key signing as A, and A's rejection relabelled as an approval, count for nothing.
    forged = signed("A", Decision.APPROVE, keys["C"])
    relabelled = signed("A", Decision.REJECT).model_copy(update={"decision": Decision.APPROVE})
    t = tally(None, s, [signed("B", Decision.APPROVE), forged, relabelled])
    assert t.state is RuleState.POSSIBLE and t.approved == ("B",)
    t = tally(None, s, [signed("B", Decision.APPROVE), signed("A", Decision.APPROVE)])
    assert t.state is RuleState.SATISFIED and [x.party for x in t.signatures] == ["A", "B"]
    check_creation(s, t.signatures)
    t = tally(None, s, [signed("B", Decision.APPROVE), signed("A", Decision.REJECT)])
    assert t.state is RuleState.DEFEATED and t.reason == "A rejected (veto)"

    with pytest.raises(PolicyError, match=r"is not A's key in session s \(it is C's\)"):
        verify_decision(None, s, forged)
    with pytest.raises(PolicyError, match=r"A's approve signature over .* does not verify"):
        verify_decision(None, s, relabelled)
    with pytest.raises(PolicyError, match="is not the key of any party of session s"):
        decision_party(None, s, new_key_pair().public)
    assert decision_party(None, s, keys["C"].public) == "C"
    verify_decision(None, s, signed("C", Decision.REJECT))
