"""`seml receipt show/verify` through the real entry point: offline, exit 3 naming a mismatch."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from _receipt_maker import MODEL, Made, make_receipt, update_receipt
from seml.cli import main
from seml.flow._plan import dump_session


@pytest.fixture(scope="module")
def made() -> Made:
    return make_receipt()


def _files(made: Made, tmp_path: Path) -> dict[str, Path]:
    out = {
        "receipt": tmp_path / "iris.receipt.json",
        "model": tmp_path / "model.skops",
        "session": tmp_path / "iris.yaml",
        "alice": tmp_path / "alice-sync-versions.json",
        "identity": tmp_path / "cas.identity",
    }
    out["receipt"].write_text(made.receipt.to_json())
    out["model"].write_bytes(MODEL)
    out["session"].write_text(dump_session(made.session))
    i = next(x for x in made.receipt.receipt.inputs if x.party == "alice")
    state = {f"{i.remote}#k": {"version": i.manifest_version, "digest": i.manifest_digest}}
    out["alice"].write_text(json.dumps(state))
    out["identity"].write_text(base64.b64encode(made.service_key.public).decode() + "\n")
    return out


def test_verify_offline_accepts_what_the_party_holds(
    made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _files(made, tmp_path)
    args = ["receipt", "verify", str(f["receipt"]), "--cas-identity", str(f["identity"])]
    args += ["--model", str(f["model"]), "--session", str(f["session"])]
    args += ["--manifest", f"alice={f['alice']}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "NOTE: SIMULATED" in out
    assert "verified offline: 1 model file(s), the session, 1 party input(s) checked" in out


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        ("model", "is not a file of the model this run trained"),
        ("session", "the run ran under iris"),
        ("manifest", "which is not in the records given for bob"),
        ("identity", "not the pinned service key"),
    ],
)
def test_verify_names_the_mismatch_and_exits_3(
    made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, reason: str
) -> None:
    f = _files(made, tmp_path)
    identity = str(f["identity"])
    extra: list[str] = []
    if option == "model":
        (tmp_path / "other.skops").write_bytes(b"another model")
        extra = ["--model", str(tmp_path / "other.skops")]
    elif option == "session":
        other = made.session.model_copy(update={"storage": None})
        (tmp_path / "other.yaml").write_text(dump_session(other))
        extra = ["--session", str(tmp_path / "other.yaml")]
    elif option == "manifest":
        extra = ["--manifest", f"bob={f['alice']}"]
    else:
        from seml.policy import new_key_pair

        identity = base64.b64encode(new_key_pair().public).decode()
    code = main(["receipt", "verify", str(f["receipt"]), "--cas-identity", identity, *extra])
    assert code == 3
    err = capsys.readouterr().err
    assert err.startswith("seml: error: receipt") and reason in err


def test_verify_refuses_a_tampered_receipt(
    made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _files(made, tmp_path)
    data = json.loads(f["receipt"].read_text())
    data["receipt"]["training"]["metrics"]["classification"]["accuracy"] = 1.0
    f["receipt"].write_text(json.dumps(data))
    assert main(["receipt", "verify", str(f["receipt"]), "--cas-identity", str(f["identity"])]) == 3
    assert "signature does not verify" in capsys.readouterr().err


def test_a_bad_identity_key_is_a_usage_error(
    made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _files(made, tmp_path)
    assert main(["receipt", "verify", str(f["receipt"]), "--cas-identity", "nonsense"]) == 2
    assert "--cas-identity takes the service's identity key" in capsys.readouterr().err


def test_show_says_simulated_first(
    made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _files(made, tmp_path)
    assert main(["receipt", "show", str(f["receipt"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("SIMULATED: the evidence of fetch, train, publish")
    assert any(line.startswith(f"receipt {made.receipt.id}") for line in lines)
    assert any("classification: accuracy=0.97" in line for line in lines)
    assert main(["receipt", "show", str(f["receipt"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == made.receipt.id


def test_verify_checks_an_update_against_the_predecessor_given(
    made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _files(made, tmp_path)  # f["session"] is the first version
    receipt, update = update_receipt(made, ("alice",))  # bob's signature is missing
    (tmp_path / "update.receipt.json").write_text(receipt.to_json())
    (tmp_path / "update.yaml").write_text(dump_session(update))
    args = ["receipt", "verify", str(tmp_path / "update.receipt.json")]
    args += ["--cas-identity", str(f["identity"]), "--session", str(tmp_path / "update.yaml")]
    assert main(args) == 0  # signatures verify; the rule cannot be checked without more
    assert "not checked: give the version before it (--predecessor)" in capsys.readouterr().out
    assert main([*args, "--predecessor", str(f["session"])]) == 3
    err = capsys.readouterr().err
    assert "do not meet the predecessor's update rule" in err and "bob" in err
    # --predecessor alone says what it needs.
    alone = ["receipt", "verify", str(f["receipt"]), "--cas-identity", str(f["identity"])]
    assert main([*alone, "--predecessor", str(f["session"])]) == 2
    assert "--predecessor needs --session" in capsys.readouterr().err
