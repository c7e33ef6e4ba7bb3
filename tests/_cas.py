"""A real `seml cas serve` over HTTPS on a free loopback port, for tests.

    with running_cas(tmp_path / "cas") as cas:
        client = cas.client()

`running_cas` runs `seml cas init` on a fresh directory (or reuses an initialised one), starts
`seml cas serve DIR --listen 127.0.0.1:0`, waits for its ready line (URL + certificate pin) and
stops it (SIGTERM, then SIGKILL) on exit. `CasProcess.kill()` / `restart()` exist for crash tests.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from seml.cas import CasClient

__all__ = ["CasProcess", "running_cas", "seml_command"]

_READY = re.compile(r"serving (https://\S+) fingerprint (sha256:[0-9a-f]{64})")


def seml_command() -> list[str]:
    exe = Path(sys.executable).with_name("seml")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "seml"]


@dataclass
class CasProcess:
    directory: Path
    url: str = ""
    fingerprint: str = ""
    process: subprocess.Popen[str] | None = field(default=None, repr=False)
    output: str = field(default="", repr=False)  # everything the server printed, after stop()

    @property
    def env(self) -> dict[str, str]:
        """SEML_CAS / SEML_CAS_FINGERPRINT for subprocesses and CLI tests."""
        return {"SEML_CAS": self.url, "SEML_CAS_FINGERPRINT": self.fingerprint}

    def client(self) -> CasClient:
        return CasClient(self.url, self.fingerprint)

    def start(self, timeout: float = 30.0) -> None:
        if not (self.directory / "master.key").exists():
            subprocess.run(
                [*seml_command(), "cas", "init", str(self.directory)],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
        self.process = subprocess.Popen(
            [*seml_command(), "cas", "serve", str(self.directory), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    err = self.process.stderr.read() if self.process.stderr else ""
                    raise RuntimeError(f"seml cas serve exited {self.process.returncode}: {err}")
                if sel.select(timeout=0.2):
                    line = self.process.stdout.readline()
                    m = _READY.search(line)
                    if m:
                        self.url, self.fingerprint = m[1], m[2]
                        return
        self.stop()
        raise RuntimeError(f"seml cas serve did not become ready within {timeout} s")

    def stop(self) -> None:
        p, self.process = self.process, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        finally:
            self._collect(p)

    def _collect(self, p: subprocess.Popen[str]) -> None:
        for stream in (p.stdout, p.stderr):
            if stream is not None:
                self.output += stream.read()
                stream.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run (crash test)."""
        p, self.process = self.process, None
        if p is not None:
            p.kill()
            p.wait()
            self._collect(p)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def running_cas(directory: Path) -> Iterator[CasProcess]:
    cas = CasProcess(directory)
    cas.start()
    try:
        yield cas
    finally:
        cas.stop()
