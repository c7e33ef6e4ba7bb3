"""The proposals ledger: proposed versions, the decisions parties signed about them, and the
provided secrets attached to them, in the service's database (append-only tables).

Generic over what is approved (`subject_kind`: `session` now; other kinds, such as model
releases, later): a subject is the hash of what is proposed. Only storage lives here; what a
proposal's state is, and who may add what, is `seml.cas._proposals`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from seml.cas._state import StateStore
from seml.errors import IntegrityError, PolicyError
from seml.policy import Session, SignedDecision, session_from_document, session_hash

__all__ = ["SESSION", "Ledger", "ProposalRecord"]

SESSION = "session"


@dataclass(frozen=True)
class ProposalRecord:
    hash: str
    session: Session
    proposer: str
    proposer_key: str
    created: float


class Ledger:
    """Reads through the store's connection; writes inside `store.transaction()`."""

    def __init__(self, store: StateStore, kind: str = SESSION) -> None:
        self._store = store
        self._kind = kind

    # -- reading ----------------------------------------------------------------------

    def _proposal(self, row: tuple[str, str, str, str, float]) -> ProposalRecord:
        h, document, proposer, key, created = row
        session = session_from_document(json.loads(document), source=f"stored proposal {h}")
        if session_hash(session) != h:
            raise IntegrityError(f"stored proposal {h} does not match its hash (tampered store)")
        return ProposalRecord(h, session, proposer, key, created)

    _COLUMNS = "subject, document, proposer, proposer_key, created"

    def proposal(self, hash_: str) -> ProposalRecord | None:
        row = self._store.db.execute(
            f"SELECT {self._COLUMNS} FROM proposals WHERE subject_kind = ? AND subject = ?",  # noqa: S608
            (self._kind, hash_),
        ).fetchone()
        return None if row is None else self._proposal(row)

    def proposals(self, name: str) -> list[ProposalRecord]:
        rows = self._store.db.execute(
            f"SELECT {self._COLUMNS} FROM proposals WHERE subject_kind = ? AND name = ? "  # noqa: S608
            "ORDER BY created, subject",
            (self._kind, name),
        ).fetchall()
        return [self._proposal(r) for r in rows]

    def decisions(self, hash_: str) -> list[tuple[SignedDecision, float]]:
        rows = self._store.db.execute(
            "SELECT signature, time FROM approvals WHERE subject_kind = ? AND subject = ? "
            "ORDER BY rowid",
            (self._kind, hash_),
        ).fetchall()
        out = []
        for signed, time in rows:
            d = SignedDecision.model_validate_json(signed)
            if d.hash != hash_:
                raise IntegrityError(f"a stored decision about {hash_} names {d.hash}")
            out.append((d, time))
        return out

    def provided(self, hash_: str) -> dict[str, bytes]:
        rows = self._store.db.execute(
            "SELECT name, sealed FROM proposal_secrets WHERE subject_kind = ? AND subject = ?",
            (self._kind, hash_),
        ).fetchall()
        return {name: bytes(sealed) for name, sealed in rows}

    # -- writing (inside a transaction) -----------------------------------------------

    def add_proposal(self, db: sqlite3.Connection, record: ProposalRecord) -> None:
        try:
            db.execute(
                "INSERT INTO proposals (subject_kind, subject, name, predecessor, document, "
                "proposer, proposer_key, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self._kind,
                    record.hash,
                    record.session.name,
                    record.session.predecessor,
                    json.dumps(record.session.document(), sort_keys=True),
                    record.proposer,
                    record.proposer_key,
                    record.created,
                ),
            )
        except sqlite3.IntegrityError as e:
            raise PolicyError(f"{record.hash} is already proposed") from e

    def add_decision(self, db: sqlite3.Connection, decision: SignedDecision, now: float) -> None:
        db.execute(
            "INSERT INTO approvals (subject_kind, subject, party, key, decision, signature, time) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                self._kind,
                decision.hash,
                decision.party,
                decision.key,
                decision.decision.value,
                decision.model_dump_json(),
                now,
            ),
        )

    def add_provided(
        self, db: sqlite3.Connection, hash_: str, name: str, sealed: bytes, now: float
    ) -> None:
        db.execute(
            "INSERT INTO proposal_secrets (subject_kind, subject, name, sealed, time) "
            "VALUES (?, ?, ?, ?, ?)",
            (self._kind, hash_, name, sealed, now),
        )
