"""Completion reports, receipts and model release at the service (in process).

A run is fetch, train, publish under one session hash, chained by the training volume's
versions; the publish's completion makes one receipt. Reports need the attestation's capability,
once. A model key with a release rule waits for its owners' decisions about the receipt's model.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from _cas_inprocess import InProcessCas
from _casdata import GOOD, Parties
from seml.attest import SimulationProvider
from seml.cas import CasClient, ServiceConfig
from seml.cas._receipt_models import ReleaseState
from seml.errors import PolicyError
from seml.flow import collaboration_session, private_session
from seml.flow._plan import training_specs
from seml.policy import ApprovalRule, Decision, session_hash, sign_model_decision
from seml.receipt import CheckStatus, LocalFile, ManifestSeen, verify_receipt

MODEL = b"the trained model"
METRICS = b'{"accuracy": 0.9}'


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _agree(
    client: CasClient, name: str, parties: Parties, release: ApprovalRule | None = None
) -> str:
    doc = collaboration_session(
        name=name,
        parties=parties.public(),
        measurement=GOOD,
        storage="file:///nowhere",
        specs=training_specs(["classification"]),
        release=release,
    )
    client.submit_session(doc, parties.sign(doc))
    h = session_hash(doc)
    for p in parties.keys:
        private = private_session(
            collaboration=name,
            collaboration_hash=h,
            party=p,
            public_key=parties.public()[p],
            measurement=GOOD,
            storage="file:///nowhere",
        )
        client.submit_session(private, parties.sign(private, p))
    return h


class Run:
    """Drives the cloud's services as `seml run` would: attest, then report completion."""

    def __init__(self, client: CasClient, name: str, parties: Parties) -> None:
        self.client, self.name, self.parties = client, name, parties
        self.volume = 0

    def attest(self, service: str) -> ServiceConfig:
        return self.client.attest(self.name, service, SimulationProvider(GOOD))

    def step(self, service: str, claims: dict[str, Any]) -> dict[str, Any]:
        config = self.attest(service)
        opened, self.volume = self.volume, self.volume + 1
        steps = [
            {"owner": self.name, "volume": "training", "opened": opened, "sealed": self.volume}
        ]
        return self.client.complete(config, volumes=steps, claims=claims)

    def fetch(self) -> dict[str, Any]:
        inputs = [
            {
                "party": p,
                "remote": f"file:///nowhere/datasets/{p}",
                "manifest_version": 1,
                "manifest_digest": _sha(f"{self.name} {p}".encode()),
                "files": 1,
                "bytes": 100,
            }
            for p in self.parties.keys
        ]
        return self.step("fetch", {"inputs": inputs})

    def train(self, model: bytes = MODEL) -> dict[str, Any]:
        return self.step(
            "train",
            {
                "training": {
                    "specs": [{"name": "classification", "sha256": _sha(b"spec")}],
                    "models": [
                        {
                            "path": "classification/model.skops",
                            "sha256": _sha(model),
                            "size": len(model),
                        }
                    ],
                    "metrics": {"classification": {"accuracy": 0.9}},
                }
            },
        )

    def publish(self, model: bytes = MODEL) -> dict[str, Any]:
        files = [
            {"path": "classification/model.skops", "sha256": _sha(model), "size": len(model)},
            {"path": "classification/metrics.json", "sha256": _sha(METRICS), "size": len(METRICS)},
        ]
        pushed = {
            "remote": "file:///nowhere/model",
            "manifest_version": 1,
            "manifest_digest": _sha(model),
            "files": files,
        }
        return self.step("publish", {"pushed": pushed})

    def whole(self, model: bytes = MODEL) -> str:
        self.fetch()
        self.train(model)
        answer = self.publish(model)
        assert answer["receipt"], answer
        return str(answer["receipt"])


