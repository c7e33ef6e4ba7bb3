"""Pure parts of the service: nonces, sealing at rest, secret rendering, the audit chain."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509

from seml.cas import cert_fingerprint, init_state_dir, load_identity, verify_audit_chain
from seml.cas._audit import AuditEntry
from seml.cas._nonce import NonceBook
from seml.cas._refusals import MAX_REASON, RefusalBook
from seml.cas._secrets import generate_secret, open_secret, render_secret, seal_secret
from seml.cas._state import StateStore
from seml.errors import AttestationError, IntegrityError, UsageError
from seml.policy import Placeholder, SecretKind

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_nonce_single_use_expiry_and_origin() -> None:
    book = NonceBook(lifetime=10)
    nonce, expires = book.issue(1000.0)
    assert expires == 1010.0
    book.consume(nonce, 1001.0)
    with pytest.raises(AttestationError, match="already used"):
        book.consume(nonce, 1002.0)
    late, _ = book.issue(1000.0)
    with pytest.raises(AttestationError, match="expired"):
        book.consume(late, 1010.5)
    forged = bytearray(book.issue(1000.0)[0])
    forged[0] ^= 1
    with pytest.raises(AttestationError, match="not issued by this service"):
        book.consume(bytes(forged), 1001.0)
    # Another instance (a restarted service) does not recognise earlier nonces.
    with pytest.raises(AttestationError, match="restarted"):
        NonceBook().consume(book.issue(1000.0)[0], 1001.0)


def test_sealed_secret_bound_to_session_and_name() -> None:
    key = bytes(32)
    sealed = seal_secret(key, "sha256:" + "1" * 64, "dk", b"value")
    assert open_secret(key, "sha256:" + "1" * 64, "dk", sealed) == b"value"
    with pytest.raises(IntegrityError, match="sealed secret dk"):
        open_secret(key, "sha256:" + "2" * 64, "dk", sealed)
    with pytest.raises(IntegrityError, match=r"sealed secret other of session .* does not open"):
        open_secret(key, "sha256:" + "1" * 64, "other", sealed)


@pytest.mark.parametrize("kind", [SecretKind.KEY, SecretKind.BINARY, SecretKind.ASCII])
def test_random_secrets_have_their_size(kind: SecretKind) -> None:
    a = generate_secret(kind, size=40, common_name="x", now=NOW)
    b = generate_secret(kind, size=40, common_name="x", now=NOW)
    assert len(a) == 40 and a != b
    text = render_secret(kind, a, Placeholder(name="s"))
    assert text == (a.decode() if kind is SecretKind.ASCII else a.hex())
    assert render_secret(kind, a, Placeholder(name="s", encoding="base64")) == (
        base64.b64encode(a).decode()
    )


def test_key_material_renders_as_pem() -> None:
    ed = generate_secret(SecretKind.ED25519, size=None, common_name="x", now=NOW)
    assert "BEGIN PRIVATE KEY" in render_secret(SecretKind.ED25519, ed, Placeholder(name="e"))
    assert "BEGIN PUBLIC KEY" in render_secret(
        SecretKind.ED25519, ed, Placeholder(name="e", part="pub")
    )
    x = generate_secret(SecretKind.X509, size=None, common_name="svc.seml", now=NOW)
    crt = render_secret(SecretKind.X509, x, Placeholder(name="t", part="crt"))
    cert = x509.load_pem_x509_certificate(crt.encode())
    assert cert.subject.rfc4514_string() == "CN=svc.seml"
    assert "PRIVATE KEY" in render_secret(SecretKind.X509, x, Placeholder(name="t", part="key"))
    with pytest.raises(ValueError, match="not generated"):
        generate_secret(SecretKind.PROVIDED, size=None, common_name="x", now=NOW)


def test_init_refuses_existing_and_protects_keys(tmp_path: Path) -> None:
    ident = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=NOW)
    for name in ("master.key", "identity.key", "tls.key"):
        assert (tmp_path / "cas" / name).stat().st_mode & 0o077 == 0
    master = (tmp_path / "cas" / "master.key").read_bytes()
    assert master.hex() not in repr(ident) and str(master) not in repr(ident)
    cert = x509.load_pem_x509_certificate((tmp_path / "cas" / "tls.crt").read_bytes())
    from cryptography.hazmat.primitives.serialization import Encoding

    assert cert_fingerprint(cert.public_bytes(Encoding.DER)) == ident.fingerprint
    assert load_identity(tmp_path / "cas").fingerprint == ident.fingerprint
    with pytest.raises(UsageError, match="already holds"):
        init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=NOW)
    with pytest.raises(UsageError, match="not an attestation service directory"):
        load_identity(tmp_path / "nothing")


def _store(tmp_path: Path) -> tuple[StateStore, bytes]:
    ident = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=NOW)
    return StateStore(ident.database, ident.sign), ident.identity_public


def test_audit_chain_verifies_and_detects_tampering(tmp_path: Path) -> None:
    store, public = _store(tmp_path)
    for i in range(5):
        with store.transaction() as db:
            store.append_audit(db, "test", {"i": i}, 1000.0 + i)
    entries = store.audit(0, 100)
    store.close()
    assert verify_audit_chain(entries, public) == 5

    def changed(i: int, **update: object) -> list[AuditEntry]:
        out = list(entries)
        out[i] = out[i].model_copy(update=update)
        return out

    with pytest.raises(IntegrityError, match="entry 3: content does not match"):
        verify_audit_chain(changed(2, details={"i": 99}), public)
    with pytest.raises(IntegrityError, match="entry 3: bad signature"):
        verify_audit_chain(changed(2, signature=entries[1].signature), public)
    with pytest.raises(IntegrityError, match="expected sequence number 3"):
        verify_audit_chain(entries[:2] + entries[3:], public)
    with pytest.raises(IntegrityError, match="bad signature"):
        verify_audit_chain(entries, bytes(32))


def test_store_is_append_only(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    with store.transaction() as db:
        store.append_audit(db, "test", {}, 1.0)
    from seml.errors import StorageError

    with pytest.raises(StorageError, match="append-only"), store.transaction() as db:
        db.execute("UPDATE audit SET event = 'x'")
    with pytest.raises(StorageError, match="append-only"), store.transaction() as db:
        db.execute("DELETE FROM audit")
    # A failed transaction leaves the chain head where it was.
    with store.transaction() as db:
        store.append_audit(db, "after", {}, 2.0)
    assert [e.event for e in store.audit(0, 10)] == ["test", "after"]
    assert json.loads(json.dumps(store.audit(0, 10)[1].details)) == {}
    store.close()


def test_an_outsider_view_of_the_audit_log_verifies_and_shows_nothing(tmp_path: Path) -> None:
    store, public = _store(tmp_path)
    with store.transaction() as db:
        store.append_audit(db, "session.create", {"session": "a", "hash": "sha256:aa"}, 1.0)
        store.append_audit(db, "session.create", {"session": "b", "hash": "sha256:bb"}, 2.0)
        store.append_audit(
            db, "attest.release", {"session": "b", "secrets": ["k"]}, 3.0, sessions=("b", "a")
        )
        store.append_audit(db, "refused", {"reason": "x"}, 4.0)
    outsider = store.audit(0, 10, readable=frozenset())
    party_a = store.audit(0, 10, readable=frozenset({"a"}))
    operator = store.audit(0, 10)
    store.close()
    assert not any(e.revealed for e in outsider)
    assert "sha256:aa" not in json.dumps([e.model_dump() for e in outsider])
    assert [e.revealed for e in party_a] == [True, False, True, False]
    assert all(e.revealed for e in operator)
    for view in (outsider, party_a, operator):
        assert verify_audit_chain(view, public) == 4
    # The same content twice has two commitments: an outsider cannot confirm a guess.
    assert len({e.body for e in operator}) == 4
    with pytest.raises(IntegrityError, match="entry 2: content shown only in part"):
        verify_audit_chain(
            [operator[0], operator[1].model_copy(update={"salt": None}), *operator[2:]], public
        )
    with pytest.raises(IntegrityError, match="entry 1: content does not match"):
        verify_audit_chain([party_a[0].model_copy(update={"time": 9.0}), *party_a[1:]], public)
    with pytest.raises(IntegrityError, match="entry 2: does not match its hash"):
        edited = outsider[1].model_copy(update={"body": outsider[0].body})
        verify_audit_chain([outsider[0], edited, *outsider[2:]], public)


def test_refusals_are_written_once_per_kind_and_counted() -> None:
    book = RefusalBook(window=60, kinds=4)
    written = []
    for i in range(10_000):
        written += book.refuse(
            1000.0 + i / 1000,
            request="GET /" + "a" * 60_000,
            kind="UsageError",
            reason="r" * 60_000,
        )
    assert [event for event, _ in written] == ["refused"]
    details = written[0][1]
    assert len(details["request"]) <= 100 and len(details["reason"]) <= MAX_REASON
    assert details["request"].endswith("...")
    # A new kind per request (a different session name each time) is bounded too.
    for i in range(1000):
        written += book.refuse(1005.0, request="attest", kind="PolicyError", reason="no",
                               session=f"s{i}")  # fmt: skip
    assert len(written) == 5  # 4 kinds tracked, the rest counted as one overflow kind
    assert written[-1][1]["request"] == "(other kinds)" and "session" not in written[-1][1]
    assert book.due(1059.0) == []  # the window is still open
    summary = book.due(1060.0)
    counts = sorted((d["request"], d["count"]) for _, d in summary)
    assert counts[0] == ("(other kinds)", 996) and counts[-1][1] == 9999
    assert all(d["since"] <= d["until"] for _, d in summary)
    # A new window starts afresh: its first refusal is written again.
    assert [e for e, _ in book.refuse(2000.0, request="x", kind="UsageError", reason="r")] == [
        "refused"
    ]
    assert book.due(2000.0, force=True) == []  # nothing repeated in it


def test_the_database_reaches_the_disk_at_every_commit(tmp_path: Path) -> None:
    """synchronous=FULL in WAL mode: an answered request survives a power loss."""
    store, _ = _store(tmp_path)
    try:
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def test_an_audit_log_of_the_old_format_is_refused_with_a_way_out(tmp_path: Path) -> None:
    ident = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=NOW)
    import sqlite3

    with sqlite3.connect(ident.database) as db:
        db.execute(
            "CREATE TABLE audit (seq INTEGER PRIMARY KEY, time REAL NOT NULL, event TEXT NOT "
            "NULL, details TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, signature "
            "TEXT NOT NULL)"
        )
    from seml.errors import StorageError

    with pytest.raises(StorageError, match=r"older format .* start the service on a new state"):
        StateStore(ident.database, ident.sign)


def test_one_lock_per_state_folder(tmp_path: Path) -> None:
    from seml.cas._serve import lock_state

    database = tmp_path / "cas.sqlite"
    refused = pytest.raises(UsageError, match=r"another `seml cas serve` \(pid \d+\) is serving")
    with lock_state(database), refused, lock_state(database):
        pass
    with lock_state(database):  # released with its holder
        pass
