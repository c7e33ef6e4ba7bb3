"""`verify_receipt`: offline, every bound field is covered by the signature, and each thing a
party holds (model file, session document, push records) is checked against the receipt."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from _receipt_maker import MEASUREMENT, MODEL, Made, make_receipt, sha, update_receipt
from seml.flow import collaboration_session
from seml.flow._plan import training_specs
from seml.policy import new_key_pair, public_key_text
from seml.receipt import (
    CheckStatus,
    LocalFile,
    ManifestSeen,
    SignedReceipt,
    parse_sync_state,
    verify_receipt,
)


@pytest.fixture(scope="module")
def made() -> Made:
    return make_receipt()


def _data(made: Made) -> Any:
    return json.loads(made.receipt.to_json())


def _seen(made: Made, party: str) -> list[ManifestSeen]:
    i = next(x for x in made.receipt.receipt.inputs if x.party == party)
    return [ManifestSeen(i.remote, i.manifest_version, i.manifest_digest)]


def _failed(result: Any) -> dict[str, str]:
    return {c.name: c.detail for c in result.checks if c.status is CheckStatus.FAIL}


def test_a_receipt_verifies_with_everything_a_party_holds(made: Made) -> None:
    result = verify_receipt(
        made.receipt.to_json().encode(),
        made.service_key.public,
        models=[LocalFile("model.skops", sha(MODEL), len(MODEL))],
        session=made.session,
        manifests={"alice": _seen(made, "alice"), "bob": _seen(made, "bob")},
    )
    assert result.ok, result.problems
    assert result.simulated is True
    assert result.notice.startswith("SIMULATED")
    names = {c.name for c in result.checks if c.status is CheckStatus.PASS}
    assert names >= {"signature", "consistency", "model model.skops", "session", "input alice"}
    # The verdict is plain data (a web page shows the same answer).
    assert json.loads(json.dumps(result.model_dump(mode="json")))["ok"] is True


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every leaf of the receipt body, as a path of keys and indexes."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _paths(v, (*prefix, k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _paths(v, (*prefix, i))]
    return [prefix]


_BODY_PATHS = _paths(json.loads(make_receipt().receipt.to_json())["receipt"])


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if value is None:
        return "x"
    if isinstance(value, str) and value.startswith("sha256:"):
        return "sha256:" + ("1" if value[-1] != "1" else "2") * 64
    if isinstance(value, str) and len(value) == 64:
        return ("1" if value[-1] != "1" else "2") * 64
    return value + "x"


@pytest.mark.parametrize("path", _BODY_PATHS, ids=lambda p: ".".join(map(str, p)))
def test_tampering_with_any_bound_field_is_refused(made: Made, path: tuple[Any, ...]) -> None:
    data = _data(made)
    node = data["receipt"]
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = _changed(node[path[-1]])
    result = verify_receipt(json.dumps(data).encode(), made.service_key.public)
    assert not result.ok
    failed = _failed(result)
    # Either the schema refuses the value, or the signature no longer verifies.
    assert "does not verify" in failed.get("signature", "") or "not a seml receipt" in failed.get(
        "format", ""
    ), failed


def test_an_added_field_is_refused(made: Made) -> None:
    data = _data(made)
    data["receipt"]["extra"] = "smuggled"
    result = verify_receipt(json.dumps(data).encode(), made.service_key.public)
    assert "extra" in _failed(result)["format"]


def test_another_service_key_is_refused(made: Made) -> None:
    other = new_key_pair()
    result = verify_receipt(made.receipt.to_json().encode(), other.public)
    assert "not the pinned service key" in _failed(result)["signature"]


def test_a_receipt_resigned_by_another_key_is_refused(made: Made) -> None:
    from seml.receipt import sign_receipt

    forger = new_key_pair()
    forged = sign_receipt(made.receipt.receipt, forger.sign, forger.public)
    result = verify_receipt(forged.to_json().encode(), made.service_key.public)
    assert "not the pinned service key" in _failed(result)["signature"]


def test_a_different_model_file_is_refused(made: Made) -> None:
    other = b"another model"
    result = verify_receipt(
        made.receipt.to_json().encode(),
        made.service_key.public,
        models=[LocalFile("mine.skops", sha(other), len(other))],
    )
    assert "mine.skops" in _failed(result)["model mine.skops"]
    assert "is not a file of the model this run trained" in _failed(result)["model mine.skops"]


def test_a_receipt_from_one_run_does_not_verify_against_another_runs_model() -> None:
    first, second = make_receipt(b"model of run 1", run=1), make_receipt(b"model of run 2", run=2)
    model2 = b"model of run 2"
    assert verify_receipt(
        second.receipt.to_json().encode(),
        second.service_key.public,
        models=[LocalFile("m", sha(model2), len(model2))],
    ).ok
    result = verify_receipt(
        first.receipt.to_json().encode(),
        first.service_key.public,
        models=[LocalFile("m", sha(model2), len(model2))],
    )
    assert "is not a file of the model this run trained" in _failed(result)["model m"]


def test_a_different_session_document_is_refused(made: Made) -> None:
    other = collaboration_session(
        name="iris",
        parties={p: public_key_text(k.public) for p, k in made.parties.items()},
        measurement=MEASUREMENT,
        storage="s3://bucket/elsewhere",
        specs=training_specs(["classification"]),
    )
    result = verify_receipt(made.receipt.to_json().encode(), made.service_key.public, session=other)
    assert "the run ran under iris" in _failed(result)["session"]


def test_signatures_that_do_not_meet_the_creation_rule_are_refused() -> None:
    made = make_receipt()
    body = made.receipt.receipt
    only_alice = body.session.model_copy(update={"signatures": body.session.signatures[:1]})
    from seml.receipt import sign_receipt

    resigned = sign_receipt(
        body.model_copy(update={"session": only_alice}),
        made.service_key.sign,
        made.service_key.public,
    )
    result = verify_receipt(
        resigned.to_json().encode(), made.service_key.public, session=made.session
    )
    assert "do not meet its rule" in _failed(result)["session"]


def test_another_partys_manifest_digest_is_refused(made: Made) -> None:
    result = verify_receipt(
        made.receipt.to_json().encode(),
        made.service_key.public,
        manifests={"bob": _seen(made, "alice")},
    )
    assert "not in the records given for bob" in _failed(result)["input bob"]


def test_a_sync_state_file_gives_its_records() -> None:
    state = {"s3://b/x#k": {"version": 3, "digest": "ab" * 32}, "junk": 1}
    assert parse_sync_state(json.dumps(state).encode()) == [
        ManifestSeen("s3://b/x#k", 3, "ab" * 32)
    ]


@pytest.mark.parametrize("data", [b"", b"[]", b"{}", b'{"receipt": 1}'])
def test_malformed_input_is_a_failed_format_check(made: Made, data: bytes) -> None:
    result = verify_receipt(data, made.service_key.public)
    assert not result.ok and _failed(result)["format"]


def test_receipt_round_trips(made: Made) -> None:
    again = SignedReceipt.model_validate_json(made.receipt.to_json())
    assert again.id == made.receipt.id
    assert copy.deepcopy(again) == made.receipt


def _session_check(result: Any) -> Any:
    return next(c for c in result.checks if c.name == "session")


def test_an_update_checked_against_its_predecessor_s_update_rule(made: Made) -> None:
    receipt, update = update_receipt(made, ("alice", "bob"))
    data = receipt.to_json().encode()
    without = verify_receipt(data, made.service_key.public, session=update)
    assert without.ok
    assert "not checked: give the version before it" in _session_check(without).detail
    checked = verify_receipt(
        data, made.service_key.public, session=update, predecessor=made.session
    )
    assert checked.ok, checked.problems
    assert "the predecessor's update rule is met" in _session_check(checked).detail


def test_an_update_whose_signatures_miss_the_predecessor_s_update_rule_is_refused(
    made: Made,
) -> None:
    """Only alice signed the update; the collaboration session's update rule wants every party.
    Without the predecessor a verifier can only see that alice's signature verifies."""
    receipt, update = update_receipt(made, ("alice",))
    data = receipt.to_json().encode()
    assert verify_receipt(data, made.service_key.public, session=update).ok
    result = verify_receipt(data, made.service_key.public, session=update, predecessor=made.session)
    assert not result.ok
    detail = _failed(result)["session"]
    assert "do not meet the predecessor's update rule" in detail and "bob" in detail


def test_a_wrong_predecessor_is_refused(made: Made) -> None:
    receipt, update = update_receipt(made, ("alice", "bob"))
    other = make_receipt().session  # same shape, other keys: another hash
    result = verify_receipt(
        receipt.to_json().encode(), made.service_key.public, session=update, predecessor=other
    )
    assert "the predecessor file is iris" in _failed(result)["session"]
    first = verify_receipt(
        made.receipt.to_json().encode(),
        made.service_key.public,
        session=made.session,
        predecessor=other,
    )
    assert "is a first version" in _failed(first)["session"]
