"""Approval rules: parsing (errors in the rule's terms), canonical form, and evaluation (all, at
least N, veto, nesting), checked against a brute-force reading of the rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seml.policy import ApprovalRule, RuleState, session_from_document, session_hash
from seml.policy._keys import new_key_pair, public_key_text

PARTIES = ["alice", "bob", "carol", "dave", "erin", "frank"]


def test_a_list_means_all_of_them() -> None:
    rule = ApprovalRule.parse(["alice", "bob"])
    assert rule.is_plain and rule.to_data() == ["alice", "bob"]
    assert rule.describe() == "all of alice, bob"
    assert rule.evaluate(["alice", "bob"]).state is RuleState.SATISFIED
    v = rule.evaluate(["alice"])
    assert v.state is RuleState.POSSIBLE and v.missing == "bob must approve" and v.signers == "bob"
    assert v.waiting == {"bob"}
    v = rule.evaluate(["alice"], ["bob"])
    assert v.state is RuleState.DEFEATED
    assert v.reason == "bob rejected (all of alice, bob must approve)"


def test_threshold_with_veto_says_what_is_missing() -> None:
    rule = ApprovalRule.parse({"require": 1, "of": ["bob", "carol"], "veto": ["alice"]})
    assert rule.describe() == "1 of bob, carol; alice must approve (veto)"
    v = rule.evaluate([])
    assert v.missing == "needs 1 more of bob, carol; alice must approve (veto)"
    assert v.signers == "1 more of bob, carol and alice (veto)"
    assert v.waiting == {"alice", "bob", "carol"}
    v = rule.evaluate(["carol"])
    assert v.missing == "alice must approve (veto)" and v.waiting == {"alice"}
    assert rule.evaluate(["carol", "alice"]).state is RuleState.SATISFIED
    # A rejection by a counted party is survivable; the veto party's is not.
    assert rule.evaluate(["alice"], ["bob"]).state is RuleState.POSSIBLE
    v = rule.evaluate(["bob", "carol"], ["alice"])
    assert v.state is RuleState.DEFEATED and v.reason == "alice rejected (veto)"
    v = rule.evaluate(["alice"], ["bob", "carol"])
    assert v.state is RuleState.DEFEATED
    assert v.reason == "bob, carol rejected (1 of bob, carol must approve)"


def test_nested_rules() -> None:
    rule = ApprovalRule.parse(
        {"require": 2, "of": ["alice", {"require": 1, "of": ["bob", "carol"]}, ["dave", "erin"]]}
    )
    assert rule.describe() == "2 of alice, (1 of bob, carol), (all of dave, erin)"
    assert rule.parties() == {"alice", "bob", "carol", "dave", "erin"}
    assert rule.evaluate(["bob", "dave", "erin"]).state is RuleState.SATISFIED
    v = rule.evaluate(["dave"])
    assert v.missing == "needs 2 more of alice, (1 more of bob, carol), erin"
    # When every undecided item is needed, the nested rule's own needs are listed.
    inner = ApprovalRule.parse(["alice", {"require": 1, "of": ["bob", "carol"], "veto": ["dave"]}])
    v = inner.evaluate([])
    assert v.needs == (
        "alice must approve",
        "needs 1 more of bob, carol",
        "dave must approve (veto)",
    )
    v = inner.evaluate(["alice", "bob"], ["dave"])
    assert v.state is RuleState.DEFEATED and v.reason.startswith("dave rejected (veto)")


def test_canonical_form_keeps_the_hash_of_equivalent_sessions() -> None:
    assert ApprovalRule.parse({"require": "all", "of": ["a", "b"]}).to_data() == ["a", "b"]
    assert ApprovalRule.parse({"require": 2, "of": ["a", "b"]}).to_data() == ["a", "b"]
    assert ApprovalRule.parse({"of": ["a", "b"], "veto": ["c"]}).to_data() == {
        "require": "all",
        "of": ["a", "b"],
        "veto": ["c"],
    }
    keys = {n: public_key_text(new_key_pair().public) for n in ("a", "b")}

    def doc(create: Any) -> dict[str, Any]:
        return {
            "version": 1,
            "name": "s",
            "parties": keys,
            "approval": {"create": create, "update": ["a"]},
        }

    short = session_from_document(doc(["a", "b"]))
    assert short.document()["approval"]["create"] == ["a", "b"]
    assert session_hash(short) == session_hash(
        session_from_document(doc({"require": 2, "of": ["a", "b"]}))
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "an empty rule would need nobody's approval"),
        ({"of": []}, "an empty rule would need nobody's approval"),
        ({"require": 0, "of": ["a"]}, "require 0: a rule needs at least 1 approval"),
        ({"require": 3, "of": ["a", "b"]}, "require 3 of 2: the rule lists only 2 items"),
        ({"require": "most", "of": ["a"]}, "require is `all` or a number, not 'most'"),
        ({"require": True, "of": ["a"]}, "require is `all` or a number, not True"),
        (["a", "a"], "a is listed twice in the rule"),
        ({"of": ["a"], "veto": ["a"]}, "a is listed twice in the rule"),
        ({"of": ["a", ["b", "a"]]}, "a is listed twice in the rule"),
        ({"of": ["a"], "quorum": 1}, "unknown key quorum in a rule"),
        ({"require": 1}, "a rule needs `of`"),
        ({"of": "a"}, "`of` is a list of parties or rules"),
        ({"of": ["a"], "veto": "b"}, "`veto` is a list of parties"),
        (["a", 7], "7 is not a party name or a rule"),
        (["a", "not a name"], "'not a name' is not a party name"),
        (5, "a rule is a list of parties or {require, of, veto}, not int"),
        ({"of": ["a", {"require": 2, "of": ["b"]}]}, r"require 2 of 1: .* \(at of\.1\)"),
        ([[[[[[[[["a"]]]]]]]]], "rules nest at most 8 deep"),
    ],
)
def test_malformed_rules_are_refused_in_rule_terms(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ApprovalRule.parse(data)


def test_unknown_parties_are_named_in_the_session() -> None:
    keys = {"a": public_key_text(new_key_pair().public)}
    from seml.errors import UsageError

    with pytest.raises(UsageError, match=r"approval\.update: zed is not one of the parties"):
        session_from_document(
            {
                "version": 1,
                "name": "s",
                "parties": keys,
                "approval": {"create": ["a"], "update": {"require": 1, "of": ["a", "zed"]}},
            }
        )


# -- property: the verdict agrees with a brute-force reading of the rule ------------------------


@st.composite
def rules(draw: st.DrawFn, pool: list[str] | None = None, depth: int = 0) -> Any:
    """A rule's plain data over distinct parties taken from `pool`."""
    pool = pool if pool is not None else list(PARTIES)
    vetoes = draw(st.integers(0, min(1, len(pool) - 1)))
    veto = [pool.pop() for _ in range(vetoes)]
    items: list[Any] = []
    for _ in range(draw(st.integers(1, 3))):
        if not pool:
            break
        if depth < 2 and len(pool) >= 2 and draw(st.booleans()):
            items.append(draw(rules(pool, depth + 1)))
        else:
            items.append(pool.pop())
    if not items:
        items = [veto.pop()] if veto else [PARTIES[0]]
    require = draw(st.one_of(st.just("all"), st.integers(1, len(items))))
    return {"require": require, "of": items, "veto": veto}


