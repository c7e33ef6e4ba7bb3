"""The service as a pod runs it: key material from mounted Secrets, state elsewhere, /healthz."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import ssl
import urllib.request
from pathlib import Path

import pytest

from seml.attest import default_verifier
from seml.cas import LocalCas, init_state_dir, load_identity
from seml.cas._app import create_app
from seml.cas._httpx import httpx
from seml.cas._service import CasService
from seml.cas._state import StateStore
from seml.errors import UsageError

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _secret_layout(tmp_path: Path) -> tuple[Path, Path, Path, str]:
    """(state, keys, tls, fingerprint) laid out as the StatefulSet mounts them: keys and TLS
    in separate read-only folders, group-readable by the pod's own group (kubelet's fsGroup)."""
    made = init_state_dir(tmp_path / "init", hosts=["127.0.0.1"], now=NOW)
    keys, tls, state = tmp_path / "keys", tmp_path / "tls", tmp_path / "state"
    for folder, names in ((keys, ("master.key", "identity.key")), (tls, ("tls.crt", "tls.key"))):
        folder.mkdir()
        for name in names:
            shutil.copy(tmp_path / "init" / name, folder / name)
            (folder / name).chmod(0o440)
    state.mkdir()
    return state, keys, tls, made.fingerprint


def test_keys_and_tls_from_mounted_folders(tmp_path: Path) -> None:
    state, keys, tls, fingerprint = _secret_layout(tmp_path)
    ident = load_identity(state, keys=keys, tls=tls)
    assert ident.fingerprint == fingerprint
    assert ident.tls_cert == tls / "tls.crt" and ident.database == state / "cas.sqlite"
    # The same group-readable files are refused where they are not a mounted Secret.
    with pytest.raises(UsageError, match=r"master.key is readable by others"):
        load_identity(keys, tls=tls)


def test_mounted_keys_readable_by_the_world_are_refused(tmp_path: Path) -> None:
    state, keys, tls, _ = _secret_layout(tmp_path)
    (keys / "master.key").chmod(0o444)
    with pytest.raises(UsageError, match=r"master.key is readable by others"):
        load_identity(state, keys=keys, tls=tls)
    (keys / "master.key").chmod(0o400)
    (tls / "tls.key").chmod(0o404)
    with pytest.raises(UsageError, match=r"tls.key is readable by others"):
        load_identity(state, keys=keys, tls=tls)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file a foreign group")
def test_mounted_keys_readable_by_a_foreign_group_are_refused(tmp_path: Path) -> None:
    state, keys, tls, _ = _secret_layout(tmp_path)
    foreign = max([*os.getgroups(), os.getgid()]) + 4242
    os.chown(keys / "identity.key", -1, foreign)
    with pytest.raises(UsageError, match=r"identity.key is readable by others"):
        load_identity(state, keys=keys, tls=tls)


def test_missing_mounted_file_is_named(tmp_path: Path) -> None:
    state, keys, tls, _ = _secret_layout(tmp_path)
    (tls / "tls.key").unlink()
    with pytest.raises(
        UsageError,
        match=r"tls is not an attestation service directory "
        r"\(tls.key missing",
    ):
        load_identity(state, keys=keys, tls=tls)


@pytest.mark.integration
def test_serve_from_mounted_secrets_answers_healthz(tmp_path: Path) -> None:
    """`seml cas serve` as the StatefulSet runs it; /healthz says ok and nothing else."""
    state, keys, tls, fingerprint = _secret_layout(tmp_path)
    with LocalCas(state, keys=keys, tls=tls, log=tmp_path / "serve.log") as cas:
        assert cas.fingerprint == fingerprint
        context = ssl.create_default_context(cafile=str(tls / "tls.crt"))
        context.check_hostname = False
        with urllib.request.urlopen(f"{cas.url}/healthz", context=context, timeout=10) as r:  # noqa: S310
            assert r.status == 200
            assert json.loads(r.read()) == {"status": "ok"}
        assert (state / "cas.sqlite").is_file()
        # The state folder holds the database and the lock that keeps a second service off it.
        others = sorted(p.name for p in state.iterdir() if not p.name.startswith("cas.sqlite"))
        assert others == ["serve.lock"]


def test_healthz_reports_an_unusable_database(tmp_path: Path) -> None:
    ident = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=NOW)
    store = StateStore(ident.database, ident.sign)
    app = create_app(CasService(ident, store, default_verifier()))

    async def get() -> tuple[int, object]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://cas") as client:
            r = await client.get("/healthz")
            return r.status_code, r.json()

    assert asyncio.run(get()) == (200, {"status": "ok"})
    store.close()
    assert asyncio.run(get()) == (503, {"status": "unavailable"})
