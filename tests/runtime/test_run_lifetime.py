"""A command never outlives its runtime: `seml run` killed with SIGKILL takes its command with
it, and the next seml command on the machine wipes the workspace it left (secrets, plaintext).
Also: what reaches `seml run` from the attestation service is checked again before use, and a
platform key that was named must exist."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest

from _procs import alive, gone_within
from runtime.conftest import Party, seml_run, submit_secret_service
from seml.attest import SimulationProvider
from seml.cas import CasClient, LocalCas, ServiceConfig, VolumeGrant
from seml.cli import seml_command
from seml.errors import PolicyError, UsageError
from seml.runtime import RunOptions, run_service

SLEEPER = """\
import os, pathlib, sys, time
pathlib.Path("held.txt").write_text(os.environ["APP_SECRET"])
pathlib.Path(sys.argv[1]).write_text(f"{os.getpid()} {os.getcwd()}")
time.sleep(120)
"""


def _started(
    tmp_path: Path, cas: LocalCas, session: str, code: Path, command: list[str], ready: Path
) -> subprocess.Popen[bytes]:
    """`seml run` of service `app` of `session`, once its command wrote `ready` (its stderr
    goes to run.err, which an assertion shows)."""
    with (tmp_path / "run.err").open("wb") as err:  # the child keeps its own copy
        runtime = subprocess.Popen(
            [
                *seml_command(),
                *("run", "--session", session, "--service", "app"),
                *("--volumes-dir", str(tmp_path / "v"), "--code", str(code), "--", *command),
            ],
            env={**os.environ, **cas.env},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline and runtime.poll() is None:
        time.sleep(0.05)
    if not ready.exists():
        runtime.kill()
        runtime.wait()
        raise AssertionError((tmp_path / "run.err").read_text())
    return runtime


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_kill_9_of_the_runtime_kills_its_command_and_the_next_seml_wipes_the_workspace(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "sleeper.py").write_text(SLEEPER)
    ready = tmp_path / "ready"
    command = [sys.executable, str(code / "sleeper.py"), str(ready)]
    submit_secret_service(cas_server, alice, "life-kill", code, command)
    runtime = _started(tmp_path, cas_server, "life-kill", code, command, ready)
    try:
        pid_text, workspace_text = ready.read_text().split(" ", 1)
        child, workspace = int(pid_text), Path(workspace_text)
        assert alive(child) and (workspace / "held.txt").exists()
        runtime.kill()  # SIGKILL: no cleanup code of seml runs
        # Not reaped yet: its pid stays taken (a zombie), so no seml command anywhere on the
        # machine (tests run in parallel) may count the workspace as stale before we look.
        assert gone_within(child, 10), "the command outlived its runtime, holding its secret"
        assert workspace.exists()  # its runtime died without cleaning up; nobody else may yet
        runtime.wait(timeout=10)  # now its pid is free: the workspace is stale
        done = subprocess.run(
            [*seml_command(), "platform", "--help"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert not workspace.exists(), "the next seml command must wipe a killed run's workspace"
    finally:
        if runtime.poll() is None:
            runtime.kill()
        if ready.exists():
            pid = int(ready.read_text().split(" ", 1)[0])
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


GRACEFUL = """\
import os, pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def stop(signum, _frame):
    pathlib.Path(sys.argv[2]).write_text(f"got {signum}")
    sys.exit(7)
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, stop)
out.write_text(f"{os.getpid()} {os.getcwd()}")
time.sleep(120)
"""


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_seml_run_reaches_its_command_which_ends_as_it_chooses(
    tmp_path: Path, cas_server: LocalCas, alice: Party, sig: signal.Signals
) -> None:
    """What `timeout`, systemd or Kubernetes send to `seml run` goes to the command, which may
    finish its work; seml then exits with the command's status and wipes the workspace."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "graceful.py").write_text(GRACEFUL)
    ready, got = tmp_path / "ready", tmp_path / "got"
    command = [sys.executable, str(code / "graceful.py"), str(ready), str(got)]
    session = f"life-{sig.name.lower()}"
    submit_secret_service(cas_server, alice, session, code, command)
    runtime = _started(tmp_path, cas_server, session, code, command, ready)
    try:
        workspace = Path(ready.read_text().split(" ", 1)[1])
        runtime.send_signal(sig)
        assert runtime.wait(timeout=30) == 7, (tmp_path / "run.err").read_text()
        assert got.read_text() == f"got {int(sig)}"
        assert not workspace.exists(), "seml run must wipe the workspace after its command"
    finally:
        if runtime.poll() is None:
            runtime.kill()


class _Cas:
    """An attestation service that answers with a fixed configuration (no HTTP)."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config

    def attest(self, *args: Any, **kwargs: Any) -> ServiceConfig:
        return self.config

    def volume_version(self, *args: Any) -> tuple[int, str | None]:
        raise AssertionError("no volume may be opened for this configuration")


def _config(files: dict[str, str], volumes: dict[str, str]) -> ServiceConfig:
    grants = {
        name: VolumeGrant(path=path, key="00" * 32, owner="s", volume=name, token="t")
        for name, path in volumes.items()
    }
    return ServiceConfig(
        session="s",
        session_hash="sha256:" + "0" * 64,
        service="app",
        measurement="ab" * 32,
        tee="simulation",
        simulated=True,
        weaknesses=["simulation"],
        command=["true"],
        environment={},
        files=files,
        volumes=grants,
        secrets=[],
    )


@pytest.mark.parametrize(
    ("files", "volumes", "reason"),
    [
        ({"/data/key.pem": "x"}, {"data": "/data"}, "file /data/key.pem is inside volume data"),
        ({"/a": "x", "/a/b": "y"}, {}, "file /a/b is inside file /a"),
        ({"//etc/x": "x"}, {}, "has an empty component"),
        ({"/a/../../x": "x"}, {}, "has a '..' component"),
        ({"/" + "n" * 300: "x"}, {}, "has a component longer than 128 bytes"),
        ({}, {"data": "/"}, "cannot be / itself"),
        ({}, {"a": "/d", "b": "/d/e"}, "volume b at /d/e is inside volume a at /d"),
    ],
)
def test_run_checks_the_paths_it_receives_before_writing_anything(
    tmp_path: Path, files: dict[str, str], volumes: dict[str, str], reason: str
) -> None:
    """A configuration the schema would refuse (a session accepted by an older service, or a
    service that is not what it should be) stops `seml run` with a policy error, no traceback,
    nothing written."""
    options = RunOptions(session="s", service="app", volumes_dir=tmp_path / "volumes", gpu="none")
    cas = cast(CasClient, _Cas(_config(files, volumes)))
    with pytest.raises(PolicyError, match=reason):
        run_service(
            options, cas, provider_factory=SimulationProvider, environ={}, err=io.StringIO()
        )
    assert not (tmp_path / "volumes").exists()


@pytest.mark.integration
def test_a_named_platform_key_must_exist(tmp_path: Path, cas_server: LocalCas) -> None:
    missing = tmp_path / "typo" / "platform.key"
    result = seml_run(
        cas_server, "any", "app", "--platform-key", str(missing), volumes=tmp_path / "v"
    )
    assert result.returncode == UsageError.exit_code, result.stderr
    assert (
        f"seml: error: no platform key at {missing}: create one with `seml platform init "
        f"--platform-key {missing}`"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    named = seml_run(
        cas_server, "any", "app", volumes=tmp_path / "v", env={"SEML_PLATFORM_KEY": str(missing)}
    )
    assert named.returncode == UsageError.exit_code and "no platform key at" in named.stderr
