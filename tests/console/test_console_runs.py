"""The Runs and models page through the console's app in this process: the receipts of this
party's sessions checked in place (signature, session version, its own inputs), a receipt it
pastes (one that verifies, one tampered with), and a model release approved with the
confirmation step."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from _cas_inprocess import InProcessCas
from _casdata import Parties
from cas.test_cas_receipts import Run, _agree
from console.conftest import ConsoleUnderTest, console_for, csrf_of
from seml.cas import CasClient
from seml.cas._receipt_models import ReleaseState
from seml.policy import ApprovalRule


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties("alice", "bob")


@pytest.fixture(scope="module")
def receipt(cas_client: CasClient, parties: Parties) -> str:
    """One completed run of `gated`, whose model waits for alice and bob."""
    _agree(cas_client, "gated", parties, release=ApprovalRule.all_of(["alice", "bob"]))
    Run(cas_client, "gated", parties).whole()
    entry = cas_client.receipts("gated", parties.keys["bob"]).receipts[-1]
    return entry.receipt.to_json()


@pytest.fixture(scope="module")
def bob(
    cas: InProcessCas,
    parties: Parties,
    receipt: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConsoleUnderTest]:
    # bob's machine pushed the manifest the run used (its sync state says so).
    state = tmp_path_factory.mktemp("bob-state")
    digest = hashlib.sha256(b"gated bob").hexdigest()
    (state / "sync-versions.json").write_text(
        json.dumps({"file:///nowhere/datasets/bob": {"version": 1, "digest": digest}})
    )
    yield from console_for(cas, parties.keys["bob"], "bob", state_dir=state)


def _id(receipt: str) -> str:
    from seml.receipt import SignedReceipt

    return SignedReceipt.model_validate_json(receipt).id


def test_the_runs_page_checks_each_receipt_in_place(bob: ConsoleUnderTest, receipt: str) -> None:
    html = bob.login().get("/runs").text
    assert "gated" in html and _id(receipt) in html
    assert "verifies" in html and "DOES NOT VERIFY" not in html
    assert "SIMULATED evidence" in html
    assert "classification accuracy</span>=0.9" in html
    assert "AWAITING" in html and "your decision is needed" in html


def test_a_receipt_page_shows_each_check_metrics_inputs_and_the_release(
    bob: ConsoleUnderTest, receipt: str
) -> None:
    html = bob.login().get(f"/receipts/gated/{_id(receipt)}").text
    assert 'id="verdict" class="pass">VERIFIES' in html
    for check in ("signature", "session", "input bob"):
        assert f'<tr class="check-pass"><td>{check}</td>' in html, check
    assert '<tr class="check-skipped"><td>model</td>' in html  # the model is not on this machine
    assert "stays encrypted in your protected volume" in html
    assert "the identity key the service states over its pinned TLS connection" in html
    assert "Approve model…" in html and "awaits approval by alice, bob" in html


def test_a_pasted_receipt_is_checked_and_a_tampered_one_fails(
    bob: ConsoleUnderTest, receipt: str
) -> None:
    b = bob.login()
    csrf = csrf_of(b.get("/verify").text)
    good = b.post("/verify", data={"csrf": csrf, "receipt": receipt}).text
    assert 'id="verdict" class="pass">VERIFIES' in good
    doc = json.loads(receipt)
    doc["receipt"]["training"]["metrics"]["classification"]["accuracy"] = 0.99
    bad = b.post("/verify", data={"csrf": csrf, "receipt": json.dumps(doc)}).text
    assert 'id="verdict" class="fail">DOES NOT VERIFY' in bad
    assert '<tr class="check-fail"><td>signature</td>' in bad
    assert "nothing it says below is vouched for" in bad
    junk = b.post("/verify", data={"csrf": csrf, "receipt": "<script>x</script>"}).text
    assert "DOES NOT VERIFY" in junk and "<script>x" not in junk
    assert b.post("/verify", data={"receipt": receipt}).status_code == 403  # no CSRF token


def test_approving_a_model_release_signs_here_after_confirmation(
    bob: ConsoleUnderTest, cas_client: CasClient, parties: Parties, receipt: str
) -> None:
    rid = _id(receipt)
    b = bob.login()
    confirm = b.get(f"/receipts/gated/{rid}/confirm?decision=approve").text
    model = json.loads(receipt)["receipt"]["model"]["digest"]
    assert model in confirm and "Sign and approve" in confirm
    form = {"csrf": csrf_of(confirm), "model": model, "decision": "approve"}
    r = b.post(f"/receipts/gated/{rid}/decide", data=form)
    assert r.status_code == 400 and "confirmation" in r.text
    r = b.post(f"/receipts/gated/{rid}/decide", data={**form, "confirm": "yes", "model": "x"})
    assert r.status_code == 400 and "is not this receipt&#39;s model" in r.text
    r = b.post(f"/receipts/gated/{rid}/decide", data={**form, "confirm": "yes", "csrf": "0" * 64})
    assert r.status_code == 403
    status = cas_client.receipts("gated", parties.keys["alice"]).receipts[-1].status
    assert status.approved == []
    r = b.post(f"/receipts/gated/{rid}/decide", data={**form, "confirm": "yes"})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=approve")
    status = cas_client.receipts("gated", parties.keys["alice"]).receipts[-1].status
    assert status.state is ReleaseState.AWAITING and status.approved == ["bob"]
    html = b.get(r.headers["location"]).text
    assert "awaits approval by alice" in html and "you approved" in html
    assert "Approve model…" not in html
