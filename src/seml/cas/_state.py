"""The service's persistent state: one SQLite database (WAL) in the state directory.

Sessions, their sealed secrets and the audit log are append-only (triggers refuse UPDATE and
DELETE, so a bug cannot rewrite history; an operator with the file can, and the audit chain
shows it). Every write that answers a request commits before the answer is sent, and the
commit is on the disk before the answer leaves: an answered request survives a power loss, not
only a killed process. How a commit reaches the disk is the store's `sync` mode:

- ``each`` (the default; the command-line tools): `synchronous=FULL`, SQLite syncs the WAL at
  every commit, on the committing thread.
- ``group`` (the server): `synchronous=NORMAL` plus `GroupSync`: the commit returns once its
  frames are written, and the server holds each answer until one fsync of the WAL, shared by
  every commit made before it started, has finished (`await durable()`). Same guarantee, one
  sync per group of requests, and the event loop never waits for the disk.
- ``none``: NORMAL alone (a power loss may drop the last commits); for the benchmark's
  comparison only.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from seml.cas._audit import (
    GENESIS,
    AuditEntry,
    body_hash,
    entry_hash,
    new_salt,
    signing_message,
)
from seml.cas._groupsync import GroupSync
from seml.cas._results import SessionSummary, SessionVersion
from seml.errors import IntegrityError, PolicyError, StorageError
from seml.policy import (
    Placeholder,
    Session,
    SessionSignature,
    session_from_document,
    session_hash,
)

__all__ = ["SessionRecord", "StateStore", "SyncMode"]

SyncMode = Literal["each", "group", "none"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL,
    predecessor TEXT, document TEXT NOT NULL, signatures TEXT NOT NULL, accepted REAL NOT NULL,
    UNIQUE (name, version));
CREATE TABLE IF NOT EXISTS secrets (
    session_hash TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, sealed BLOB NOT NULL,
    PRIMARY KEY (session_hash, name));
CREATE TABLE IF NOT EXISTS volumes (
    owner TEXT NOT NULL, volume TEXT NOT NULL, version INTEGER NOT NULL, tag TEXT NOT NULL,
    updated REAL NOT NULL, PRIMARY KEY (owner, volume));
CREATE TABLE IF NOT EXISTS proposals (
    subject_kind TEXT NOT NULL, subject TEXT NOT NULL, name TEXT NOT NULL, predecessor TEXT,
    document TEXT NOT NULL, proposer TEXT NOT NULL, proposer_key TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (subject_kind, subject));
CREATE INDEX IF NOT EXISTS proposals_by_name ON proposals (subject_kind, name);
CREATE TABLE IF NOT EXISTS approvals (
    subject_kind TEXT NOT NULL, subject TEXT NOT NULL, party TEXT NOT NULL, key TEXT NOT NULL,
    decision TEXT NOT NULL, signature TEXT NOT NULL, time REAL NOT NULL,
    UNIQUE (subject_kind, subject, party, key, decision));
CREATE TABLE IF NOT EXISTS proposal_secrets (
    subject_kind TEXT NOT NULL, subject TEXT NOT NULL, name TEXT NOT NULL, sealed BLOB NOT NULL,
    time REAL NOT NULL, PRIMARY KEY (subject_kind, subject, name));
CREATE TABLE IF NOT EXISTS attestations (
    capability TEXT PRIMARY KEY, session TEXT NOT NULL, hash TEXT NOT NULL, service TEXT NOT NULL,
    verdict TEXT NOT NULL, seq INTEGER NOT NULL, time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS completions (
    capability TEXT PRIMARY KEY, session TEXT NOT NULL, hash TEXT NOT NULL, service TEXT NOT NULL,
    report TEXT NOT NULL, seq INTEGER NOT NULL, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS completions_by_hash ON completions (hash, seq);
CREATE TABLE IF NOT EXISTS receipts (
    id TEXT PRIMARY KEY, session TEXT NOT NULL, hash TEXT NOT NULL, model TEXT NOT NULL,
    document TEXT NOT NULL, seq INTEGER NOT NULL, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS receipts_by_session ON receipts (session, seq);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, time REAL NOT NULL, event TEXT NOT NULL, details TEXT NOT NULL,
    salt TEXT NOT NULL, body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL,
    signature TEXT NOT NULL, sessions TEXT NOT NULL);
"""
# `sessions` (JSON list) names the sessions an entry concerns: their parties may read it.
_AUDIT_COLUMNS = {"salt", "body", "sessions"}
# Proposals, their decisions and attached secrets are a ledger too: a proposal's state
# (withdrawn, defeated, accepted, superseded) is computed from these facts, never stored over.
# Attestations (the capability each got), completion reports and receipts too
# (`seml.cas._receipts`).
_APPEND_ONLY = (
    "sessions",
    "secrets",
    "audit",
    "proposals",
    "approvals",
    "proposal_secrets",
    "attestations",
    "completions",
    "receipts",
)


