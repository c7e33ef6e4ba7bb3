"""`seml run` end to end against a real attestation service over HTTPS."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _crash import crash_command
from runtime.conftest import Party, seml_run, session_document, submit
from seml.cas import LocalCas
from seml.cli import seml_command
from seml.errors import AttestationError, IntegrityError
from seml.runtime import measure

pytestmark = pytest.mark.integration

PROGRAM = """\
import hashlib, os, pathlib, sys
secret = os.environ["APP_SECRET"]
print("secret-digest", hashlib.sha256(secret.encode()).hexdigest())
print("cmdline-has-secret", secret in open("/proc/self/cmdline").read())
pathlib.Path(sys.argv[1]).write_text("started")
cfg = pathlib.Path("etc-app/config.txt").read_text()
print("config-has-secret", secret in cfg)
data = pathlib.Path(os.environ["SEML_VOLUME_DATA"])
with (data / "log.txt").open("a") as f:
    f.write("line\\n")
print("lines", len((data / "log.txt").read_text().splitlines()))
"""


def _code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(PROGRAM)
    return code


def _service(name: str, measurement: str, volume: str = "data") -> dict[str, object]:
    return {
        "name": name,
        "measurements": [measurement],
        "environment": {"APP_SECRET": "$$SEML::app_secret$$"},
        "files": {"/etc-app/config.txt": "secret=$$SEML::app_secret$$\n"},
        "volumes": {volume: "/data"},
    }


def _setup(
    tmp_path: Path, cas: LocalCas, alice: Party, session: str
) -> tuple[Path, list[str], str]:
    code = _code(tmp_path)
    marker = tmp_path / "started"
    command = [sys.executable, str(code / "app.py"), str(marker)]
    m = measure([code], command)
    doc = session_document(
        session,
        alice,
        [_service("app", m)],
        secrets=[{"name": "app_secret", "kind": "ascii", "size": 40, "readers": ["app"]}],
        volumes=["data"],
    )
    submit(cas, doc, alice)
    return code, command, m


def _run(
    cas: LocalCas, session: str, code: Path, command: list[str], volumes: Path
) -> subprocess.CompletedProcess[str]:
    return seml_run(cas, session, "app", "--code", str(code), "--", *command, volumes=volumes)


def test_matching_code_gets_its_secret_and_volume_grows(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    code, command, _ = _setup(tmp_path, cas_server, alice, "run-ok")
    volumes = tmp_path / "volumes"
    first = _run(cas_server, "run-ok", code, command, volumes)
    assert first.returncode == 0, first.stderr
    assert "SIMULATED attestation" in first.stderr
    assert "cmdline-has-secret False" in first.stdout
    assert "config-has-secret True" in first.stdout
    assert "lines 1" in first.stdout
    digest = next(line.split()[1] for line in first.stdout.splitlines() if "secret-digest" in line)
    second = _run(cas_server, "run-ok", code, command, volumes)
    assert second.returncode == 0, second.stderr
    assert "lines 2" in second.stdout
    assert f"secret-digest {digest}" in second.stdout  # the same secret both times
    # The secret never shows in seml's own output, and nothing readable stays on disk.
    for root, _dirs, files in os.walk(volumes):
        for f in files:
            assert b"line\n" not in (Path(root) / f).read_bytes()


def test_one_byte_change_to_code_is_refused_before_the_command_starts(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    code, command, _ = _setup(tmp_path, cas_server, alice, "run-tamper-code")
    app = code / "app.py"
    app.write_bytes(app.read_bytes().replace(b"import", b"import ", 1))
    result = _run(cas_server, "run-tamper-code", code, command, tmp_path / "volumes")
    assert result.returncode == AttestationError.exit_code, result.stderr
    assert re.search(r"seml: error: .*measurement [0-9a-f]+ is not allowed", result.stderr)
    assert not (tmp_path / "started").exists(), "the command must never start"


def test_untolerated_simulation_is_refused(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    code = _code(tmp_path)
    command = [sys.executable, str(code / "app.py"), str(tmp_path / "started")]
    doc = session_document(
        "run-no-sim",
        alice,
        [_service("app", measure([code], command))],
        secrets=[{"name": "app_secret", "kind": "ascii", "readers": ["app"]}],
        volumes=["data"],
        tolerate=(),
    )
    submit(cas_server, doc, alice)
    result = _run(cas_server, "run-no-sim", code, command, tmp_path / "volumes")
    assert result.returncode == AttestationError.exit_code, result.stderr
    assert "weaknesses the session does not tolerate: simulation" in result.stderr
    assert not (tmp_path / "started").exists()


def _volume_dir(volumes: Path, session: str) -> Path:
    return volumes / session / "data"


def _objects(vol: Path) -> list[Path]:
    return sorted(
        p for p in vol.rglob("*") if p.is_file() and p.name not in ("VOLUME", "MANIFEST", ".lock")
    )


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("modify", "file log.txt: authentication failed at chunk 0 (the object was changed)"),
        ("truncate", "file log.txt is 57 bytes sealed, not the 58 its 10 bytes need"),
        ("delete", "file log.txt is missing (deleted from the volume)"),
        (
            "add",
            "file <undecryptable object 0123456789abcdefghijklmnop> is not in the manifest "
            "(added to the volume)",
        ),
        ("rollback", "volume data rolled back: version 1 < 2 known to the attestation service"),
    ],
)
def test_tampered_or_rolled_back_volume_is_refused(
    tmp_path: Path, cas_server: LocalCas, alice: Party, attack: str, reason: str
) -> None:
    session = f"run-vol-{attack}"
    code, command, _ = _setup(tmp_path, cas_server, alice, session)
    volumes = tmp_path / "volumes"
    assert _run(cas_server, session, code, command, volumes).returncode == 0
    vol = _volume_dir(volumes, session)
    old_copy = tmp_path / "old-copy"
    shutil.copytree(vol, old_copy)
    assert _run(cas_server, session, code, command, volumes).returncode == 0
    (tmp_path / "started").unlink()
    objects = _objects(vol)
    assert objects
    if attack == "modify":
        data = bytearray(objects[0].read_bytes())
        data[-1] ^= 1
        objects[0].write_bytes(bytes(data))
    elif attack == "truncate":
        with objects[0].open("r+b") as f:
            f.truncate(objects[0].stat().st_size - 1)
    elif attack == "delete":
        objects[0].unlink()
    elif attack == "add":
        (objects[0].parent / "0123456789abcdefghijklmnop").write_bytes(b"RCLONE\0\0" + b"x" * 60)
    else:
        shutil.rmtree(vol)
        shutil.copytree(old_copy, vol)
    result = _run(cas_server, session, code, command, volumes)
    assert result.returncode == IntegrityError.exit_code, result.stderr
    where = "" if attack == "rollback" else "volume 'data': "
    assert f"seml: error: {where}{reason}" in result.stderr
    assert not (tmp_path / "started").exists(), "the command must not start on a bad volume"


def test_failed_command_leaves_volume_at_last_sealed_version(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    code, command, _ = _setup(tmp_path, cas_server, alice, "run-fail")
    volumes = tmp_path / "volumes"
    assert _run(cas_server, "run-fail", code, command, volumes).returncode == 0
    # The measurement covers argv, so the failing run keeps the session's exact command and
    # fails by finding a folder where it writes its marker file.
    marker_dir = tmp_path / "started"
    marker_dir.unlink()
    marker_dir.mkdir()  # writing to a folder path fails: the program exits non-zero
    failed = _run(cas_server, "run-fail", code, command, volumes)
    assert failed.returncode == 1, failed.stderr  # the command's own status
    assert "not sealed" in failed.stderr
    marker_dir.rmdir()
    ok = _run(cas_server, "run-fail", code, command, volumes)
    assert ok.returncode == 0, ok.stderr
    assert "lines 2" in ok.stdout  # the failed run's append did not survive


@pytest.mark.parametrize("step", ["objects-written", "generation-renamed"])
def test_kill_9_of_runtime_mid_seal_then_next_run_works(
    tmp_path: Path, cas_server: LocalCas, alice: Party, step: str
) -> None:
    session = f"run-kill-seal-{step}"
    code, command, _ = _setup(tmp_path, cas_server, alice, session)
    volumes = tmp_path / "volumes"
    assert _run(cas_server, session, code, command, volumes).returncode == 0
    env = {**os.environ, **cas_server.env}
    killed = subprocess.run(
        [
            *crash_command(step),
            "seml",
            "run",
            "--session",
            session,
            "--service",
            "app",
            "--volumes-dir",
            str(volumes),
            "--code",
            str(code),
            "--",
            *command,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "lines 2" in killed.stdout  # the command ran; the runtime died while sealing
    after = _run(cas_server, session, code, command, volumes)
    assert after.returncode == 0, after.stderr
    assert "lines 2" in after.stdout  # back at the last sealed version (1 line), plus this run


def test_kill_9_of_the_child_leaves_the_volume_sealed_as_before(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    code = _code(tmp_path)
    (code / "slow.py").write_text(
        "import os, pathlib, time\n"
        "d = pathlib.Path(os.environ['SEML_VOLUME_DATA'])\n"
        "with (d / 'log.txt').open('a') as f: f.write('line\\n')\n"
        "print('lines', len((d / 'log.txt').read_text().splitlines()), flush=True)\n"
        "pathlib.Path(os.environ['READY']).write_text(str(os.getpid()))\n"
        "if pathlib.Path(os.environ['NAP']).exists(): time.sleep(60)\n"
    )
    command = [sys.executable, str(code / "slow.py")]
    ready, nap = tmp_path / "ready", tmp_path / "nap"
    doc = session_document(
        "run-kill-child",
        alice,
        [
            {
                "name": "app",
                "measurements": [measure([code], command)],
                "environment": {"READY": str(ready), "NAP": str(nap)},
                "volumes": {"data": "/data"},
            }
        ],
        volumes=["data"],
    )
    submit(cas_server, doc, alice)
    volumes = tmp_path / "volumes"
    first = _run(cas_server, "run-kill-child", code, command, volumes)
    assert first.returncode == 0 and "lines 1" in first.stdout, first.stderr
    ready.unlink()
    nap.write_text("")
    argv = [
        *seml_command(),
        "run",
        "--session",
        "run-kill-child",
        "--service",
        "app",
        "--volumes-dir",
        str(volumes),
        "--code",
        str(code),
        "--",
        *command,
    ]
    proc = subprocess.Popen(
        argv, env={**os.environ, **cas_server.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists()
    os.kill(int(ready.read_text()), signal.SIGKILL)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGKILL, err
    assert b"not sealed" in err
    nap.unlink()
    after = _run(cas_server, "run-kill-child", code, command, volumes)
    assert after.returncode == 0, after.stderr
    assert "lines 2" in after.stdout  # the killed run's line is gone: v1 plus this run


def test_services_of_different_sessions_cannot_open_each_others_volumes(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    code, command, m = _setup(tmp_path, cas_server, alice, "run-iso-a")
    volumes = tmp_path / "volumes"
    assert _run(cas_server, "run-iso-a", code, command, volumes).returncode == 0
    doc = session_document(
        "run-iso-b",
        alice,
        [_service("app", m)],
        secrets=[{"name": "app_secret", "kind": "ascii", "readers": ["app"]}],
        volumes=["data"],
    )
    submit(cas_server, doc, alice)
    # The operator moves session A's volume where session B's service looks for its own.
    shutil.copytree(_volume_dir(volumes, "run-iso-a"), _volume_dir(volumes, "run-iso-b"))
    (tmp_path / "started").unlink()
    result = _run(cas_server, "run-iso-b", code, command, volumes)
    assert result.returncode == IntegrityError.exit_code, result.stderr
    assert "the manifest does not authenticate: wrong volume key" in result.stderr
    assert not (tmp_path / "started").exists()


def test_secret_is_not_in_seml_output(tmp_path: Path, cas_server: LocalCas, alice: Party) -> None:
    code, command, _ = _setup(tmp_path, cas_server, alice, "run-quiet")
    result = _run(cas_server, "run-quiet", code, command, tmp_path / "volumes")
    assert result.returncode == 0, result.stderr
    digest = next(x.split()[1] for x in result.stdout.splitlines() if "secret-digest" in x)
    # We cannot see the secret, but we can check no 40-char token hashing to it was printed.
    for token in (result.stderr + result.stdout).split():
        assert hashlib.sha256(token.encode()).hexdigest() != digest


def test_fuse_mount_mode_reads_and_seals_the_volume(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    from seml.volume import fuse_available

    problem = fuse_available()
    if problem:
        pytest.skip(f"FUSE is not usable here: {problem}")
    code, command, _ = _setup(tmp_path, cas_server, alice, "run-fuse")
    volumes = tmp_path / "volumes"
    first = _run(cas_server, "run-fuse", code, command, volumes)
    assert first.returncode == 0, first.stderr
    (tmp_path / "started").unlink()
    fused = seml_run(
        cas_server,
        "run-fuse",
        "app",
        "--mount",
        "fuse",
        "--code",
        str(code),
        "--",
        *command,
        volumes=volumes,
    )
    assert fused.returncode == 0, fused.stderr
    assert "mounted (FUSE)" in fused.stderr
    assert "lines 2" in fused.stdout
    assert "sealed as v2" in fused.stderr
    (tmp_path / "started").unlink()
    third = _run(cas_server, "run-fuse", code, command, volumes)
    assert third.returncode == 0, third.stderr
    assert "lines 3" in third.stdout  # what the FUSE run wrote was sealed
