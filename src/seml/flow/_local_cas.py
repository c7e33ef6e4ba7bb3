"""A local attestation service for the demo and the benchmark: `seml cas serve` on loopback."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from seml.errors import NetworkError

__all__ = ["LocalCas"]

_READY = re.compile(r"serving (https://\S+) fingerprint (sha256:[0-9a-f]{64})")


class LocalCas:
    """Initialise (if needed) and serve a CAS state folder on a free loopback port."""

    def __init__(self, seml: Sequence[str], directory: Path, env: Mapping[str, str]) -> None:
        self._seml = list(seml)
        self.directory = directory
        self._env = dict(env)
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.fingerprint = ""
        self._drainer: threading.Thread | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"SEML_CAS": self.url, "SEML_CAS_FINGERPRINT": self.fingerprint}

    def start(self, timeout: float = 30.0) -> None:
        if not (self.directory / "master.key").exists():
            subprocess.run(
                [*self._seml, "cas", "init", str(self.directory), "--host", "127.0.0.1"],
                check=True,
                capture_output=True,
                env=self._env,
            )
        log = (self.directory / "serve.log").open("a")
        self._proc = subprocess.Popen(
            [*self._seml, "cas", "serve", str(self.directory), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**self._env, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        if self._proc.stdout is None:  # pragma: no cover - PIPE always gives a stream
            raise NetworkError("no output stream from the attestation service")
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise NetworkError(
                        f"the attestation service exited ({self._proc.returncode}); "
                        f"see {self.directory / 'serve.log'}"
                    )
                if sel.select(timeout=0.1):
                    m = _READY.search(self._proc.stdout.readline())
                    if m:
                        self.url, self.fingerprint = m[1], m[2]
                        self._drain(self._proc.stdout)
                        return
        self.stop()
        raise NetworkError(f"the attestation service did not start within {timeout:.0f} s")

    def _drain(self, stream: IO[str]) -> None:
        # Whatever the server prints later must not fill the pipe and block it.
        path = self.directory / "serve.log"

        def copy() -> None:
            with stream, path.open("a") as log:
                for line in stream:
                    log.write(line)

        self._drainer = threading.Thread(target=copy, daemon=True)
        self._drainer.start()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._drainer is not None:
            self._drainer.join(timeout=5)
            self._drainer = None
        elif proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> LocalCas:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
