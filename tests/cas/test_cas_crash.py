"""kill -9 under load: every answered request is in the state after a restart, the audit chain
verifies, and the restarted service carries on the same chain.

(A killed process keeps what it wrote in the page cache; a power cut is not simulated here.
`test_cas_groupsync.py` shows that no answer leaves before an fsync of the log that started
after its commit.)
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from _casdata import GOOD, Parties, session_of, shared_document
from seml.attest import SimulationProvider
from seml.cas import LocalCas, load_identity, verify_audit_chain
from seml.cas._receipts import capability_id
from seml.cas._state import StateStore
from seml.errors import SemlError

pytestmark = pytest.mark.integration

ATTESTERS = 8


def test_answered_requests_survive_kill_9_under_load(tmp_path: Path) -> None:
    parties = Parties("alice", "bob")
    s = session_of(shared_document("crash", parties))
    answered: list[str] = []  # capabilities of answered attestations
    created: list[str] = []  # names of answered session submissions
    stop = threading.Event()

    with LocalCas(tmp_path / "cas") as cas:
        with cas.client() as client:
            client.submit_session(s, parties.sign(s), parties.provide(client, s, b"pw"))

        def attester() -> None:
            with cas.client(timeout=10) as c:
                while not stop.is_set():
                    try:
                        config = c.attest("crash", "run", SimulationProvider(GOOD))
                    except SemlError:
                        return  # the service is gone
                    assert config.completion is not None
                    answered.append(config.completion)

        def submitter() -> None:
            with cas.client(timeout=10) as c:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    si = session_of(shared_document(f"crash-{i}", parties))
                    try:
                        c.submit_session(si, parties.sign(si), parties.provide(c, si, b"pw"))
                    except SemlError:
                        return
                    created.append(si.name)

        threads = [threading.Thread(target=attester) for _ in range(ATTESTERS)]
        threads.append(threading.Thread(target=submitter))
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while (len(answered) < 40 or len(created) < 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        cas.kill()  # SIGKILL, mid-load
        stop.set()
        for t in threads:
            t.join(30)
        assert len(answered) >= 40 and len(created) >= 3, "too little load before the kill"

        # The operator's view of the state the killed service left.
        ident = load_identity(cas.directory)
        store = StateStore(ident.database, ident.sign)
        try:
            entries = store.audit(0, 1 << 30)
            count = verify_audit_chain(entries, ident.identity_public)
            rows = dict(store.db.execute("SELECT capability, seq FROM attestations").fetchall())
            names = {r[0] for r in store.db.execute("SELECT name FROM sessions")}
        finally:
            store.close()
        by_seq = {e.seq: e for e in entries}
        for capability in answered:
            seq = rows.get(capability_id(capability))
            assert seq is not None, "an answered attestation is missing after kill -9"
            assert by_seq[seq].event == "attest.release"
        assert set(created) <= names, "an answered session submission is missing after kill -9"
        # Unanswered requests may have committed too, never the other way round.
        assert len(rows) >= len(answered)

        # The restarted service continues the same chain.
        cas.start()
        with cas.client() as client:
            client.attest("crash", "run", SimulationProvider(GOOD))
            chain = client.audit(verify=True)
        assert len(chain) > count
        assert [e.hash for e in chain[:count]] == [e.hash for e in entries]
        with sqlite3.connect(cas.directory / "cas.sqlite") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
