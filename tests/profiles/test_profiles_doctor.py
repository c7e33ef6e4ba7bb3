"""Each `seml doctor` check passes on a sound machine and fails, with its reason and fix, on a
broken one: against the real attestation service over HTTPS and a real SeaweedFS."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from seml.cas import LocalCas
from seml.cli import seml_command
from seml.policy import load_private_key, new_key_pair, write_private_key
from seml.profiles._doctor import (
    check_cas,
    check_folder,
    check_fuse,
    check_key_file,
    check_seml,
    check_storage,
    check_tee,
)
from seml.runtime import measure
from seml.store import S3Config, open_store

if TYPE_CHECKING:
    from _seaweedfs import SeaweedFS

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_service_reachable_with_the_pin(cas_server: LocalCas) -> None:
    ok = check_cas(cas_server.url, cas_server.fingerprint)
    assert ok.status == "ok", ok
    assert (
        ok.detail == f"{cas_server.url} answers; its certificate matches {cas_server.fingerprint}"
    )


def test_service_with_another_pin_fails_naming_both_certificates(cas_server: LocalCas) -> None:
    wrong = "sha256:" + "0" * 64
    bad = check_cas(cas_server.url, wrong)
    assert bad.status == "fail"
    assert f"presents certificate {cas_server.fingerprint}, not the pinned {wrong}" in bad.detail
    assert "ask the operator for the current pin" in bad.fix


def test_service_unreachable_or_unset_fails() -> None:
    url = f"https://127.0.0.1:{_free_port()}"
    bad = check_cas(url, "sha256:" + "0" * 64, timeout=3)
    assert bad.status == "fail"
    assert f"cannot reach the attestation service at {url}" in bad.detail
    assert "`seml cas serve` runs there" in bad.fix
    unset = check_cas(None, None)
    assert unset.status == "fail" and "--cas URL --cas-fingerprint PIN" in unset.fix


def _key(tmp_path: Path) -> Path:
    path = tmp_path / "alice.key"
    write_private_key(path, new_key_pair().pem())
    return path


def test_key_file_with_a_safe_mode_passes_and_an_unsafe_one_fails(tmp_path: Path) -> None:
    path = _key(tmp_path)
    assert check_key_file("signing key", path, load_private_key, create="x").status == "ok"
    path.chmod(0o640)
    bad = check_key_file("signing key", path, load_private_key, create="x")
    assert bad.status == "fail"
    assert bad.detail == f"{path} has mode 0640: others may read it"
    assert bad.fix == f"chmod 600 {path}"


def test_key_file_owned_by_another_user_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _key(tmp_path)
    owner = path.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # this process is someone else
    bad = check_key_file("signing key", path, load_private_key, create="x")
    assert bad.status == "fail"
    assert f"is owned by uid {owner}, not by this user ({owner + 1})" in bad.detail
    assert bad.fix == f"chown $(id -u) {path}"


def test_key_file_missing_or_unreadable_as_a_key_fails(tmp_path: Path) -> None:
    missing = check_key_file("k", tmp_path / "none.key", load_private_key, create="seml init")
    assert (missing.status, missing.fix) == ("fail", "seml init")
    assert missing.detail.endswith("none.key does not exist")
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    junk.chmod(0o600)
    bad = check_key_file("k", junk, load_private_key, create="seml init")
    assert bad.status == "fail" and "is not an unencrypted PEM private key" in bad.detail


def test_folder_present_passes_missing_fails(tmp_path: Path) -> None:
    assert check_folder("volumes folder", tmp_path).status == "ok"
    bad = check_folder("volumes folder", tmp_path / "gone")
    assert (bad.status, bad.fix) == ("fail", f"mkdir -p {tmp_path / 'gone'} (or seml init)")
    (tmp_path / "file").write_text("")
    assert check_folder("x", tmp_path / "file").detail.endswith("file is not a folder")


def _s3(seaweedfs: SeaweedFS, location: str) -> object:
    return open_store(location, s3=S3Config(endpoint=seaweedfs.endpoint, max_attempts=1))


def test_storage_probe_puts_reads_and_deletes_on_real_s3(
    seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = seaweedfs.create_bucket("doctor-ok")
    for k, v in seaweedfs.env.items():
        monkeypatch.setenv(k, v)
    location = f"s3://{bucket}/probe"
    ok = check_storage(location, lambda: _s3(seaweedfs, location))  # type: ignore[arg-type,return-value]
    assert ok.status == "ok", ok
    assert "wrote, read back and deleted a probe object" in ok.detail
    left = seaweedfs.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    assert left == []  # the probe is gone


def test_storage_with_a_wrong_secret_or_a_missing_variable_fails(
    seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = seaweedfs.create_bucket("doctor-bad")
    for k, v in seaweedfs.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    location = f"s3://{bucket}/probe"
    bad = check_storage(location, lambda: _s3(seaweedfs, location))  # type: ignore[arg-type,return-value]
    assert bad.status == "fail"
    assert bad.detail.startswith(f"{location}/ (endpoint {seaweedfs.endpoint}): ")
    assert "403: Forbidden" in bad.detail, bad.detail
    assert "credentials" in bad.fix
    unset = check_storage(location, lambda: _s3(seaweedfs, location), missing=["ALICE_SECRET"])  # type: ignore[arg-type,return-value]
    assert unset.status == "fail"
    assert (
        unset.detail
        == "$ALICE_SECRET not set: the profile takes the storage credentials from there"
    )


def test_storage_without_a_location_is_not_probed() -> None:
    c = check_storage(None, lambda: pytest.fail("no store to open"))
    assert c.status == "warn" and "not probed" in c.detail


def test_fuse_available_or_not() -> None:
    assert check_fuse(None).status == "ok"
    c = check_fuse("/dev/fuse does not exist")
    assert c.status == "warn"
    assert c.detail == "not available: /dev/fuse does not exist; only --mount fuse needs it"


def test_tee_hardware_interfaces_simulation_or_an_unusable_device(tmp_path: Path) -> None:
    gramine, tsm, device = tmp_path / "attestation", tmp_path / "tsm", tmp_path / "tdx_guest"
    none = check_tee(gramine_root=gramine, tsm_root=tsm, devices=[device])
    assert none.status == "warn" and "SIMULATED" in none.detail
    device.write_text("")
    bad = check_tee(gramine_root=gramine, tsm_root=tsm, devices=[device])
    assert bad.status == "fail"
    assert f"{device} present, but no attestation interface seml can use" in bad.detail
    assert "mount -t configfs" in bad.fix
    tsm.mkdir()
    ok = check_tee(gramine_root=gramine, tsm_root=tsm, devices=[device])
    assert ok.status == "ok" and "configfs-tsm" in ok.detail
    gramine.mkdir()
    (gramine / "attestation_type").write_text("dcap\n")
    ok = check_tee(gramine_root=gramine, tsm_root=tsm, devices=[device])
    assert ok.status == "ok" and "Gramine DCAP" in ok.detail


def test_tee_configfs_not_writable_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tsm = tmp_path / "tsm"
    tsm.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == tsm else real(p, m))
    bad = check_tee(gramine_root=tmp_path / "g", tsm_root=tsm, devices=[])
    assert bad.status == "fail" and "is not writable by this user" in bad.detail


def test_seml_here_and_the_services_seml(tmp_path: Path) -> None:
    this = seml_command()
    m = measure([], [])
    ok = check_seml(version="0.1.0", measurement=m, executable=this, this=this, environ={})
    assert ok.status == "ok" and m in ok.detail
    same = tmp_path / "same-seml"
    same.write_text(f"#!/bin/sh\necho {m}\n")
    same.chmod(0o755)
    ok = check_seml(version="0.1.0", measurement=m, executable=[str(same)], this=this, environ={})
    assert ok.status == "ok" and "which measures the same" in ok.detail
    other = tmp_path / "other-seml"
    other.write_text("#!/bin/sh\necho " + "0" * 64 + "\n")
    other.chmod(stat.S_IRWXU)
    bad = check_seml(version="0.1.0", measurement=m, executable=[str(other)], this=this, environ={})
    assert bad.status == "fail"
    assert f"measures {'0' * 64}, not this seml's {m}" in bad.detail
    missing = check_seml(
        version="0.1.0", measurement=m, executable=[str(tmp_path / "no")], this=this, environ={}
    )
    assert missing.status == "fail" and "is not an executable file" in missing.detail
