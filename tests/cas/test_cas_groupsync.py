"""Group commit: an answer waits for an fsync of SQLite's WAL that started after its commit.

The fsync is replaced by a gate the test opens, so the order of commits, syncs and answers is
observed, not assumed. (No power is cut here: that an fsync of the WAL makes its committed
frames durable is SQLite's documented WAL design, the same sync `synchronous=FULL` does.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import os
import threading
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from seml.cas import init_state_dir, verify_audit_chain
from seml.cas._limits import RequestLimits
from seml.cas._state import StateStore
from seml.errors import StorageError

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Gate:
    """An fsync stand-in: records which file each call synced, blocks while closed."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.synced: list[str] = []
        self.started = threading.Semaphore(0)
        self.fail: OSError | None = None
        self.reclose = False  # let one sync through, then close again (syncs run one at a time)

    def __call__(self, fd: int) -> None:
        self.started.release()
        self.open.wait(10)
        if self.reclose:
            self.reclose = False
            self.open.clear()
        if self.fail is not None:
            raise self.fail
        os.fsync(fd)
        self.synced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))

    def wal_syncs(self) -> int:
        return sum(1 for p in self.synced if p.endswith("-wal"))


@pytest.fixture
def grouped(tmp_path: Path) -> Iterator[tuple[StateStore, Gate, bytes]]:
    ident = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=NOW)
    gate = Gate()
    store = StateStore(ident.database, ident.sign, sync="group", fsync=gate)
    try:
        yield store, gate, ident.identity_public
    finally:
        gate.open.set()
        store.close()


def _commit(store: StateStore, i: int) -> None:
    with store.transaction() as db:
        store.append_audit(db, "test", {"i": i}, 1000.0 + i)


async def _started(gate: Gate) -> None:
    """Until the worker thread is inside an fsync."""
    assert await asyncio.to_thread(gate.started.acquire, True, 10)


def test_modes_set_sqlite_sync_as_documented(tmp_path: Path) -> None:
    """each: synchronous=FULL (SQLite syncs every commit); group: NORMAL plus the group's own
    sync of the WAL; none: NORMAL alone (the benchmark's comparison)."""
    ident = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=NOW)
    for mode, level, group in (("each", 2, False), ("group", 1, True), ("none", 1, False)):
        store = StateStore(ident.database, ident.sign, sync=mode)  # type: ignore[arg-type]
        try:
            assert store._db.execute("PRAGMA synchronous").fetchone()[0] == level
            assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert (store.syncs is not None) == group
        finally:
            store.close()
    with pytest.raises(ValueError, match="each, group or none"):
        StateStore(ident.database, ident.sign, sync="sometimes")  # type: ignore[arg-type]


def test_an_answer_waits_for_a_sync_of_the_wal_after_its_commit(
    grouped: tuple[StateStore, Gate, bytes],
) -> None:
    store, gate, _ = grouped
    setup = len(gate.synced)  # the log and its directory, once, when the store opens
    assert setup >= 1

    async def run() -> None:
        gate.open.clear()
        _commit(store, 1)
        waiter = asyncio.ensure_future(store.durable())
        await _started(gate)
        await asyncio.sleep(0.05)
        assert not waiter.done()  # the sync has not finished: no answer yet
        assert gate.wal_syncs() == 0
        gate.open.set()
        await asyncio.wait_for(waiter, 10)
        assert gate.wal_syncs() == 1
        # Nothing new committed: the next answer does not wait for a sync.
        await asyncio.wait_for(store.durable(), 1)
        assert gate.wal_syncs() == 1

    asyncio.run(run())


def test_commits_during_a_sync_share_the_next_one_and_not_the_running_one(
    grouped: tuple[StateStore, Gate, bytes],
) -> None:
    store, gate, public = grouped

    async def run() -> None:
        gate.open.clear()
        _commit(store, 0)
        first = asyncio.ensure_future(store.durable())
        await _started(gate)  # the sync serving commit 0 is running
        later = []
        for i in range(1, 11):
            _commit(store, i)
            later.append(asyncio.ensure_future(store.durable()))
        await asyncio.sleep(0.05)
        gate.reclose = True  # the running sync passes; the next one waits at the gate
        gate.open.set()
        await asyncio.wait_for(first, 10)
        # The running sync started before commits 1-10 returned: it does not answer them...
        assert gate.wal_syncs() == 1
        await _started(gate)  # the next sync is at the gate
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in later)
        gate.open.set()
        await asyncio.wait_for(asyncio.gather(*later), 10)
        # ... one more sync does, for all ten.
        assert gate.wal_syncs() == 2
        assert store.syncs == 2

    asyncio.run(run())
    assert verify_audit_chain(store.audit(0, 100), public) == 11


def test_a_failed_sync_holds_every_answer_and_refuses_later_writes(
    grouped: tuple[StateStore, Gate, bytes],
) -> None:
    store, gate, _ = grouped
    gate.fail = OSError(errno.EIO, "Input/output error")

    async def run() -> None:
        _commit(store, 1)
        with pytest.raises(StorageError, match=r"could not be synced.*\(Input/output error\)"):
            await asyncio.wait_for(store.durable(), 10)
        # A retry could falsely succeed (the kernel may have dropped the error and the pages):
        # nothing is answered or written until the service restarts.
        gate.fail = None
        with pytest.raises(StorageError, match="until the service restarts"):
            await store.durable()

    asyncio.run(run())
    with pytest.raises(StorageError, match="until the service restarts"):
        _commit(store, 2)
    with pytest.raises(StorageError, match="until the service restarts"):
        store.ping()
    assert [e.seq for e in store.audit(0, 10)] == [1]