def test_a_run_gets_one_receipt_that_verifies_offline(client: CasClient, cas: InProcessCas) -> None:
    parties = Parties("alice", "bob")
    h = _agree(client, "run1", parties)
    run = Run(client, "run1", parties)
    assert run.fetch()["receipt"] is None
    assert run.train()["receipt"] is None
    receipt_id = run.publish()["receipt"]
    listed = client.receipts("run1", parties.keys["alice"])
    assert [e.receipt.id for e in listed.receipts] == [receipt_id]
    entry = listed.receipts[0]
    body = entry.receipt.receipt
    assert body.session.hash == h and sorted(body.session.parties) == ["alice", "bob"]
    assert sorted(s.party for s in body.session.signatures) == ["alice", "bob"]
    assert [p.name for p in body.private_sessions] == ["run1-alice", "run1-bob"]
    assert [s.role for s in body.services] == ["fetch", "train", "publish"]
    assert all(s.simulated and "SIMULATED" in s.evidence for s in body.services)
    assert body.simulated and body.notice.startswith("SIMULATED")
    assert body.training.metrics == {"classification": {"accuracy": 0.9}}
    # The audit entries it summarises are the service's own, chained and signed.
    audit = {e.seq: e for e in cas.service.store.audit(0, 100_000)}  # the operator's view
    for ref in body.audit:
        assert audit[ref.seq].hash == ref.hash and audit[ref.seq].event == ref.event
    assert entry.status.state is ReleaseState.RELEASED and not entry.status.required
    identity = base64.b64decode(client.info().identity_key)
    check = verify_receipt(
        entry.receipt.to_json().encode(),
        identity,
        models=[LocalFile("model.skops", _sha(MODEL), len(MODEL))],
        manifests={
            "alice": [ManifestSeen("x", 1, _sha(b"run1 alice"))],
            "bob": [ManifestSeen("x", 1, _sha(b"run1 bob"))],
        },
    )
    assert check.ok, check.problems


def test_a_report_with_a_forged_or_replayed_capability_is_refused(
    client: CasClient, cas: InProcessCas
) -> None:
    parties = Parties("alice", "bob")
    _agree(client, "caps", parties)
    run = Run(client, "caps", parties)
    config = run.attest("fetch")
    forged = config.replace(completion="A" * 43)
    with pytest.raises(PolicyError, match=r"no attestation holds this capability \(forged\)"):
        client.complete(forged, volumes=[], claims={})
    other = config.replace(service="train")
    with pytest.raises(PolicyError, match="its capability was issued to fetch of caps"):
        client.complete(other, volumes=[], claims={})
    client.complete(config, volumes=[], claims={})
    with pytest.raises(PolicyError, match="a replay"):
        client.complete(config, volumes=[], claims={})
    # The replay repeats the forged report's kind of refusal (same request, session, service)
    # within a minute: it is counted into one `refused.repeated` entry, written when the minute
    # is over, which keeps the first one's reason.
    cas.service.flush_refusals(time.time(), force=True)
    entries = cas.service.store.audit(0, 100_000)  # the operator's view
    refused = [e.details for e in entries if e.event == "refused" and e.details is not None]
    repeated = [e.details for e in entries if e.event == "refused.repeated" and e.details]
    assert any("forged" in d["reason"] for d in refused)
    assert any(d["request"] == "complete" and d["count"] == 1 for d in repeated)


def test_runs_are_not_mixed(client: CasClient, cas: InProcessCas) -> None:
    parties = Parties("alice", "bob")
    _agree(client, "mixed", parties)
    run = Run(client, "mixed", parties)
    run.fetch()
    run.train()
    run.fetch()  # a second fetch: the training volume moves on without a training
    answer = run.publish()
    assert answer["receipt"] is None
    assert "not one run" in answer["note"] and "train sealed v2" in answer["note"]
    assert any(e.event == "receipt.refused" for e in cas.service.store.audit(0, 100_000))
    # Without a fetch before the training there is no run either.
    parties2 = Parties("alice", "bob")
    _agree(client, "nofetch", parties2)
    lone = Run(client, "nofetch", parties2)
    lone.train()
    assert "no fetch completed" in lone.publish()["note"]


def test_a_receipt_from_one_run_does_not_verify_against_another_runs_model(
    client: CasClient,
) -> None:
    parties = Parties("alice", "bob")
    _agree(client, "tworuns", parties)
    run = Run(client, "tworuns", parties)
    run.whole(b"model one")
    run.whole(b"model two")
    first, second = client.receipts("tworuns", parties.keys["bob"]).receipts
    identity = base64.b64decode(client.info().identity_key)
    two = LocalFile("model.skops", _sha(b"model two"), len(b"model two"))
    assert verify_receipt(second.receipt.to_json().encode(), identity, models=[two]).ok
    check = verify_receipt(first.receipt.to_json().encode(), identity, models=[two])
    failed = [c for c in check.checks if c.status is CheckStatus.FAIL]
    assert [c.name for c in failed] == ["model model.skops"]


def test_receipts_are_read_by_parties_only(client: CasClient) -> None:
    parties = Parties("alice", "bob")
    _agree(client, "readers", parties)
    stranger = Parties("mallory")
    with pytest.raises(PolicyError, match="is not the key of a party of readers"):
        client.receipts("readers", stranger.keys["mallory"])


def _decide(
    client: CasClient, parties: Parties, name: str, party: str, model: str, d: Decision
) -> Any:
    return client.decide_model(sign_model_decision(model, name, party, parties.keys[party], d))


