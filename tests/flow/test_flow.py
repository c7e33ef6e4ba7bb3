"""The whole SEML flow, and the security questions of the README's security table, as tests.

One confidential flow (two parties, Iris, file:// storage, simulated evidence) runs once per
module; the tests then look at what it left and try what a curious party or operator would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from seml.errors import AttestationError, IntegrityError, PolicyError
from seml.flow import Flow, FlowConfig, verify_flow
from seml.flow._demo import _plaintext_markers, _scan
from seml.policy import load_private_key, parse_session, session_hash, sign_session

# The module's fixture runs the whole flow (with receipts and a release) before the first
# test: on a loaded machine that alone can pass the default 300 s per test.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    config = FlowConfig(
        workdir=tmp_path_factory.mktemp("flow"), holdout=5, receipts=True, release=True
    )
    f = Flow(config, "confidential")
    f.prepare_data()
    f.start_cas()
    try:
        f.agree()
        f.run_confidential()
        yield f
    finally:
        f.close()


def _run(
    flow: Flow, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert flow.cas is not None
    return subprocess.run(
        [*flow.seml, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **flow.cas.env, **(env or {})},
        timeout=120,
        check=False,
    )


def _attempt(
    flow: Flow, session: str, service: str, machine: str
) -> subprocess.CompletedProcess[str]:
    lay = flow.layout
    key = lay.cloud_platform_key if machine == "cloud" else lay.platform_key(machine)
    volumes = lay.cloud_volumes if machine == "cloud" else lay.party_volumes(machine)
    return _run(
        flow,
        "run",
        "--session",
        session,
        "--service",
        service,
        "--volumes-dir",
        str(volumes),
        "--platform-key",
        str(key),
        *(f"--folder={name}={path}" for name, path in lay.folders(machine).items()),
    )


def test_confidential_predictions_equal_native_scikit_learn(flow: Flow) -> None:
    checks = verify_flow(flow)
    assert checks, "verify_flow checked nothing"
    failed = [c for c in checks if not c.ok]
    assert not failed, failed
    names = " ".join(c.name for c in checks)
    assert "classification" in names and "regression" in names


def test_predictions_exist_for_every_party_and_task(flow: Flow) -> None:
    for p in flow.config.parties:
        for task in flow.config.tasks:
            rows = (flow.layout.predictions(p) / f"{task}.csv").read_text().splitlines()
            assert len(rows) == flow.config.holdout + 1


def test_nothing_readable_at_rest_in_storage_or_volumes(flow: Flow) -> None:
    markers = _plaintext_markers(flow)
    assert len(markers) > 10
    for folder in (
        flow.layout.storage,
        flow.layout.cloud_volumes,
        *(flow.layout.party_volumes(p) for p in flow.config.parties),
    ):
        files, hits = _scan(folder, markers)
        assert files > 0, folder
        assert hits == [], hits
    # The scan can fail: the parties' own plaintext does contain the markers.
    _, own = _scan(flow.layout.data(flow.config.parties[0]), markers)
    assert own


def test_party_cannot_get_another_partys_data_key_or_run_its_uploader(flow: Flow) -> None:
    # alice, on her machine, asks for bob's uploader (which holds bob's data key).
    result = _attempt(flow, "iris-bob", "upload", "alice")
    assert result.returncode == AttestationError.exit_code, result.stderr
    assert "service upload of session iris-bob runs only on" in result.stderr
    # ... or for the cloud's fetch service, which holds both data keys.
    result = _attempt(flow, "iris", "fetch", "alice")
    assert result.returncode == AttestationError.exit_code, result.stderr
    assert "service fetch of session iris runs only on" in result.stderr


def test_no_party_can_change_the_session_alone(flow: Flow, tmp_path: Path) -> None:
    shared = flow.layout.sessions / "iris.yaml"
    doc = yaml.safe_load(shared.read_text())
    doc["predecessor"] = flow.session_hash
    doc["security"]["tolerate"] = ["simulation", "debug"]  # alice alone weakens the session
    changed = tmp_path / "iris-v2.yaml"
    changed.write_text(yaml.safe_dump(doc))
    session = parse_session(changed.read_text())
    alice = load_private_key(flow.layout.key("alice"))
    sig = tmp_path / "alice.sig"
    sig.write_text(sign_session(session, "alice", alice).to_json())
    result = _run(flow, "session", "submit", str(changed), "-s", str(sig))
    assert result.returncode == PolicyError.exit_code, result.stderr
    assert "needs a valid signature from bob" in result.stderr
    assert session_hash(session) != flow.session_hash


@pytest.mark.parametrize(
    ("service", "machine", "module"),
    [("run-alice", "alice", "ml/_predict.py"), ("train", "cloud", "ml/_train.py")],
)
def test_modified_trainer_or_model_runner_gets_no_key(
    flow: Flow, tmp_path: Path, service: str, machine: str, module: str
) -> None:
    import seml

    package = Path(seml.__file__).parent
    copy = tmp_path / "src" / "seml"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    changed = copy / module
    changed.write_text(changed.read_text() + "\n# one changed line\n")
    lay = flow.layout
    key = lay.cloud_platform_key if machine == "cloud" else lay.platform_key(machine)
    volumes = lay.cloud_volumes if machine == "cloud" else lay.party_volumes(machine)
    result = subprocess.run(
        [  # the copy first on the path, by a launcher: seml run refuses PYTHONPATH itself
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from seml.cli import main; sys.exit(main())",
            str(tmp_path / "src"),
            "run",
            "--session",
            "iris",
            "--service",
            service,
            "--volumes-dir",
            str(volumes),
            "--platform-key",
            str(key),
        ],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            **(flow.cas.env if flow.cas else {}),
        },
        timeout=120,
        check=False,
    )
    assert result.returncode == AttestationError.exit_code, result.stderr
    assert re.search(r"measurement [0-9a-f]+ is not allowed for service", result.stderr)


def test_unmodified_runner_still_works(flow: Flow) -> None:
    # The refusals above are not an artefact of a broken set-up: the real services still run.
    result = _attempt(flow, "iris", "run-alice", "alice")
    assert result.returncode == 0, result.stderr


def test_model_swapped_in_storage_is_refused_at_pull(flow: Flow) -> None:
    store = flow.layout.storage / "model"
    big = sorted((p for p in store.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    a, b = big[-1], big[-2]  # the two model files (classification, regression)
    saved_a, saved_b = a.read_bytes(), b.read_bytes()
    try:
        a.write_bytes(saved_b)
        b.write_bytes(saved_a)
        result = _attempt(flow, "iris", "pull-bob", "bob")
        assert result.returncode == IntegrityError.exit_code, result.stderr
        assert "refused, nothing was written" in result.stderr
        for model in ("classification/model.skops", "regression/model.skops"):
            assert f"{model}: stored object is " in result.stderr  # sizes differ: caught first
    finally:
        a.write_bytes(saved_a)
        b.write_bytes(saved_b)
    result = _attempt(flow, "iris", "pull-bob", "bob")
    assert result.returncode == 0, result.stderr


def _offline(flow: Flow, *args: str) -> subprocess.CompletedProcess[str]:
    """A command run with no attestation service configured: it must not need one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEML_CAS")}
    env["SEML_CONFIG_DIR"] = str(flow.layout.root / ".no-profile")
    return subprocess.run(
        [*flow.seml, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_each_party_keeps_a_receipt_that_verifies_offline(flow: Flow) -> None:
    import json

    lay = flow.layout
    parties = flow.config.parties
    for p in parties:
        receipt = flow.receipt_file(p)
        body = json.loads(receipt.read_text())["receipt"]
        assert body["session"]["hash"] == flow.session_hash
        assert sorted(i["party"] for i in body["inputs"]) == sorted(parties)
        assert [s["role"] for s in body["services"]] == ["fetch", "train", "publish"]
        assert body["simulated"] and body["notice"].startswith("SIMULATED")
        assert {f["path"] for f in body["model"]["files"]} >= {
            "classification/model.skops",
            "regression/model.skops",
        }
        common = [
            "receipt",
            "verify",
            str(receipt),
            "--cas-identity",
            str(lay.party(p) / "cas-identity.pub"),
            "--session",
            str(lay.sessions / f"{flow.config.session}.yaml"),
        ]
        ok = _offline(
            flow, *common, "--manifest", f"{p}={lay.party_state(p) / 'sync-versions.json'}"
        )
        assert ok.returncode == 0, ok.stderr
        assert "verified offline" in ok.stdout and "NOTE: SIMULATED" in ok.stdout
        other = next(q for q in parties if q != p)
        wrong = _offline(
            flow, *common, "--manifest", f"{p}={lay.party_state(other) / 'sync-versions.json'}"
        )
        assert wrong.returncode == IntegrityError.exit_code
        assert f"not in the records given for {p}" in wrong.stderr


def test_the_model_waited_for_its_owners(flow: Flow) -> None:
    import json

    checks = {c.name: c for c in verify_flow(flow)}
    waited = checks["the model waits for its owners"]
    assert waited.ok and "awaits approval by alice, bob" in waited.detail
    assert checks["every owner approved: model released"].ok
    assert flow.cas is not None  # the operator reads every entry from the state folder
    audit = json.loads(
        _run(flow, "cas", "audit", "--verify", "--json", "--dir", str(flow.cas.directory)).stdout
    )
    events = [e["event"] for e in audit]
    assert events.count("receipt.issue") == 1
    assert events.count("model.approve") == 2
    refused = [
        e for e in audit if e["event"] == "refused" and "awaits approval" in e["details"]["reason"]
    ]
    assert refused and refused[0]["details"]["service"] == "pull-alice"
    key = flow.layout.key("alice")
    status = _run(flow, "receipt", "status", str(flow.receipt_file("alice")), "--key", str(key))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("release: RELEASED") and "alice approved" in status.stdout


def test_a_non_owner_cannot_approve_and_a_decision_is_final(flow: Flow, tmp_path: Path) -> None:
    from seml.policy import new_key_pair, write_private_key

    stranger = tmp_path / "mallory.key"
    write_private_key(stranger, new_key_pair().pem())
    receipt = str(flow.receipt_file("bob"))
    result = _run(flow, "model", "approve", receipt, "--key", str(stranger))
    assert result.returncode == 2
    assert "is not the key of a party of session iris" in result.stderr
    result = _run(flow, "model", "reject", receipt, "--key", str(flow.layout.key("bob")))
    assert result.returncode == PolicyError.exit_code
    assert "bob already approved model" in result.stderr and "a decision is final" in result.stderr
