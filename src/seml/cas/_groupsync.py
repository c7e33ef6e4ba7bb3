"""Group commit: one fsync of SQLite's write-ahead log makes every commit before it durable.

With `synchronous=FULL` in WAL mode, SQLite syncs the WAL file after each commit, on the thread
that commits: the service's event loop stood still for every fsync (5-9 ms on a virtual disk),
which capped it near 100 answered writes per second whatever the cores could do.

`synchronous=NORMAL` writes the same WAL frames at each commit, in the same order, and leaves
out only that last sync (SQLite still syncs the WAL before each checkpoint, the database after
it, and the WAL header when the log is reused: the database is never corrupted). `GroupSync`
adds the missing sync back, outside the event loop: after committing, a request waits for an
fsync of the WAL file that *started* after its commit returned; one fsync on a worker thread
serves every commit made before it began, and commits made while it runs wait for the next
one. So no answer leaves before what it depends on is on the disk, exactly as with FULL, and
the disk's sync latency is paid once per group instead of once per request.

If an fsync fails, the data's state on the disk is unknown (and the kernel may have dropped
the error along with the dirty pages, so a retry proves nothing): every waiting answer is held
back, every later write and answer is refused, and the operator must restart the service
(SQLite recovers the last durable prefix of the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seml.errors import StorageError

__all__ = ["GroupSync"]


class GroupSync:
    """Counts commits (`committed()`, on the thread that commits) and makes them durable in
    groups (`await wait()`, on the event loop). `fsync` is replaceable for tests."""

    def __init__(self, database: Path, *, fsync: Callable[[int], None] = os.fsync) -> None:
        self._database = database
        self._wal = database.with_name(database.name + "-wal")
        self._fsync = fsync
        self._committed = 0
        self._durable = 0
        self._syncs = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._failed: StorageError | None = None
        self._fd = -1
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="seml-cas-fsync")
        try:
            with contextlib.suppress(FileNotFoundError):  # absent: `_sync` syncs the database
                self._open()
            # SQLite syncs the directory only at its own first sync of a new WAL, which NORMAL
            # may never do: make the log's name durable once, here.
            self._sync_directory()
        except OSError as e:
            self.close()
            raise StorageError(f"cannot sync the service database's log {self._wal}: {e}") from e

    # -- the committing thread ---------------------------------------------------------

    def check(self) -> None:
        """Raise the sync failure, if one happened (before writing anything more)."""
        if self._failed is not None:
            raise self._failed

    def committed(self) -> None:
        """A commit returned: its WAL frames are written (not yet synced)."""
        self._committed += 1

    @property
    def syncs(self) -> int:
        """fsyncs done so far (the benchmark reports commits per sync)."""
        return self._syncs

    # -- the event loop ----------------------------------------------------------------

    async def wait(self) -> None:
        """Return once every commit made before this call is on the disk; StorageError if a
        sync failed."""
        self.check()
        target = self._committed
        if target <= self._durable:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append((target, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiters:
            target = self._committed  # every commit so far: its frames are in the WAL file
            try:
                await loop.run_in_executor(self._executor, self._sync)
            except OSError as e:
                self._failed = StorageError(
                    f"the service database's log could not be synced to the disk "
                    f"({e.strerror or e}): no answer is given until the service restarts"
                )
                for _, future in self._waiters:
                    if not future.done():
                        future.set_exception(self._failed)
                self._waiters = []
                return
            self._durable = target
            waiting = []
            for t, future in self._waiters:
                if t > target:
                    waiting.append((t, future))
                elif not future.done():  # a cancelled waiter (client gone) is done already
                    future.set_result(None)
            self._waiters = waiting

    # -- the worker thread -------------------------------------------------------------

    def _open(self) -> None:
        fd = os.open(self._wal, os.O_RDONLY | os.O_CLOEXEC)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd

    def _sync_directory(self) -> None:
        fd = os.open(self._database.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    def _sync(self) -> None:
        # SQLite keeps and reuses one WAL file while a connection is open; should it ever be
        # replaced or removed (its frames checkpointed into the database), sync the database,
        # the new log and their directory too.
        try:
            same = self._fd >= 0 and self._wal.stat().st_ino == os.fstat(self._fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            fd = os.open(self._database, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self._fsync(fd)
            finally:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                self._open()
            self._sync_directory()
        if self._fd >= 0:
            self._fsync(self._fd)
        self._syncs += 1

    def close(self) -> None:
        """Sync what is pending (unless a sync failed) and release the file and thread."""
        if self._failed is None and self._committed > self._durable:
            with contextlib.suppress(OSError):
                self._sync()
                self._durable = self._committed
        self._executor.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
