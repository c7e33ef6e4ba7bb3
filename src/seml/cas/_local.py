"""`LocalCas`: an attestation service on this machine, run as a child `seml cas serve`.

The one way to run a local service, for `seml demo`, `seml bench`, the benchmarks, the examples
and the tests:

    with LocalCas(Path("cas-state")) as cas:      # init if needed, serve, wait until ready
        client = cas.client()                     # or cas.env for a child's SEML_CAS...

Everything the server prints (its ready line, warnings, a traceback if it dies) is read on a
thread for as long as it runs, so a chatty server can never block on a full pipe; it goes to a
log file and stays available as `output`. `stop()` sends SIGTERM, then SIGKILL after a grace
period; `kill()` (SIGKILL at once) and `restart()` exist for crash tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from seml._proc import die_with_parent, started_on_main_thread
from seml.cas._client import CasClient
from seml.errors import NetworkError

__all__ = ["LocalCas"]

_READY = re.compile(r"serving (https://\S+) fingerprint (sha256:[0-9a-f]{64})")


def _default_command() -> list[str]:
    from seml.cli import seml_command

    return seml_command()


class LocalCas:
    """A `seml cas serve` child process on `directory` (initialised on first start).

    `listen` is HOST:PORT; the default picks a free loopback port. `keys` and `tls` are the
    folders `seml cas serve --keys/--tls` reads key material from (mounted Secrets in a pod):
    given, nothing is initialised. `env` is the child's whole environment (default: this
    process's). The log goes to `log` (default ``directory/serve.log``), appended across
    restarts.
    """

    def __init__(
        self,
        directory: Path,
        *,
        listen: str = "127.0.0.1:0",
        keys: Path | None = None,
        tls: Path | None = None,
        env: Mapping[str, str] | None = None,
        seml: Sequence[str] | None = None,
        log: Path | None = None,
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.directory = Path(directory)
        self.listen = listen
        self.keys = keys
        self.tls = tls
        self.log = log or self.directory / "serve.log"
        self.url = ""
        self.fingerprint = ""
        self._env = dict(os.environ if env is None else env)
        self._seml = list(seml) if seml is not None else _default_command()
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._lines: list[str] = []

    # -- what a caller uses ---------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """SEML_CAS and SEML_CAS_FINGERPRINT, for a child process or a CLI call."""
        return {"SEML_CAS": self.url, "SEML_CAS_FINGERPRINT": self.fingerprint}

    def client(self, *, timeout: float = 30.0) -> CasClient:
        """A pinned HTTPS client for this service (close it, or use it as a context manager)."""
        return CasClient(self.url, self.fingerprint, timeout=timeout)

    @property
    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr, every run)."""
        with self._lock:
            return "".join(self._lines)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- life cycle -----------------------------------------------------------------------

    def init(self) -> None:
        """Create the service's keys and certificate unless `directory` already has them (or
        they come from `keys` and `tls`)."""
        from seml.cas._identity import MASTER_KEY, init_state_dir

        if self.keys is not None or self.tls is not None or (self.directory / MASTER_KEY).exists():
            return
        host = self.listen.rpartition(":")[0].strip("[]") or "127.0.0.1"
        hosts = list(dict.fromkeys([host, "127.0.0.1", "localhost", "::1"]))
        init_state_dir(self.directory, hosts=hosts, now=dt.datetime.now(dt.UTC))

    def start(self) -> None:
        """Init if needed, start serving, and return once the ready line was printed."""
        if self._proc is not None:
            raise NetworkError(f"the attestation service in {self.directory} is already running")
        self.init()
        self._ready.clear()
        self.url = self.fingerprint = ""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        where = [
            *(["--keys", str(self.keys)] if self.keys is not None else []),
            *(["--tls", str(self.tls)] if self.tls is not None else []),
        ]
        argv = [*self._seml, "cas", "serve", str(self.directory), "--listen", self.listen, *where]
        if started_on_main_thread():  # else the signal would come when this thread ends
            # Whatever ends this process, even SIGKILL, the service stops with it (SIGTERM: it
            # finishes its answers and closes its log); `seml cas serve` run by hand is not this.
            argv = die_with_parent(argv, signal.SIGTERM)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**self._env, "PYTHONUNBUFFERED": "1"},
        )
        self._proc = proc
        if proc.stdout is None:  # pragma: no cover - PIPE always gives a stream
            raise NetworkError("no output stream from the attestation service")
        self._reader = threading.Thread(
            target=self._read, args=(proc.stdout,), name="seml-cas-output", daemon=True
        )
        self._reader.start()
        if not self._ready.wait(self._ready_timeout) or not self.url:
            if self._ready.is_set():  # its output ended: it is exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=self._stop_timeout)
            exited = proc.poll() is not None
            self.stop()
            tail = "\n".join(self.output.strip().splitlines()[-8:])
            what = (
                f"exited with status {proc.returncode} before it was ready"
                if exited
                else f"was not ready within {self._ready_timeout:.0f} s"
            )
            raise NetworkError(
                f"the attestation service in {self.directory} {what}; see {self.log}"
                + (f":\n{tail}" if tail else "")
            )

    def _read(self, stream: IO[str]) -> None:
        with stream, self.log.open("a", encoding="utf-8") as log:
            for line in stream:
                with self._lock:
                    self._lines.append(line)
                log.write(line)
                log.flush()
                if not self._ready.is_set():
                    m = _READY.search(line)
                    if m:
                        self.url, self.fingerprint = m[1], m[2]
                        self._ready.set()
        self._ready.set()  # the server is gone: whoever waits for the ready line stops waiting

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within the grace period."""
        self._end(graceful=True)

    def kill(self) -> None:
        """SIGKILL at once: no shutdown code runs (crash tests)."""
        self._end(graceful=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, *, graceful: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            if graceful:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=self._stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
            else:
                proc.kill()
        proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=self._stop_timeout)
            self._reader = None

    def __enter__(self) -> LocalCas:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.url if self.running else "stopped"
        return f"LocalCas({str(self.directory)!r}, {state})"