@dataclass(frozen=True)
class SessionRecord:
    """One version of a session as the service holds it. `hash` is its session's hash (computed
    at submission, checked when read back), so whatever is derived from the session alone can
    be kept with the record: the store keeps each session's latest record, and a new version is
    a new record."""

    session: Session
    hash: str
    version: int
    signatures: tuple[SessionSignature, ...]
    accepted: float
    _uses: dict[str, tuple[tuple[str, Placeholder], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def placeholders(self, service: str) -> tuple[tuple[str, Placeholder], ...]:
        """(where, placeholder) in `service` of this version (none if it has no such service),
        parsed once per record: every attestation needs them."""
        found = self._uses.get(service)
        if found is None:
            svc = self.session.service(service)
            found = tuple(svc.placeholders()) if svc is not None else ()
            self._uses[service] = found
        return found

    def summary(self) -> SessionSummary:
        return SessionSummary(
            name=self.session.name,
            hash=self.hash,
            version=self.version,
            predecessor=self.session.predecessor,
            accepted=self.accepted,
            signers=sorted({s.party for s in self.signatures}),
        )

    def answer(self) -> SessionVersion:
        return SessionVersion(
            **self.summary().model_dump(),
            document=self.session,
            signatures=list(self.signatures),
        )


class StateStore:
    """A single connection, used from one thread (the server's event loop)."""

    def __init__(
        self,
        path: Path,
        sign: Callable[[bytes], bytes],
        *,
        sync: SyncMode = "each",
        fsync: Callable[[int], None] | None = None,
    ) -> None:
        """`sync`: how commits reach the disk (see the module). `fsync` replaces `os.fsync`
        for the group's syncs (tests)."""
        self._sign = sign
        if sync not in ("each", "group", "none"):
            raise ValueError(f"sync must be each, group or none, not {sync!r}")
        self._group: GroupSync | None = None
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + FULL: the WAL is synced at every commit. WAL + NORMAL: only at checkpoints,
            # so "group" syncs it itself before any answer (`GroupSync`), and "none" does not
            # (a power loss can drop the last commits). benchmarks/cas_bench.py measures all 3.
            self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'each' else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(audit)")}
            for table in _APPEND_ONLY:
                for op in ("UPDATE", "DELETE"):
                    self._db.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} "
                        f"ON {table} BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                    )
            row = self._db.execute(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the service database {path}: {e}") from e
        if not _AUDIT_COLUMNS.issubset(columns):
            self._db.close()
            raise StorageError(
                f"the service database {path} keeps its audit log in an older format (v1, "
                "readable by anyone); this seml writes v2: start the service on a new state "
                "folder (keep the old one to read its log with an older seml)"
            )
        self._audit_head: tuple[int, str] = (row[0], row[1]) if row else (0, GENESIS)
        self._latest: dict[str, SessionRecord] = {}
        self._sealed: dict[str, dict[str, tuple[str, bytes]]] = {}
        if sync == "group":
            try:
                self._group = GroupSync(path, **({"fsync": fsync} if fsync else {}))
            except StorageError:
                self._db.close()
                raise

    def close(self) -> None:
        if self._group is not None:
            self._group.close()
        self._db.close()

    async def durable(self) -> None:
        """Return once every commit made so far is on the disk (at once unless `group`);
        StorageError if the disk refused a sync. The server awaits it before each answer."""
        if self._group is not None:
            await self._group.wait()

    @property
    def syncs(self) -> int | None:
        """Group syncs done so far (None unless `group`)."""
        return None if self._group is None else self._group.syncs

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for reads by the other tables' owners (`seml.cas._ledger`); writes go
        through `transaction()`."""
        return self._db

    def ping(self) -> None:
        """Raise StorageError unless the database answers a query and its log syncs (health
        probes)."""
        if self._group is not None:
            self._group.check()
        try:
            self._db.execute("SELECT 1 FROM audit LIMIT 1").fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"service database: {e}") from e

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed when the block ends (the caller answers only after
        `durable()`)."""
        head = self._audit_head
        if self._group is not None:
            self._group.check()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self._audit_head = head
                raise
            self._db.execute("COMMIT")
            if self._group is not None:
                self._group.committed()
        except sqlite3.Error as e:
            self._audit_head = head
            raise StorageError(f"service database: {e}") from e

    # -- sessions -------------------------------------------------------------------------

    def _record(self, row: tuple[Any, ...]) -> SessionRecord:
        h, version, document, signatures, accepted = row
        session = session_from_document(json.loads(document), source=f"stored session {h}")
        if session_hash(session) != h:
            raise IntegrityError(f"stored session {h} does not match its hash (tampered store)")
        return SessionRecord(
            session=session,
            hash=h,
            version=version,
            signatures=tuple(SessionSignature.model_validate(s) for s in json.loads(signatures)),
            accepted=accepted,
        )

    _COLUMNS = "hash, version, document, signatures, accepted"

    def latest(self, name: str) -> SessionRecord | None:
        cached = self._latest.get(name)
        if cached is not None:
            return cached
        row = self._db.execute(
            f"SELECT {self._COLUMNS} FROM sessions WHERE name = ? ORDER BY version DESC LIMIT 1",  # noqa: S608
            (name,),
        ).fetchone()
        if row is None:
            return None
        record = self._record(row)
        self._latest[name] = record
        return record

    def by_hash(self, hash_: str) -> SessionRecord | None:
        row = self._db.execute(
            f"SELECT {self._COLUMNS} FROM sessions WHERE hash = ?",  # noqa: S608
            (hash_,),
        ).fetchone()
        return None if row is None else self._record(row)

    def history(self, name: str) -> list[SessionRecord]:
        rows = self._db.execute(
            f"SELECT {self._COLUMNS} FROM sessions WHERE name = ? ORDER BY version",  # noqa: S608
            (name,),
        ).fetchall()
        return [self._record(r) for r in rows]

    def add_session(
        self,
        db: sqlite3.Connection,
        record: SessionRecord,
        sealed: dict[str, tuple[str, bytes]],
    ) -> None:
        """Insert inside `transaction()`; the cache is updated by `committed()`."""
        try:
            db.execute(
                "INSERT INTO sessions (hash, name, version, predecessor, document, signatures, "
                "accepted) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.hash,
                    record.session.name,
                    record.version,
                    record.session.predecessor,
                    json.dumps(record.session.document(), sort_keys=True),
                    json.dumps([s.model_dump() for s in record.signatures]),
                    record.accepted,
                ),
            )
        except sqlite3.IntegrityError as e:
            raise PolicyError(
                f"session {record.session.name} version {record.version} or hash {record.hash} "
                "already exists"
            ) from e
        db.executemany(
            "INSERT INTO secrets (session_hash, name, kind, sealed) VALUES (?, ?, ?, ?)",
            [(record.hash, n, kind, blob) for n, (kind, blob) in sealed.items()],
        )

    def committed(self, record: SessionRecord) -> None:
        self._latest[record.session.name] = record

    def sealed_secrets(self, hash_: str) -> dict[str, tuple[str, bytes]]:
        """The sealed secrets of one version (immutable once committed, so cached)."""
        cached = self._sealed.get(hash_)
        if cached is not None:
            return cached
        rows = self._db.execute(
            "SELECT name, kind, sealed FROM secrets WHERE session_hash = ?", (hash_,)
        ).fetchall()
        found = {n: (k, s) for n, k, s in rows}
        if found:
            self._sealed[hash_] = found
        return found

    # -- volumes --------------------------------------------------------------------------

    def volume_version(self, owner: str, volume: str) -> tuple[int, str | None]:
        row = self._db.execute(
            "SELECT version, tag FROM volumes WHERE owner = ? AND volume = ?", (owner, volume)
        ).fetchone()
        return (0, None) if row is None else (row[0], row[1])

    def set_volume_version(
        self, db: sqlite3.Connection, owner: str, volume: str, version: int, tag: str, now: float
    ) -> None:
        db.execute(
            "INSERT INTO volumes (owner, volume, version, tag, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (owner, volume) DO UPDATE SET version = excluded.version, "
            "tag = excluded.tag, updated = excluded.updated",
            (owner, volume, version, tag, now),
        )

    # -- audit ----------------------------------------------------------------------------

    @property
    def audit_head(self) -> tuple[int, str]:
        """(sequence number, hash) of the last entry appended (inside a transaction: the one
        just appended)."""
        return self._audit_head

    def append_audit(
        self,
        db: sqlite3.Connection,
        event: str,
        details: dict[str, Any],
        now: float,
        *,
        sessions: tuple[str, ...] | None = None,
    ) -> None:
        """Append inside `transaction()`. `sessions` are the sessions whose parties may read the
        entry (default: the one in ``details["session"]``, if any)."""
        if sessions is None:
            sessions = (str(details["session"]),) if "session" in details else ()
        seq, prev = self._audit_head
        seq += 1
        salt = new_salt()
        body = body_hash(now, event, details, salt)
        h = entry_hash(seq, prev, body)
        signature = base64.b64encode(self._sign(signing_message(h))).decode()
        db.execute(
            "INSERT INTO audit (seq, time, event, details, salt, body, prev, hash, signature, "
            "sessions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                now,
                event,
                json.dumps(details, sort_keys=True),
                salt,
                body,
                prev,
                h,
                signature,
                json.dumps(sorted(set(sessions))),
            ),
        )
        self._audit_head = (seq, h)

    def audit(
        self, after: int, limit: int, *, readable: frozenset[str] | None = None
    ) -> list[AuditEntry]:
        """Entries after `after`, at most `limit`. With `readable`, only the entries naming one
        of those sessions show their content; the others show only their place in the chain."""
        rows = self._db.execute(
            "SELECT seq, time, event, details, salt, body, prev, hash, signature, sessions "
            "FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        out = []
        for seq, time, event, details, salt, body, prev, h, signature, sessions in rows:
            entry = AuditEntry(seq=seq, prev=prev, body=body, hash=h, signature=signature)
            if readable is None or not readable.isdisjoint(json.loads(sessions)):
                entry = entry.model_copy(
                    update={
                        "time": time,
                        "event": event,
                        "details": json.loads(details),
                        "salt": salt,
                    }
                )
            out.append(entry)
        return out