def test_closing_syncs_what_is_pending(tmp_path: Path) -> None:
    ident = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=NOW)
    gate = Gate()
    store = StateStore(ident.database, ident.sign, sync="group", fsync=gate)
    _commit(store, 1)
    before = gate.wal_syncs()
    store.close()
    assert gate.wal_syncs() == before + 1


def test_without_a_log_file_the_database_and_its_folder_are_synced(tmp_path: Path) -> None:
    """Should SQLite ever remove or replace its WAL, a group sync falls back to the database
    file and the folder (and the new log, once there is one)."""
    from seml.cas._groupsync import GroupSync

    database = tmp_path / "db.sqlite"
    database.write_bytes(b"stand-in")
    gate = Gate()
    group = GroupSync(database, fsync=gate)
    try:
        group.committed()
        asyncio.run(group.wait())
        assert str(database) in gate.synced and str(tmp_path) in gate.synced
        assert gate.wal_syncs() == 0
        Path(f"{database}-wal").write_bytes(b"frames")
        group.committed()
        asyncio.run(group.wait())
        assert gate.wal_syncs() == 1
        group.committed()
        asyncio.run(group.wait())  # the same log now: only it is synced
        assert gate.wal_syncs() == 2 and gate.synced.count(str(database)) == 2
    finally:
        group.close()


# -- the HTTP side: RequestLimits holds each answer's first byte ----------------------------


def _app_answering(body: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def _request(limits: RequestLimits, method: str, path: str) -> list[MutableMapping[str, Any]]:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(limits(scope, receive, send))
    return sent


def test_answers_leave_only_after_durable_and_a_failure_replaces_them() -> None:
    calls: list[str] = []

    async def durable() -> None:
        calls.append("durable")

    def refused(request: str, error: Exception) -> None:
        raise AssertionError(f"no refusal expected: {request} {error}")

    secret = b'{"sealed": "the released secret"}'
    limits = RequestLimits(
        _app_answering(secret),
        on_refusal=refused,
        durable=durable,
        stateless=frozenset({("POST", "/v1/nonce")}),
    )
    sent = _request(limits, "POST", "/v1/attest")
    assert calls == ["durable"]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == secret
    # A nonce answer depends on nothing stored: it does not wait.
    _request(limits, "POST", "/v1/nonce")
    assert calls == ["durable"]

    async def broken() -> None:
        raise StorageError("the service database's log could not be synced to the disk")

    limits = RequestLimits(_app_answering(secret), on_refusal=refused, durable=broken)
    sent = _request(limits, "POST", "/v1/attest")
    assert sent[0]["status"] == 503
    bodies = b"".join(m.get("body", b"") for m in sent)
    assert b"could not be synced" in bodies
    assert b"released secret" not in bodies


# -- one write per answer, and the hot endpoints without the framework -----------------------


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_an_answers_head_and_body_leave_in_one_write_and_before_a_close() -> None:
    from seml.cas._limits import _Coalescing

    async def run() -> None:
        raw = _Transport()
        joined = _Coalescing(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
        joined.write(b"{}")
        assert raw.writes == []
        await asyncio.sleep(0)  # the end of this step of the loop
        assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
        joined.write(b"last")
        joined.close()  # what is pending goes first
        assert raw.writes[-1] == b"last" and raw.closed
        joined.write(b"after the close")
        await asyncio.sleep(0)
        assert raw.writes[-1] == b"last"  # dropped, not written to a closed transport
        assert joined.get_extra_info("peername") == "info:peername"

    asyncio.run(run())


def test_the_hot_endpoints_answer_alike_with_and_without_the_framework(tmp_path: Path) -> None:
    """`_HotPaths` calls the handlers the FastAPI routes call: a refusal reads the same."""
    from seml.attest import default_verifier
    from seml.cas._app import _HotPaths, create_app, routes
    from seml.cas._service import CasService

    ident = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=NOW)
    store = StateStore(ident.database, ident.sign)
    try:
        app = create_app(CasService(ident, store, default_verifier()))
        assert isinstance(app.app, _HotPaths)
        assert ("POST", "/v1/attest") in routes(app) and ("POST", "/v1/nonce") in routes(app)
        framework = app.app.app
        bad = b'{"session": "s", "service": "x"}'

        def call(asgi: Any, body: bytes) -> list[MutableMapping[str, Any]]:
            sent: list[MutableMapping[str, Any]] = []

            async def receive() -> MutableMapping[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                sent.append(message)

            scope = {
                "type": "http",
                "method": "POST",
                "path": "/v1/attest",
                "headers": [(b"content-length", str(len(body)).encode())],
                "query_string": b"",
                "root_path": "",
                "http_version": "1.1",
                "scheme": "https",
                "server": ("127.0.0.1", 1),
                "client": ("127.0.0.1", 2),
            }
            asyncio.run(asgi(scope, receive, send))
            return sent

        hot, slow = call(app, bad), call(framework, bad)
        assert hot[0]["status"] == slow[0]["status"] == 400
        assert hot[1]["body"] == slow[1]["body"]
        assert b"malformed request" in hot[1]["body"] and b"nonce" in hot[1]["body"]
    finally:
        store.close()