def met(rule: ApprovalRule, yes: set[str]) -> bool:
    items = sum(1 for i in rule.of if (i in yes if isinstance(i, str) else met(i, yes)))
    return all(v in yes for v in rule.veto) and items >= rule.needed


@given(
    rules(),
    st.dictionaries(st.sampled_from(PARTIES), st.sampled_from(["approve", "reject"])),
)
def test_verdict_agrees_with_brute_force(data: Any, decisions: dict[str, str]) -> None:
    try:
        rule = ApprovalRule.parse(data)
    except ValueError as e:  # only an impossible draw (a party used twice) may be refused
        assert "listed twice" in str(e)
        return
    yes = {p for p, d in decisions.items() if d == "approve"}
    no = {p for p, d in decisions.items() if d == "reject"}
    undecided = rule.parties() - yes - no
    verdict = rule.evaluate(yes, no)
    if met(rule, yes):
        assert verdict.state is RuleState.SATISFIED
    elif met(rule, yes | undecided):
        assert verdict.state is RuleState.POSSIBLE
        assert verdict.needs and verdict.signers
        # Whoever it waits for is undecided, and their approvals together meet the rule.
        assert verdict.waiting <= undecided
        assert met(rule, yes | verdict.waiting)
    else:
        assert verdict.state is RuleState.DEFEATED and verdict.reason
    # Once everyone has decided, nothing is merely possible.
    assert rule.evaluate(yes, no | undecided).state is not RuleState.POSSIBLE
    assert ApprovalRule.parse(rule.to_data()) == rule
