"""`seml doctor` through the real entry point: a party's machine set up with `seml init` against
the real attestation service and a real SeaweedFS passes; each thing broken fails, naming it and
the fix, and the exit status says so. Machines are set up in this process (`seml_in`); each
kind of doctor verdict (pass, fail, no profile) is also seen from a real `seml` process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _machine import seml_as, seml_in
from seml.cas import LocalCas
from seml.errors import UsageError

if TYPE_CHECKING:
    from _seaweedfs import SeaweedFS

pytestmark = pytest.mark.integration


def _party(tmp_path: Path, cas: LocalCas, seaweedfs: SeaweedFS, bucket: str) -> Path:
    cfg = tmp_path / "cfg"
    r = seml_in(cfg, "init", "--role", "party", "--name", "alice", "--root", str(tmp_path / "a"),
                "--cas", cas.url, "--cas-fingerprint", cas.fingerprint,
                "--storage", f"s3://{bucket}/doctor", "--s3-endpoint", seaweedfs.endpoint,
                "--access-key-env", "ALICE_KEY", "--secret-key-env", "ALICE_SECRET")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return cfg


def _creds(seaweedfs: SeaweedFS, secret: str | None = None) -> dict[str, str]:
    return {"ALICE_KEY": seaweedfs.access_key, "ALICE_SECRET": secret or seaweedfs.secret_key}


def _checks(out: str) -> dict[str, str]:
    """check name -> its line."""
    lines = [x for x in out.splitlines() if x[:4] in ("ok  ", "warn", "FAIL")]
    return {x[6:].split(":", 1)[0]: x for x in lines}


def test_a_sound_party_machine_passes_every_check(
    tmp_path: Path, cas_server: LocalCas, seaweedfs: SeaweedFS
) -> None:
    cfg = _party(tmp_path, cas_server, seaweedfs, seaweedfs.create_bucket("doctor-e2e"))
    r = seml_as(cfg, "doctor", env=_creds(seaweedfs))
    assert r.returncode == 0, r.stdout + r.stderr
    checks = _checks(r.stdout)
    assert r.stdout.startswith(f"profile alice (party alice) from {cfg / 'config.yaml'}")
    for name in ("seml", "attestation service", "signing key", "platform key", "volumes folder",
                 "sync state folder", "folder data/", "folder input/", "folder output/",
                 "storage"):  # fmt: skip
        assert checks[name].startswith("ok  "), checks[name]
    assert "wrote, read back and deleted a probe object" in checks["storage"]
    assert checks["TEE"].startswith("warn") and "SIMULATED" in checks["TEE"]
    assert "FUSE" in checks
    assert r.stdout.rstrip().splitlines()[-1].startswith(f"{len(checks)} checks: all passed")


def test_each_broken_part_fails_with_its_fix_and_exit_1(
    tmp_path: Path, cas_server: LocalCas, seaweedfs: SeaweedFS
) -> None:
    cfg = _party(tmp_path, cas_server, seaweedfs, seaweedfs.create_bucket("doctor-broken"))
    key = tmp_path / "a" / "keys" / "alice.key"
    key.chmod(0o644)
    (tmp_path / "a" / "output").rmdir()
    wrong_pin = {"SEML_CAS_FINGERPRINT": "sha256:" + "0" * 64}  # the environment overrides
    r = seml_in(cfg, "doctor", env={**_creds(seaweedfs, "wrong"), **wrong_pin})
    assert r.returncode == 1, r.stdout + r.stderr
    checks = _checks(r.stdout)
    assert checks["signing key"] == (
        f"FAIL  signing key: {key} has mode 0644: others may read it; fix: chmod 600 {key}"
    )
    assert checks["folder output/"].startswith("FAIL") and "mkdir -p" in checks["folder output/"]
    assert checks["attestation service"].startswith("FAIL")
    assert "not the pinned sha256:000" in checks["attestation service"]
    assert checks["storage"].startswith("FAIL") and "403" in checks["storage"]
    assert checks["platform key"].startswith("ok  ")
    assert "4 failed" in r.stdout.splitlines()[-1]
    # A variable the profile names but the environment lacks.
    r = seml_in(cfg, "doctor", "--json", env={"ALICE_KEY": "x"})
    report = json.loads(r.stdout)
    storage = next(c for c in report["checks"] if c["name"] == "storage")
    assert storage["status"] == "fail"
    assert storage["detail"].startswith("$ALICE_SECRET not set")
    assert report["ok"] is False and r.returncode == 1


def test_doctor_without_a_profile_says_how_to_make_one(tmp_path: Path) -> None:
    r = seml_as(tmp_path / "empty", "doctor")
    assert r.returncode == UsageError.exit_code
    assert "no profile to check" in r.stderr and "seml init" in r.stderr


def test_an_operator_machine_checks_its_service_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    r = seml_in(cfg, "init", "--role", "operator", "--root", str(tmp_path / "cloud"),
                "--listen", "127.0.0.1:9")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (tmp_path / "cloud" / "cas" / "master.key").chmod(0o604)
    r = seml_as(cfg, "doctor")
    assert r.returncode == 1
    checks = _checks(r.stdout)
    assert checks["service identity.key"].startswith("ok  ")
    assert (
        checks["service master.key"].startswith("FAIL")
        and "mode 0604" in checks["service master.key"]
    )
    # Nothing listens on port 9: the service check says so.
    assert checks["attestation service"].startswith("FAIL")
    assert (
        "cannot reach the attestation service at https://127.0.0.1:9"
        in checks["attestation service"]
    )
    assert "signing key" not in checks  # an operator signs no sessions
