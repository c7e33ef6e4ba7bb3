"""The service as an outsider meets it, over real HTTPS: every endpoint, with no credential
(and with guesses and a leaked hash), gives nothing that reads a session's document: no
document, no hash, no measurement, no party key, no storage location, no secret or service
name; the audit log shows its chain (checkable) and no content. The endpoints are enumerated
from the app itself, so an endpoint added later is probed too."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _casdata import Parties, session_of, update_of
from seml.attest import SimulationProvider
from seml.cas import LocalCas, init_state_dir, verify_audit_chain
from seml.cas._app import create_app, routes
from seml.cas._audit import AuditEntry
from seml.cas._client import _pinned_context
from seml.cas._service import CasService
from seml.cas._state import StateStore
from seml.policy import Decision, public_key_text, session_hash, sign_decision

pytestmark = pytest.mark.integration

MEASUREMENT = "5e" * 32
SESSION = "outsider-target"
VOLUME = "vol-7c1a"


def _document(parties: Parties) -> dict[str, Any]:
    names = list(parties.keys)
    return {
        "version": 1,
        "name": SESSION,
        "parties": parties.public(),
        "approval": {"create": names, "update": names},
        "security": {"tolerate": ["simulation"]},
        "secrets": [{"name": "secretname-91b4", "kind": "key", "readers": ["svcname-3f8e"]}],
        "volumes": [{"name": VOLUME}],
        "services": [
            {
                "name": "svcname-3f8e",
                "measurements": [MEASUREMENT],
                "command": ["cmdmarker-c0de"],
                "environment": {"ENVMARKER_D00D": "$$SEML::secretname-91b4$$"},
                "files": {"/filemarker-f11e.txt": "templatemarker-7e3a"},
                "volumes": {VOLUME: "/data"},
            }
        ],
        "storage": {"location": "s3://storagemarker-5703/prefix"},
    }


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCas, list[str]]]:
    """A service holding one session that has been used (attested, a volume version set,
    refusals naming it), and the strings that would read it."""
    parties = Parties("alice", "bob")
    doc = _document(parties)
    s = session_of(doc)
    with LocalCas(tmp_path_factory.mktemp("cas") / "state") as cas:
        with cas.client() as client:
            client.submit_session(s, parties.sign(s))
            config = client.attest(SESSION, "svcname-3f8e", SimulationProvider(MEASUREMENT))
            grant = config.volumes[VOLUME]
            client.set_volume_version(
                grant.owner, grant.volume, grant.token, expected=0, version=1, tag="tagmarker-1d"
            )
            with pytest.raises(Exception, match="not allowed"):
                client.attest(SESSION, "svcname-3f8e", SimulationProvider("00" * 32))
            # An open proposal for the next version: the ledger must not show it either.
            nxt = update_of(s, storage={"location": "s3://proposalmarker-9e1b/prefix"})
            alice = parties.keys["alice"]
            client.propose(
                nxt, sign_decision(session_hash(nxt), SESSION, "alice", alice, Decision.APPROVE)
            )
        markers = [
            session_hash(s),
            session_hash(s).removeprefix("sha256:"),
            session_hash(nxt).removeprefix("sha256:"),
            "proposalmarker-9e1b",
            MEASUREMENT,
            *(public_key_text(k.public) for k in parties.keys.values()),
            *(k.fingerprint for k in parties.keys.values()),
            "storagemarker-5703",
            "secretname-91b4",
            "svcname-3f8e",
            "cmdmarker-c0de",
            "ENVMARKER_D00D",
            "filemarker-f11e",
            "templatemarker-7e3a",
            "tagmarker-1d",
            grant.token,
            grant.key,
        ]
        yield cas, markers


def _endpoints(tmp_path: Path) -> list[tuple[str, str]]:
    ident = init_state_dir(tmp_path / "enum", hosts=["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    store = StateStore(ident.database, ident.sign)
    try:
        from seml.attest import default_verifier

        return routes(create_app(CasService(ident, store, default_verifier())))
    finally:
        store.close()


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m[1], "x"), path)


def _probes(
    endpoints: list[tuple[str, str]], hash_: str
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx request arguments): no credential, guessed ones, a leaked hash."""
    b64 = base64.b64encode
    guessed = {
        "X-Seml-Party": "alice",
        "X-Seml-Nonce": b64(os.urandom(40)).decode(),
        "X-Seml-Signature": b64(os.urandom(64)).decode(),
        "X-Seml-Volume-Token": "0" * 64,
    }
    bodies: list[dict[str, Any]] = [
        {},
        {"content": b""},
        {"content": b"{}"},
        {"content": b"not json"},
        {
            "json": {
                "session": SESSION,
                "service": "x",
                "nonce": "",
                "public_key": "",
                "evidence": {},
            }
        },
        {"json": {"expected": 1, "version": 2, "tag": "x"}},
        {"json": {"document": {"name": SESSION}, "signatures": []}},
    ]
    queries: list[dict[str, str]] = [{}, {"hash": hash_}, {"session": SESSION}, {"after": "0"}]
    names = [
        {"name": SESSION, "owner": SESSION, "volume": VOLUME, "subject": SESSION, "hash_": hash_},
        {"name": "nothing-here", "owner": "nothing-here", "volume": "nope", "subject": "nothing"},
    ]
    for (method, template), values, query, headers, body in itertools.product(
        endpoints, names, queries, [{}, guessed], bodies
    ):
        if method == "GET" and body:
            continue
        yield method, _fill(template, values), {"params": query, "headers": headers, **body}


def test_an_outsider_reads_nothing_of_a_session(
    tmp_path: Path, target: tuple[LocalCas, list[str]]
) -> None:
    cas, markers = target
    endpoints = _endpoints(tmp_path)
    # Every endpoint the service has (the list is the app's own, not a copy kept here).
    assert {("GET", "/v1/audit"), ("GET", "/v1/sessions/{name}"), ("POST", "/v1/attest")} <= set(
        endpoints
    )
    hash_ = markers[0]
    context = _pinned_context(cas.url, cas.fingerprint, 10.0)
    seen = 0
    with httpx.Client(base_url=cas.url, verify=context, timeout=30) as http:
        for method, path, request in _probes(endpoints, hash_):
            r = http.request(method, path, **request)
            seen += 1
            text = r.text + json.dumps(dict(r.headers))
            for marker in markers:
                assert marker not in text, (method, path, request, r.status_code, r.text[:300])
            if r.status_code == 200 and path == "/v1/audit":
                page = r.json()
                entries = [AuditEntry.model_validate(e) for e in page["entries"]]
                assert entries and not any(e.revealed for e in entries)
                # The chain itself is the outsider's to check: numbered, linked, signed.
                key = base64.b64decode(page["identity_key"])
                assert verify_audit_chain(entries, key) == len(entries)
    assert seen > 100
    # What a party sees, for contrast: the same log with its session's entries readable.
    with cas.client() as client:
        outsider = client.audit(verify=True)
    assert not any(e.revealed for e in outsider)
    assert {e.seq for e in outsider} == set(range(1, len(outsider) + 1))
