"""Crashes, restarts and an operator editing the database behind the service's back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from _casdata import GOOD, Parties, session_of, shared_document, update_of
from seml.attest import SimulationProvider
from seml.cas import LocalCas
from seml.cli import main
from seml.errors import AttestationError, IntegrityError
from seml.policy import write_private_key

pytestmark = pytest.mark.integration

MARKER = b"provided-3c1d-never-logged"


def test_kill_restart_tamper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parties = Parties("alice", "bob")
    alice = ("alice", parties.keys["alice"])
    s = session_of(shared_document("durable", parties))
    with LocalCas(tmp_path / "cas") as cas:
        with cas.client() as client:
            v1 = client.submit_session(s, parties.sign(s), parties.provide(client, s, MARKER))
            s2 = update_of(s, storage={"location": "s3://v2"})
            v2 = client.submit_session(s2, parties.sign(s2))
            before = client.attest("durable", "run", SimulationProvider(GOOD))
            stale_nonce = client.nonce()
        # kill -9 right after the accepted update: nothing may be lost.
        cas.kill()
        cas.start()
        with cas.client() as client:
            history = client.history("durable", hash_=v2.hash, party=alice)
            assert [h.hash for h in history] == [v1.hash, v2.hash]
            after = client.attest("durable", "run", SimulationProvider(GOOD))
            assert after.environment == before.environment
            assert after.environment["PW"] == MARKER.decode()
            # Nonces issued before the restart are not accepted after it.
            from nacl.public import PrivateKey

            from seml.attest import report_data_for

            key = bytes(PrivateKey.generate().public_key)
            evidence = SimulationProvider(GOOD).evidence(report_data_for(stale_nonce, key))
            import base64

            with pytest.raises(AttestationError, match="before it restarted"):
                client._call(
                    "POST",
                    "/v1/attest",
                    json={
                        "session": "durable",
                        "service": "run",
                        "nonce": base64.b64encode(stale_nonce).decode(),
                        "public_key": base64.b64encode(key).decode(),
                        "evidence": evidence.to_json_dict(),
                    },
                )
            entries = client.audit(verify=True, party=alice, sessions=["durable"])
            assert [e.event for e in entries][:3] == [
                "session.create",
                "session.update",
                "attest.release",
            ]
        cli = ["cas", "audit", "--verify", "--cas", cas.url, "--cas-fingerprint", cas.fingerprint]
        key_file = tmp_path / "alice.key"
        write_private_key(key_file, parties.keys["alice"].pem())
        as_alice = [*cli, "--session", "durable", "--key", str(key_file)]
        assert main(as_alice) == 0
        capsys.readouterr()

        # An operator rewrites who got the secrets, directly in SQLite.
        with sqlite3.connect(cas.directory / "cas.sqlite") as db:
            db.execute("DROP TRIGGER audit_no_update")
            db.execute(
                "UPDATE audit SET details = replace(details, '\"run\"', '\"evil\"') "
                "WHERE event = 'attest.release'"
            )
        # Its parties see it (an outsider sees no content, so has none to check).
        with cas.client() as client, pytest.raises(IntegrityError, match="content does not match"):
            client.audit(verify=True, party=alice, sessions=["durable"])
        assert main(as_alice) == IntegrityError.exit_code
        assert "content does not match (edited)" in capsys.readouterr().err
        assert main(cli) == 0
        # Dropping an entry breaks the chain for everyone.
        with sqlite3.connect(cas.directory / "cas.sqlite") as db:
            db.execute("DROP TRIGGER audit_no_delete")
            db.execute("DELETE FROM audit WHERE seq = 2")
        assert main(cli) == IntegrityError.exit_code
        assert "expected sequence number 2" in capsys.readouterr().err
    assert main(["cas", "audit", "--verify", "--dir", str(tmp_path / "cas")]) == 3
    assert MARKER.decode() not in cas.output
