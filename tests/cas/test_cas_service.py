"""The attestation service through its client, the app in this process: sessions, reads,
attestation, volumes, audit. (Real HTTPS: test_cas_https.py.)"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey, PublicKey, SealedBox

from _cas_inprocess import InProcessCas
from _casdata import GOOD, OTHER, Parties, session_of, shared_document, update_of
from seml.attest import SimulationProvider, report_data_for
from seml.cas import CasClient, SessionSummary
from seml.cas._protocol import read_challenge
from seml.cas._provided import provided_message
from seml.errors import AttestationError, PolicyError, UsageError
from seml.policy import PartyKey, session_hash

PROVIDED = b"pw-7f3a9c-provided-marker"


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties("alice", "bob")


@pytest.fixture(scope="module")
def shared(client: CasClient, parties: Parties) -> SessionSummary:
    """The session 'shared', created once for the module."""
    s = session_of(shared_document("shared", parties))
    return client.submit_session(s, parties.sign(s), parties.provide(client, s, PROVIDED))


def test_create_refuses_missing_and_forged_signatures(client: CasClient, parties: Parties) -> None:
    s = session_of(shared_document("lifecycle", parties))
    with pytest.raises(PolicyError, match="needs a valid signature from bob"):
        client.submit_session(s, parties.sign(s, "alice"), parties.provide(client, s, b"x"))
    forged = [
        x.model_copy(update={"signature": base64.b64encode(bytes(64)).decode()})
        for x in parties.sign(s)
    ]
    with pytest.raises(PolicyError, match="alice, bob"):
        client.submit_session(s, forged, parties.provide(client, s, b"x"))
    with pytest.raises(PolicyError, match="must be provided by alice"):
        client.submit_session(s, parties.sign(s))
    # A value sealed by a party that is not the provider, or for another session, is refused.
    alice_blob = client.seal_provided(s, "pw", b"evil", parties.keys["alice"])
    other = session_of(shared_document("other", parties))
    with pytest.raises(PolicyError, match="sealed for another session version"):
        client.submit_session(s, parties.sign(s), parties.provide(client, other, b"x"))
    bob_doc = shared_document("lifecycle", parties)
    bob_doc["secrets"][4]["provided_by"] = "bob"
    with pytest.raises(UsageError, match=r"provided by bob; key .* is not bob's"):
        client.seal_provided(session_of(bob_doc), "pw", b"x", parties.keys["alice"])
    swapped = session_of(bob_doc)
    with pytest.raises(PolicyError, match="sealed for another session version"):
        client.submit_session(swapped, parties.sign(swapped), {"pw": alice_blob})
    # Server side: a well-formed blob for this very session, but signed by bob, not alice.
    inner = {
        "hash": session_hash(s),
        "secret": "pw",
        "value": base64.b64encode(b"bob's").decode(),
        "signature": base64.b64encode(
            parties.keys["bob"].sign(provided_message(session_hash(s), "pw", b"bob's"))
        ).decode(),
    }
    box = PublicKey(base64.b64decode(client.info().box_key))
    forged_blob = base64.b64encode(SealedBox(box).encrypt(json.dumps(inner).encode())).decode()
    with pytest.raises(PolicyError, match="not signed by its provider alice"):
        client.submit_session(s, parties.sign(s), {"pw": forged_blob})
    with pytest.raises(UsageError, match="not sealed to this service's key"):
        client.submit_session(s, parties.sign(s), {"pw": base64.b64encode(bytes(80)).decode()})
    v1 = client.submit_session(s, parties.sign(s), parties.provide(client, s, b"x"))
    assert v1.version == 1 and v1.hash == session_hash(s)
    # Whoever submits learns no hash: not the latest one, nor that the submission is stale.
    with pytest.raises(PolicyError, match="exists and this is not an update of its latest") as e:
        client.submit_session(s, parties.sign(s), parties.provide(client, s, b"x"))
    assert "sha256:" not in str(e.value)

    # Updates: stale, unsigned, then properly signed.
    doc = s.document()
    doc["services"][0]["measurements"] = [OTHER]
    v2 = update_of(s, services=doc["services"])
    with pytest.raises(PolicyError, match="needs a valid signature from bob"):
        client.submit_session(v2, parties.sign(v2, "alice"))
    assert client.submit_session(v2, parties.sign(v2)).version == 2
    stale = update_of(s, storage={"location": "s3://elsewhere"})
    with pytest.raises(PolicyError, match="exists and this is not an update of its latest") as e:
        client.submit_session(stale, parties.sign(stale))
    assert "sha256:" not in str(e.value)

    alice = ("alice", parties.keys["alice"])
    history = client.history("lifecycle", party=alice)
    assert [h.version for h in history] == [1, 2]
    assert history[1].predecessor == v1.hash
    assert history[1].signers == ["alice", "bob"]
    # A party asking for v1 gets v1 and its ancestors, not the later version.
    assert [v.version for v in client.history("lifecycle", hash_=v1.hash, party=alice)] == [1]
    assert client.get_session("lifecycle", hash_=v1.hash, party=alice).hash == v1.hash
    latest = client.get_session("lifecycle", party=alice)
    assert latest.version == 2 and latest.document.services[0].measurements == [OTHER]


def _read_raw(
    client: CasClient, name: str, party: str, key: PartyKey, *, hash_: str | None = None
) -> Any:
    nonce = client.nonce()
    return client._call(
        "GET",
        f"/v1/sessions/{name}",
        params={"hash": hash_} if hash_ else None,
        headers={
            "X-Seml-Party": party,
            "X-Seml-Nonce": base64.b64encode(nonce).decode(),
            "X-Seml-Signature": base64.b64encode(key.sign(read_challenge(name, nonce))).decode(),
        },
    )


def test_reading_needs_a_party(client: CasClient, parties: Parties, shared: SessionSummary) -> None:
    """Only a party of the session reads it; a hash is no credential; and a refusal does not
    tell an unknown session from one the caller may not read."""
    refusal = "needs a fresh challenge signed by one of its parties"
    with pytest.raises(PolicyError, match=refusal):
        client._call("GET", "/v1/sessions/shared")
    with pytest.raises(PolicyError, match=refusal):  # a leaked hash opens nothing
        client._call("GET", "/v1/sessions/shared", params={"hash": shared.hash})
    stranger = Parties("mallory").keys["mallory"]
    answers = []
    for name, party, key in [
        ("shared", "mallory", stranger),  # not a party
        ("shared", "alice", stranger),  # a party's name, another key
        ("nothing", "alice", parties.keys["alice"]),  # no such session
    ]:
        with pytest.raises(PolicyError, match=refusal) as e:
            _read_raw(client, name, party, key)
        answers.append(str(e.value).replace(name, "NAME"))
    assert len(set(answers)) == 1, answers
    alice = ("alice", parties.keys["alice"])
    with pytest.raises(UsageError, match="is not a version of session shared"):
        client.get_session("shared", hash_="sha256:" + "0" * 64, party=alice)
    got = client.get_session("shared", party=alice)
    assert got.document.secret("pw") is not None
    assert PROVIDED.decode() not in got.model_dump_json()


def test_attestation_releases_resolved_config(client: CasClient, shared: SessionSummary) -> None:
    train = client.attest("shared", "train", SimulationProvider(GOOD))
    run = client.attest("shared", "run", SimulationProvider(OTHER))
    assert train.simulated and train.weaknesses == ["simulation"]
    assert train.session_hash == shared.hash and train.measurement == GOOD
    assert len(bytes.fromhex(train.environment["MODEL_KEY"])) == 32
    assert base64.b64decode(run.environment["MODEL_KEY"]).hex() == train.environment["MODEL_KEY"]
    assert run.environment["PW"] == PROVIDED.decode()
    assert "BEGIN CERTIFICATE" in train.files["/tls/crt.pem"]
    assert "PRIVATE KEY" in train.files["/tls/key.pem"]
    assert "BEGIN PUBLIC KEY" in train.environment["SIG"]
    assert len(train.environment["TOKEN"]) == 24 and train.environment["TOKEN"].isalnum()
    assert train.command == ["python", "-m", "train"]
    # The same volume and key for both; each service its own capability (bound to it).
    train_grant, run_grant = train.volumes["model"], run.volumes["model"]
    assert dataclasses.replace(train_grant, token="") == dataclasses.replace(run_grant, token="")
    assert train.volumes["model"].token != run.volumes["model"].token
    assert train.secrets == ["api_token", "model_key", "sig", "tls"]
    # A service gets only what it reads: no provided password in the trainer's config.
    assert PROVIDED.decode() not in train.to_json()
    assert PROVIDED.decode() not in repr(run) and run.environment["PW"] not in repr(run)
    # The same secrets on every release.
    again = client.attest("shared", "train", SimulationProvider(GOOD), session_hash=shared.hash)
    assert again.environment == train.environment


def _attest_raw(
    client: CasClient,
    nonce: bytes,
    *,
    measurement: str = GOOD,
    service: str = "train",
    session: str = "shared",
    bind_key: bytes | None = None,
) -> Any:
    key = bytes(PrivateKey.generate().public_key)
    evidence = SimulationProvider(measurement).evidence(report_data_for(nonce, bind_key or key))
    return client._call(
        "POST",
        "/v1/attest",
        json={
            "session": session,
            "service": service,
            "nonce": base64.b64encode(nonce).decode(),
            "public_key": base64.b64encode(key).decode(),
            "evidence": evidence.to_json_dict(),
        },
    )


def test_refusals_have_precise_reasons(client: CasClient, shared: SessionSummary) -> None:
    nonce = client.nonce()
    assert "sealed" in _attest_raw(client, nonce)
    with pytest.raises(AttestationError, match="nonce already used"):
        _attest_raw(client, nonce)
    with pytest.raises(AttestationError, match=f"measurement {OTHER} is not allowed for service"):
        _attest_raw(client, client.nonce(), measurement=OTHER)
    # An unknown service and an unknown session: the same refusal (no oracle for names).
    with pytest.raises(UsageError, match="no service ghost in a session named shared"):
        _attest_raw(client, client.nonce(), service="ghost")
    with pytest.raises(UsageError, match="no service train in a session named ghost"):
        _attest_raw(client, client.nonce(), session="ghost")
    with pytest.raises(AttestationError, match="bound to other report data"):
        _attest_raw(client, client.nonce(), bind_key=bytes(32))
    with pytest.raises(AttestationError, match="not issued by this service"):
        _attest_raw(client, bytes(40))
    with pytest.raises(PolicyError, match="has changed since the version pinned") as e:
        client.attest(
            "shared", "train", SimulationProvider(GOOD), session_hash="sha256:" + "1" * 64
        )
    assert shared.hash not in str(e.value)
    with pytest.raises(UsageError, match="request body larger than"):
        client._call("POST", "/v1/attest", json={"session": "x" * (3 << 20)})
    with pytest.raises(UsageError, match="malformed request"):
        client._call("POST", "/v1/attest", json={"session": "shared", "evidence": {"tee": "x"}})


def test_untolerated_simulation_refused(client: CasClient, parties: Parties) -> None:
    s = session_of(shared_document("strict", parties, tolerate=()))
    client.submit_session(s, parties.sign(s), parties.provide(client, s, b"x"))
    with pytest.raises(AttestationError, match="does not tolerate: simulation"):
        client.attest("strict", "train", SimulationProvider(GOOD))


def test_private_session_exports_to_pinned_shared_session(
    client: CasClient, parties: Parties
) -> None:
    alice = Parties("alice")
    alice.keys = {"alice": parties.keys["alice"]}
    # The shared session imports alice's data key and data volume from her private session.
    doc = shared_document("collab", parties)
    doc["secrets"].append(
        {
            "name": "alice_data",
            "import": {"session": "alice-private", "secret": "data_key"},
            "readers": ["train"],
        }
    )
    doc["volumes"].append(
        {"name": "alice_vol", "import": {"session": "alice-private", "volume": "data"}}
    )
    doc["services"][0]["environment"]["ALICE"] = "$$SEML::alice_data$$"
    doc["services"][0]["volumes"]["alice_vol"] = "/alice"
    collab = session_of(doc)
    client.submit_session(collab, parties.sign(collab), parties.provide(client, collab, b"x"))
    with pytest.raises(PolicyError, match="imported from session alice-private, which does not"):
        client.attest("collab", "train", SimulationProvider(GOOD))

    def private(export_to: str, services: list[str]) -> dict[str, Any]:
        export = [{"session": "collab", "session_hash": export_to, "services": services}]
        return {
            "version": 1,
            "name": "alice-private",
            "parties": alice.public(),
            "approval": {"create": ["alice"], "update": ["alice"]},
            "security": {"tolerate": ["simulation"]},
            "secrets": [
                {"name": "data_key", "kind": "key", "readers": ["upload"], "export": export}
            ],
            "volumes": [{"name": "data", "export": export}],
            "services": [
                {
                    "name": "upload",
                    "measurements": [GOOD],
                    "environment": {"KEY": "$$SEML::data_key$$"},
                    "volumes": {"data": "/data"},
                }
            ],
        }

    # Exported, but to another service only: refused.
    p1 = session_of(private(session_hash(collab), ["run"]))
    client.submit_session(p1, alice.sign(p1))
    with pytest.raises(PolicyError, match="does not export data_key to service train"):
        client.attest("collab", "train", SimulationProvider(GOOD))
    # Exported to train of exactly this collab version: released, same value alice's uploader gets.
    p2 = update_of(
        p1,
        **{
            k: v
            for k, v in private(session_hash(collab), ["train"]).items()
            if k in ("secrets", "volumes")
        },
    )
    client.submit_session(p2, alice.sign(p2))
    train = client.attest("collab", "train", SimulationProvider(GOOD))
    upload = client.attest("alice-private", "upload", SimulationProvider(GOOD))
    assert train.environment["ALICE"] == upload.environment["KEY"]
    assert train.volumes["alice_vol"].key == upload.volumes["data"].key
    assert train.volumes["alice_vol"].owner == "alice-private"
    # After collab changes, the pin no longer matches: alice's consent does not carry over.
    collab2 = update_of(collab, storage={"location": "s3://new"})
    client.submit_session(collab2, parties.sign(collab2))
    with pytest.raises(PolicyError, match="does not export data_key"):
        client.attest("collab", "train", SimulationProvider(GOOD))


def test_secrets_survive_an_update(client: CasClient, parties: Parties) -> None:
    s = session_of(shared_document("keep", parties))
    client.submit_session(s, parties.sign(s), parties.provide(client, s, b"first"))
    before = client.attest("keep", "run", SimulationProvider(GOOD))
    doc = s.document()
    doc["services"][1]["measurements"] = [OTHER]
    s2 = update_of(s, services=doc["services"])
    client.submit_session(s2, parties.sign(s2))
    after = client.attest("keep", "run", SimulationProvider(OTHER))
    assert after.environment == before.environment
    assert after.volumes["model"].key == before.volumes["model"].key
    s3 = update_of(s2, storage={"location": "s3://x"})
    client.submit_session(s3, parties.sign(s3), parties.provide(client, s3, b"second"))
    assert client.attest("keep", "run", SimulationProvider(OTHER)).environment["PW"] == "second"


def test_volume_versions_compare_and_set(client: CasClient, shared: SessionSummary) -> None:
    grant = client.attest("shared", "train", SimulationProvider(GOOD)).volumes["model"]
    owner, vol, token = grant.owner, grant.volume, grant.token
    start, _ = client.volume_version(owner, vol, token)
    assert client.set_volume_version(
        owner, vol, token, expected=start, version=start + 1, tag="v1"
    ) == (start + 1, "v1")
    assert client.volume_version(owner, vol, token) == (start + 1, "v1")
    with pytest.raises(PolicyError, match=f"is at version {start + 1}, not {start}"):
        client.set_volume_version(owner, vol, token, expected=start, version=start + 2, tag="x")
    with pytest.raises(PolicyError, match="rollback refused"):
        client.set_volume_version(owner, vol, token, expected=start + 1, version=start + 1, tag="x")
    with pytest.raises(PolicyError, match="no valid capability"):
        client.volume_version(owner, vol, "0" * 64)
    with pytest.raises(PolicyError, match="no valid capability"):
        client.volume_version(owner, "other", token)


def test_a_volume_token_is_bound_to_its_service_its_session_version_and_time(
    cas: InProcessCas, client: CasClient, parties: Parties
) -> None:
    s = session_of(shared_document("tokens", parties))
    client.submit_session(s, parties.sign(s), parties.provide(client, s, b"pw"))
    grant = client.attest("tokens", "train", SimulationProvider(GOOD)).volumes["model"]
    owner, vol, token = grant.owner, grant.volume, grant.token
    assert client.volume_version(owner, vol, token) == (0, None)
    # The claim is readable, not forgeable: the same MAC under another service's name fails.
    _, expires, holder, service, mac = token.split(".")
    assert (holder, service) == ("tokens", "train")
    for forged in (
        f"v2.{expires}.tokens.run.{mac}",
        f"v2.{int(expires) + 10**6}.tokens.train.{mac}",
        "0" * 64,  # the old, unbound form
    ):
        with pytest.raises(PolicyError, match="no valid capability"):
            client.volume_version(owner, vol, forged)
    # Expired: refused, even though everything else matches.
    with pytest.raises(PolicyError, match="no valid capability"):
        cas.service.volume_get(owner, vol, token, now=int(expires) + 1)
    assert cas.service.volume_get(owner, vol, token, now=int(expires) - 1) == (0, None)
    # A new version of the session ends every token released under the old one: a token that
    # leaked from an old run cannot move the volume's version forward (a denial of service).
    s2 = update_of(s, storage={"location": "s3://elsewhere"})
    client.submit_session(s2, parties.sign(s2), parties.provide(client, s2, b"pw"))
    with pytest.raises(PolicyError, match="no valid capability"):
        client.set_volume_version(owner, vol, token, expected=0, version=1, tag="x")
    fresh = client.attest("tokens", "train", SimulationProvider(GOOD)).volumes["model"].token
    assert client.set_volume_version(owner, vol, fresh, expected=0, version=1, tag="x") == (1, "x")


def test_audit_log_records_and_verifies(
    cas: InProcessCas, client: CasClient, parties: Parties, shared: SessionSummary
) -> None:
    run = client.attest("shared", "run", SimulationProvider(GOOD))
    model_key = base64.b64decode(run.environment["MODEL_KEY"])
    alice = ("alice", parties.keys["alice"])
    entries = client.audit(verify=True, party=alice, sessions=["shared"])
    events = {e.event for e in entries}
    assert {"session.create", "attest.release", "refused"} <= events
    release = [
        e.details or {}
        for e in entries
        if e.event == "attest.release" and (e.details or {})["service"] == "run"
    ]
    assert release[-1]["secrets"] == ["model_key", "pw"]
    assert release[-1]["tee"] == "simulation"
    text = str([e.model_dump() for e in entries])
    assert PROVIDED.decode() not in text
    # The database holds no secret in the clear.
    db = cas.directory / "cas.sqlite"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT sealed FROM secrets").fetchall()
    assert rows and all(PROVIDED not in r[0] for r in rows)
    for path in cas.directory.iterdir():
        data = path.read_bytes()
        assert PROVIDED not in data and model_key not in data, path
        assert model_key.hex().encode() not in data, path


_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=40)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "session": _json_values,
            "service": _json_values,
            "nonce": _json_values,
            "public_key": _json_values,
            "evidence": st.one_of(
                _json_values,
                st.fixed_dictionaries(
                    {"tee": st.sampled_from(["simulation", "sgx-dcap", "x"])},
                    optional={"quote": st.one_of(st.text(max_size=40), _json_values)},
                ),
            ),
        },
    )
)
def test_garbage_attestation_requests_get_clean_refusals(
    client: CasClient, body: dict[str, Any]
) -> None:
    with pytest.raises((UsageError, AttestationError, PolicyError)) as caught:
        client._call("POST", "/v1/attest", json=body)
    assert re.match(_GARBAGE_REFUSAL, str(caught.value)), str(caught.value)


# What a garbage attestation request is refused for: its shape first, then its nonce, key and
# session, in the order the service checks them.
_GARBAGE_REFUSAL = (
    r"attestation service refused: (malformed request: |nonce is not base64|"
    r"public_key is not base64|nonce was not issued by this service|"
    r"public_key must be a 32-byte|no service .* in a session named )"
)
