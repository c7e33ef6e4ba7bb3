"""The attestation path's cheaper equivalents answer exactly as the plain forms did: the
configuration's JSON, the placeholders kept with a session version (a new version is read
afresh), the configuration built in one go, the audit log signed by libsodium, the configuration
sealed without key and box objects."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from _cas_inprocess import InProcessCas
from _casdata import GOOD, Parties, session_of, shared_document, update_of
from seml.attest import SimulationProvider, report_data_for
from seml.cas import CasClient, init_state_dir
from seml.cas._protocol import ServiceConfig
from seml.cas._state import SessionRecord
from seml.policy import Session


def _created(client: CasClient, name: str) -> tuple[Parties, Session]:
    """A new shared session `name` (alice and bob; pw is "pw1")."""
    parties = Parties("alice", "bob")
    s = session_of(shared_document(name, parties))
    client.submit_session(s, parties.sign(s), parties.provide(client, s, b"pw1"))
    return parties, s


def test_placeholders_are_kept_per_version_and_a_new_version_is_read_afresh(
    cas: InProcessCas, client: CasClient
) -> None:
    parties, s = _created(client, "hot")
    before = client.attest("hot", "train", SimulationProvider(GOOD))
    assert set(before.environment) == {"MODEL_KEY", "SIG", "TOKEN"}
    assert before.secrets == ["api_token", "model_key", "sig", "tls"]
    record = cas.service.store.latest("hot")
    assert record is not None
    assert record.placeholders("train") == tuple(s.services[0].placeholders())
    assert record.placeholders("train") is record.placeholders("train")  # parsed once
    assert record.placeholders("nope") == ()

    # v2: train reads another secret under another name and no longer its token.
    doc = s.document()
    doc["services"][0]["environment"] = {"MODEL_KEY": "$$SEML::model_key$$", "S": "$$SEML::sig$$"}
    s2 = update_of(s, services=doc["services"])
    client.submit_session(s2, parties.sign(s2))
    after = client.attest("hot", "train", SimulationProvider(GOOD))
    assert set(after.environment) == {"MODEL_KEY", "S"}
    assert after.secrets == ["model_key", "sig", "tls"]
    assert after.environment["MODEL_KEY"] == before.environment["MODEL_KEY"]
    latest = cas.service.store.latest("hot")
    assert latest is not None and latest is not record
    assert latest.placeholders("train") == tuple(s2.services[0].placeholders())
    # The audit entry of the release names what this version released, not the last one's.
    entries = cas.service.store.audit(0, 10000)
    releases = [e for e in entries if e.event == "attest.release" and e.details]
    assert releases[-1].details is not None
    assert releases[-1].details["secrets"] == ["model_key", "sig", "tls"]
    assert releases[-1].details["hash"] == latest.hash


def test_a_record_read_back_from_the_database_parses_its_own_placeholders(
    cas: InProcessCas, client: CasClient
) -> None:
    _, s = _created(client, "hot-read")
    (stored,) = cas.service.store.history("hot-read")
    assert isinstance(stored, SessionRecord)
    assert stored.placeholders("run") == tuple(s.services[1].placeholders())
    assert [p.name for _, p in stored.placeholders("run")] == ["model_key", "pw"]


def test_the_audit_signature_is_the_identity_key_s_ed25519_signature(tmp_path: Path) -> None:
    ident = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    pem = (tmp_path / "cas" / "identity.key").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    public = Ed25519PublicKey.from_public_bytes(ident.identity_public)
    for message in (b"", b"SEML audit v2\nsha256:" + b"0" * 64, bytes(range(256)) * 9):
        signature = ident.sign(message)
        assert signature == key.sign(message)  # the same bytes OpenSSL gives (deterministic)
        public.verify(signature, message)
        with pytest.raises(InvalidSignature):
            public.verify(signature, message + b"x")
    assert "_signer" not in repr(ident) and "_identity" not in repr(ident)


def test_the_sealed_configuration_opens_only_with_the_attested_key(client: CasClient) -> None:
    _created(client, "hot-seal")
    key = PrivateKey.generate()
    nonce = client.nonce()
    evidence = SimulationProvider(GOOD).evidence(report_data_for(nonce, bytes(key.public_key)))
    request = {
        "session": "hot-seal",
        "service": "run",
        "nonce": base64.b64encode(nonce).decode(),
        "public_key": base64.b64encode(bytes(key.public_key)).decode(),
        "evidence": evidence.to_json_dict(),
    }
    sealed = base64.b64decode(client._call("POST", "/v1/attest", json=request)["sealed"])
    config = ServiceConfig.from_json(SealedBox(key).decrypt(sealed))
    assert config.session == "hot-seal" and config.environment["PW"] == "pw1"
    with pytest.raises(CryptoError):
        SealedBox(PrivateKey.generate()).decrypt(sealed)
