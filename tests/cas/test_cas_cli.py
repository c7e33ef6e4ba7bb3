"""The CLI through its real entry point: keys, session check/sign/submit/show/history, cas."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from _casdata import as_yaml, shared_document
from seml.cas import LocalCas
from seml.cli import main
from seml.policy import load_private_key, public_key_text

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_flow(
    tmp_path: Path,
    cas_server: LocalCas,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for party in ("alice", "bob"):
        code, out, _ = run(capsys, "keys", "new", party, "--dir", str(tmp_path))
        assert code == 0 and "fingerprint: sha256:" in out
    assert stat.S_IMODE((tmp_path / "alice.key").stat().st_mode) == 0o600
    assert run(capsys, "keys", "new", "alice", "--dir", str(tmp_path))[0] == 2

    from _casdata import Parties

    parties = Parties()
    parties.keys = {p: load_private_key(tmp_path / f"{p}.key") for p in ("alice", "bob")}
    assert public_key_text(parties.keys["bob"].public) == (tmp_path / "bob.pub").read_text().strip()
    doc = shared_document("cli", parties)
    path = tmp_path / "cli.yaml"
    path.write_text(as_yaml(doc))

    code, out, _ = run(capsys, "session", "check", str(path))
    assert code == 0 and "session cli: valid" in out and "SIMULATED" in out
    digest = out.split("hash: ")[1].split()[0]

    bad = tmp_path / "bad.yaml"
    bad.write_text(as_yaml({**doc, "services": [{**doc["services"][0], "measurements": []}]}))
    code, _, err = run(capsys, "session", "check", str(bad))
    assert code == 2 and "services[0].measurements: must list at least one" in err

    code, out, _ = run(capsys, "session", "sign", str(path), "--key", str(tmp_path / "alice.key"))
    assert code == 0 and f"alice signed {digest}" in out
    sig_a = tmp_path / "cli.alice.sig"
    assert json.loads(sig_a.read_text())["hash"] == digest
    sig_b = tmp_path / "b.sig"
    run(capsys, "session", "sign", str(path), "--key", str(tmp_path / "bob.key"), "-o", str(sig_b))

    secret = tmp_path / "pw.txt"
    secret.write_text("cli-provided-value")
    monkeypatch.setenv("SEML_CAS", cas_server.url)
    monkeypatch.setenv("SEML_CAS_FINGERPRINT", cas_server.fingerprint)
    alice_key = str(tmp_path / "alice.key")
    code, _, err = run(
        capsys, "session", "submit", str(path), "-s", str(sig_a), "--secret-file", f"pw={secret}"
    )
    assert code == 2 and "--secret-file needs --provider-key" in err
    code, _, err = run(
        capsys,
        "session",
        "submit",
        str(path),
        "-s",
        str(sig_a),
        "--secret-file",
        f"pw={secret}",
        "--provider-key",
        alice_key,
    )
    assert code == 4 and "needs a valid signature from bob" in err
    # Alice seals her value herself; bob submits without ever seeing it.
    sealed = tmp_path / "pw.sealed"
    code, out, _ = run(
        capsys,
        "session",
        "seal-secret",
        str(path),
        "pw",
        "--value-file",
        str(secret),
        "--key",
        alice_key,
        "-o",
        str(sealed),
    )
    assert code == 0 and "cli-provided-value" not in sealed.read_text()
    code, out, _ = run(
        capsys,
        "session",
        "submit",
        str(path),
        "-s",
        str(sig_a),
        "-s",
        str(sig_b),
        "--sealed",
        f"pw={sealed}",
    )
    assert code == 0 and f"accepted cli version 1: {digest}" in out

    code, out, _ = run(capsys, "session", "show", "cli", "--key", str(tmp_path / "alice.key"))
    assert code == 0 and f"# cli version 1 {digest} signed by alice, bob" in out
    assert "cli-provided-value" not in out
    alice = ["--key", str(tmp_path / "alice.key")]
    code, out, _ = run(capsys, "session", "history", "cli", "--hash", digest, "--json", *alice)
    assert code == 0 and json.loads(out)[0]["hash"] == digest
    code, _, err = run(capsys, "session", "show", "cli")
    assert code == 2 and "needs --key: the private key of one of its parties" in err
    code, _, err = run(capsys, "session", "show", "cli", "--hash", digest)
    assert code == 2 and "needs --key" in err

    code, out, _ = run(capsys, "cas", "info", str(cas_server.directory))
    assert code == 0 and f"fingerprint: {cas_server.fingerprint}" in out
    code, out, _ = run(capsys, "cas", "info", "--json")
    assert code == 0 and json.loads(out)["fingerprint"] == cas_server.fingerprint
    code, out, err = run(capsys, "cas", "audit", "--verify", "--session", "cli", *alice)
    assert code == 0 and "session.create" in out and "intact" in err
    assert "cli-provided-value" not in out
    # Without a party's key: the chain verifies, no content is shown.
    code, out, err = run(capsys, "cas", "audit", "--verify")
    assert code == 0 and out == "" and "intact" in err and "are not shown" in err
    code, _, err = run(capsys, "cas", "audit", "--session", "cli")
    assert code == 2 and "--session and --key go together" in err

    monkeypatch.setenv("SEML_CAS_FINGERPRINT", "sha256:" + "0" * 64)
    code, _, err = run(capsys, "session", "history", "cli", *alice)
    assert code == 7 and "not the pinned" in err
    monkeypatch.delenv("SEML_CAS")
    code, _, err = run(capsys, "cas", "audit")
    assert code == 2 and "--cas URL" in err