def test_pull_waits_for_the_owners_approval(client: CasClient, cas: InProcessCas) -> None:
    parties = Parties("alice", "bob", "carol")
    _agree(client, "gated", parties, release=ApprovalRule.all_of(["alice", "bob"]))
    run = Run(client, "gated", parties)
    with pytest.raises(PolicyError, match="no run has completed"):
        run.attest("pull-alice")
    run.whole()
    entry = client.receipts("gated", parties.keys["carol"]).receipts[-1]
    model = entry.receipt.receipt.model.digest
    assert entry.receipt.receipt.release.required
    assert entry.receipt.receipt.release.owners == ["alice", "bob"]
    assert entry.status.state is ReleaseState.AWAITING
    with pytest.raises(PolicyError, match=f"model {model} awaits approval by alice, bob"):
        run.attest("pull-alice")
    # publish, the producer, is not gated
    run.attest("publish")
    status = _decide(client, parties, "gated", "alice", model, Decision.APPROVE)
    assert status.state is ReleaseState.AWAITING and status.approved == ["alice"]
    with pytest.raises(PolicyError, match=f"model {model} awaits approval by bob$"):
        run.attest("pull-carol")
    with pytest.raises(PolicyError, match="carol is not an owner of model"):
        _decide(client, parties, "gated", "carol", model, Decision.APPROVE)
    # bob's name with carol's key: refused
    forged = sign_model_decision(model, "gated", "bob", parties.keys["carol"], Decision.APPROVE)
    with pytest.raises(PolicyError, match="is not bob's key in gated"):
        client.decide_model(forged)
    status = _decide(client, parties, "gated", "bob", model, Decision.APPROVE)
    assert status.state is ReleaseState.RELEASED
    env = run.attest("pull-alice").environment
    assert env["SEML_CRYPT_PASSWORD"]
    # The pull takes only the manifest of the approved model.
    assert env["SEML_RELEASED_MANIFEST"] == entry.receipt.receipt.model.manifest_digest
    assert "SEML_RELEASED_MANIFEST" not in run.attest("publish").environment
    events = [e.event for e in cas.service.store.audit(0, 100_000)]
    assert events.count("model.approve") == 2
    # A new run's model needs its own approval.
    run.whole(b"retrained")
    with pytest.raises(PolicyError, match="awaits approval by alice, bob"):
        run.attest("pull-bob")


def test_a_rejection_keeps_the_model_refused(client: CasClient, cas: InProcessCas) -> None:
    parties = Parties("alice", "bob")
    _agree(client, "rejected", parties, release=ApprovalRule.all_of(["alice", "bob"]))
    run = Run(client, "rejected", parties)
    run.whole()
    model = (
        client.receipts("rejected", parties.keys["alice"]).receipts[-1].receipt.receipt.model.digest
    )
    _decide(client, parties, "rejected", "alice", model, Decision.APPROVE)
    status = _decide(client, parties, "rejected", "bob", model, Decision.REJECT)
    assert status.state is ReleaseState.REJECTED
    with pytest.raises(PolicyError, match=f"model {model} was rejected"):
        run.attest("pull-alice")
    with pytest.raises(PolicyError, match=r"bob already rejected model .* a decision is final"):
        _decide(client, parties, "rejected", "bob", model, Decision.APPROVE)
    with pytest.raises(PolicyError, match="was rejected"):
        run.attest("pull-bob")
    assert "model.reject" in [e.event for e in cas.service.store.audit(0, 100_000)]


def test_without_a_release_rule_there_is_nothing_to_approve(client: CasClient) -> None:
    parties = Parties("alice", "bob")
    _agree(client, "open", parties)
    run = Run(client, "open", parties)
    run.whole()
    env = run.attest("pull-alice").environment
    assert env["SEML_CRYPT_PASSWORD"] and "SEML_RELEASED_MANIFEST" not in env
    model = client.receipts("open", parties.keys["alice"]).receipts[-1].receipt.receipt.model.digest
    with pytest.raises(PolicyError, match="has no release rule"):
        _decide(client, parties, "open", "alice", model, Decision.APPROVE)


def test_a_model_decision_is_not_a_session_signature(tmp_path: Path) -> None:
    from seml.policy import decision_message, model_decision_message

    assert model_decision_message(Decision.APPROVE, "s", "sha256:" + "0" * 64) != decision_message(
        Decision.APPROVE, "sha256:" + "0" * 64
    )
    assert model_decision_message(Decision.APPROVE, "s", "m") != model_decision_message(
        Decision.REJECT, "s", "m"
    )
