"""The proposal lifecycle through the real entry point, against the service over real HTTPS:
propose, status, review, approve (both parties, from their own keys), rejection by a veto
party, a key that is no party's, a stale proposal, an update with --repin, and the secrets the
collaboration's service receives before and after the update."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from _casdata import GOOD
from seml.attest import SimulationProvider
from seml.cas import LocalCas
from seml.cli import main
from seml.policy import Decision, load_private_key, parse_session, session_hash, sign_decision

pytestmark = pytest.mark.integration


@pytest.fixture
def seml(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, cas_server: LocalCas
) -> Any:
    monkeypatch.setenv("SEML_CAS", cas_server.url)
    monkeypatch.setenv("SEML_CAS_FINGERPRINT", cas_server.fingerprint)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def keys(seml: Any, folder: Path, *names: str) -> dict[str, str]:
    for n in names:
        assert seml("keys", "new", n, "--dir", str(folder))[0] == 0
    return {n: (folder / f"{n}.pub").read_text().strip() for n in names}


def collaboration(name: str, public: dict[str, str]) -> dict[str, Any]:
    """fetch gets alice's and bob's data keys, imported from their private sessions."""
    return {
        "version": 1,
        "name": name,
        "predecessor": None,
        "parties": public,
        "approval": {"create": ["alice", "bob"], "update": ["alice", "bob"]},
        "security": {"tolerate": ["simulation"]},
        "secrets": [
            {
                "name": f"{p}_data",
                "import": {"session": f"{name}-{p}", "secret": "data_key"},
                "readers": ["fetch"],
            }
            for p in ("alice", "bob")
        ],
        "services": [
            {
                "name": "fetch",
                "measurements": [GOOD],
                "command": ["seml", "flow", "fetch"],
                "environment": {
                    "KEY_ALICE": "$$SEML::alice_data$$",
                    "KEY_BOB": "$$SEML::bob_data$$",
                },
            },
            {
                "name": "train",
                "measurements": [GOOD],
                "command": ["seml", "flow", "train"],
                "files": {"/specs/c.yaml": "task: classification\nparams: {n_estimators: 100}\n"},
            },
        ],
    }


def private(collab: str, party: str, public: str, pinned: str) -> dict[str, Any]:
    return {
        "version": 1,
        "name": f"{collab}-{party}",
        "parties": {party: public},
        "approval": {"create": [party], "update": [party]},
        "security": {"tolerate": ["simulation"]},
        "secrets": [
            {
                "name": "data_key",
                "kind": "ascii",
                "readers": ["upload"],
                "export": [{"session": collab, "session_hash": pinned, "services": ["fetch"]}],
            }
        ],
        "services": [
            {"name": "upload", "measurements": [GOOD], "environment": {"K": "$$SEML::data_key$$"}}
        ],
    }


def write(path: Path, document: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


def fetched_keys(cas: LocalCas, name: str) -> tuple[str, str]:
    with cas.client() as client:
        config = client.attest(name, "fetch", SimulationProvider(GOOD))
    return config.environment["KEY_ALICE"], config.environment["KEY_BOB"]


def test_lifecycle(
    tmp_path: Path, seml: Any, cas_server: LocalCas, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = keys(seml, tmp_path, "alice", "bob", "mallory")
    alice, bob, mallory = (str(tmp_path / f"{n}.key") for n in ("alice", "bob", "mallory"))
    c = write(tmp_path / "c.yaml", collaboration("c", {p: public[p] for p in ("alice", "bob")}))
    h1 = session_hash(parse_session(Path(c).read_text()))

    code, out, _ = seml("session", "propose", c, "--key", alice)
    assert code == 0 and f"proposal {h1} of c (a first version), by alice" in out
    assert "state: OPEN, missing: bob must approve" in out
    code, out, _ = seml("session", "status", "c", "--key", bob)
    assert code == 0 and "active: none" in out and "approved: alice" in out
    assert "missing: bob must approve" in out

    # A key that is no party's: it may neither read the proposal nor upload an approval.
    code, _, err = seml("session", "approve", "c", "--key", mallory)
    assert code == 4 and "is not the key of a party of session c or of a proposal for it" in err
    # mallory signs c's hash as bob, offline, and uploads the signature file.
    forged = sign_decision(h1, "c", "bob", load_private_key(Path(mallory)), Decision.APPROVE)
    sig = tmp_path / "forged.sig"
    sig.write_text(forged.as_signature().to_json())
    code, _, err = seml("session", "approve", "c", "--signature", str(sig))
    assert code == 4 and "is not bob's key in session c (it is no party's key)" in err

    code, out, _ = seml("session", "review", "c", "--key", bob)
    assert code == 0 and f"session c {h1} (open proposal by alice, missing: bob" in out
    assert "receives secret alice_data as environment KEY_ALICE" in out
    assert "imported from session c-alice (its secret data_key)" in out
    assert "simulation: simulated evidence" in out

    code, out, _ = seml("session", "approve", "c", "--key", bob)
    assert code == 0 and f"accepted c version 1: {h1}" in out
    code, out, _ = seml("session", "status", "c", "--key", alice)
    assert f"active: version 1 {h1}" in out and "signed by alice, bob" in out
    assert "imports from c-alice: that session does not exist yet" in out

    for party, key in (("alice", alice), ("bob", bob)):
        p = write(tmp_path / f"c-{party}.yaml", private("c", party, public[party], h1))
        code, out, _ = seml("session", "propose", p, "--key", key)
        assert code == 0 and f"accepted c-{party} version 1" in out
    # Bob sees where his data key goes, and what the receiving service runs.
    code, out, _ = seml("session", "review", "c-bob", "--key", bob)
    assert code == 0 and "session c-bob" in out and "(active version 1)" in out
    assert f"exported to session c, services fetch, pinned at {h1} (version 1 of c)" in out
    assert "fetch there runs: seml flow fetch" in out
    code, out, _ = seml("session", "review", "c-bob", "--key", bob, "--json")
    data = json.loads(out)
    assert data["format"] == "seml-review/1"
    assert data["secrets"][0]["exported_to"][0]["target"] == "version 1 of c"
    before = fetched_keys(cas_server, "c")

    # alice updates the training parameters; her private session follows (--repin), bob's not.
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: classification\nparams: {n_estimators: 200}\n")
    code, out, err = seml(
        "session", "update", "c", "--key", alice, "--set",
        f"services.train.files[/specs/c.yaml]=@{spec}", "-o", str(tmp_path / "c2.yaml"),
        "--propose", "--repin",
    )  # fmt: skip
    assert code == 0, err
    h2 = session_hash(parse_session((tmp_path / "c2.yaml").read_text()))
    assert f"next version of c (after version 1 {h1}): {h2}" in out
    assert "service train: file /specs/c.yaml changed" in out
    assert f"re-pin: c-bob must also export to {h2}" in out
    assert "state: OPEN, missing: bob must approve" in out
    assert f"c-alice: re-pinned to {h1}, {h2}" in out and "state: ACCEPTED as version 2" in out
    assert "c-bob: not yours to re-pin" in out
    # c-alice (rule: alice alone) is at version 2, pinning both: fetch of c version 1 still works.
    assert fetched_keys(cas_server, "c") == before

    code, out, _ = seml("session", "review", "c", "--key", bob)
    assert f"Changes from {h1}:" in out and "service train: file /specs/c.yaml changed" in out

    # A competing update of version 1, which the accepted one supersedes.
    code, out, err = seml(
        "session", "update", "c", "--key", bob, "--set", "services.fetch.command=[seml, flow, x]",
        "-o", str(tmp_path / "stale.yaml"), "--propose",
    )  # fmt: skip
    assert code == 0, err
    stale = session_hash(parse_session((tmp_path / "stale.yaml").read_text()))

    code, out, err = seml("session", "approve", h2, "--key", bob, "--repin")
    assert code == 0, err
    assert f"accepted c version 2: {h2}" in out and f"c-bob: re-pinned to {h2}" in out
    assert "c-alice: not yours to re-pin" in out
    code, out, _ = seml("session", "status", "c", "--key", alice)
    assert f"active: version 2 {h2}" in out
    assert (
        f"{stale} (update) by bob: SUPERSEDED: c was updated meanwhile: it is now version 2" in out
    )
    code, _, err = seml("session", "approve", stale, "--key", alice)
    assert code == 4 and "is superseded" in err
    # After the update, fetch of version 2 receives the same data keys.
    assert fetched_keys(cas_server, "c") == before

    # alice's private session still pins version 1 too; following c drops it.
    code, out, err = seml(
        "session", "update", "c-alice", "--key", alice, "--repin", "--propose",
        "-o", str(tmp_path / "c-alice.next.yaml"),
    )  # fmt: skip
    assert code == 0, err
    both = ", ".join(sorted([h1, h2]))
    assert f"secret data_key: export to session c re-pinned from {both} to {h2}" in out
    assert "accepted c-alice version 3" in out
    code, out, _ = seml("session", "status", "c", "--key", bob)
    assert f"imports from c-alice (version 3): it exports to {h2} (the active version)" in out

    # The service restarts: the ledger is where it was.
    cas_server.restart()
    monkeypatch.setenv("SEML_CAS", cas_server.url)
    code, out, _ = seml("session", "status", "c-bob", "--key", bob)
    assert code == 0 and "active: version 2" in out
    # A party reads its session's entries; anyone else the chain only.
    code, out, err = seml("cas", "audit", "--verify", "--session", "c-bob", "--key", bob)
    assert code == 0 and "proposal.activate" in out and "intact" in err, err
    code, out, err = seml("cas", "audit", "--verify")
    assert code == 0 and "proposal" not in out and "c-bob" not in out and "intact" in err


def test_veto_rejection_and_withdrawal(tmp_path: Path, seml: Any) -> None:
    public = keys(seml, tmp_path, "alice", "bob")
    alice, bob = str(tmp_path / "alice.key"), str(tmp_path / "bob.key")
    rule = {"require": 1, "of": ["bob"], "veto": ["alice"]}
    doc = {
        "version": 1,
        "name": "vetoed",
        "parties": public,
        "approval": {"create": rule, "update": rule},
        "services": [{"name": "svc", "measurements": [GOOD]}],
    }
    path = write(tmp_path / "v.yaml", doc)
    h = session_hash(parse_session(Path(path).read_text()))
    code, out, _ = seml("session", "check", path)
    assert code == 0 and "must approve creation: bob; alice must approve (veto)" in out
    code, out, _ = seml("session", "propose", path, "--key", bob)
    assert code == 0 and "missing: alice must approve (veto)" in out
    code, out, _ = seml("session", "reject", "vetoed", "--key", alice)
    assert code == 0 and "state: DEFEATED: alice rejected (veto)" in out
    code, _, err = seml("session", "approve", "vetoed", "--key", bob)
    assert code == 2 and f"no open proposal for vetoed (the last, {h}, is defeated" in err
    code, _, err = seml("session", "approve", h, "--key", alice)
    assert code == 4 and "is defeated: alice rejected (veto)" in err

    doc["name"] = "withdrawn"
    path = write(tmp_path / "w.yaml", doc)
    assert seml("session", "propose", path, "--key", bob)[0] == 0
    code, _, err = seml("session", "withdraw", "withdrawn", "--key", alice)
    assert code == 4 and "only its proposer bob can withdraw" in err
    code, out, _ = seml("session", "withdraw", "withdrawn", "--key", bob, "--json")
    assert code == 0 and json.loads(out)["state"] == "withdrawn"


def test_approve_the_file_you_hold_with_the_profiles_key(
    tmp_path: Path, seml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`approve FILE` approves the proposal of exactly that document; --key defaults to the
    machine's signing key (SEML_SIGNING_KEY, which the profile sets)."""
    public = keys(seml, tmp_path, "alice", "bob")
    doc = {
        "version": 1,
        "name": "held",
        "parties": public,
        "approval": {"create": ["alice", "bob"], "update": ["alice", "bob"]},
        "services": [{"name": "svc", "measurements": [GOOD]}],
    }
    proposed = write(tmp_path / "proposed.yaml", doc)
    monkeypatch.setenv("SEML_SIGNING_KEY", str(tmp_path / "alice.key"))
    code, out, _ = seml("session", "propose", proposed)
    assert code == 0 and "by alice" in out and "missing: bob must approve" in out

    # bob's own copy differs (another measurement): approving it names its hash, and refuses.
    other = dict(doc, services=[{"name": "svc", "measurements": ["cd" * 32]}])
    mine = write(tmp_path / "mine.yaml", other)
    wrong = session_hash(parse_session(Path(mine).read_text()))
    monkeypatch.setenv("SEML_SIGNING_KEY", str(tmp_path / "bob.key"))
    code, _, err = seml("session", "approve", mine)
    assert code != 0 and wrong in err, err
    code, out, _ = seml("session", "status", "held")
    assert code == 0 and "missing: bob must approve" in out  # nothing was approved

    # The same document as proposed: accepted, signed by both.
    same = write(tmp_path / "same.yaml", doc)
    code, out, _ = seml("session", "approve", same)
    assert code == 0 and "accepted held version 1" in out, out
