"""A volume the command left as it was unsealed is not sealed again; any change is sealed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime.conftest import Party, seml_run, session_document, submit
from seml.cas import LocalCas
from seml.runtime import measure

pytestmark = pytest.mark.integration

# Each action changes the volume in one way, right after unseal (within the same clock tick
# when the machine is fast enough: the case a coarse file time could hide).
PROGRAM = """\
import os, pathlib, sys
data = pathlib.Path(os.environ["SEML_VOLUME_DATA"])
f = data / "f.txt"
action = sys.argv[1]
if action == "write":
    f.write_text("abcd")
elif action == "same-size":
    f.write_text("wxyz")
elif action == "chmod":
    f.chmod(0o600)
elif action == "add":
    (data / "g.txt").write_text("")
print("content", f.read_text(), oct(f.stat().st_mode & 0o777))
"""
ACTIONS = ("write", "none", "same-size", "chmod", "add")


def test_unchanged_volume_keeps_its_version_and_every_change_is_sealed(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(PROGRAM)
    commands = {a: [sys.executable, str(code / "app.py"), a] for a in ACTIONS}
    service = {
        "name": "app",
        "measurements": [measure([code], c) for c in commands.values()],
        "volumes": {"data": "/data"},
    }
    submit(cas_server, session_document("run-unchanged", alice, [service], volumes=["data"]), alice)
    volumes = tmp_path / "volumes"

    def run(action: str) -> str:
        result = seml_run(
            cas_server,
            "run-unchanged",
            "app",
            "--code",
            str(code),
            "--mount",
            "workspace",
            "--",
            *commands[action],
            volumes=volumes,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout + result.stderr

    assert "volume data sealed as v1" in run("write")
    out = run("none")
    assert "volume data unchanged: stays at v1" in out
    assert "sealed as" not in out
    assert "content abcd" in out
    # The service still knows v1 (an open at another version would be refused as a rollback).
    out = run("same-size")
    assert "volume data sealed as v2" in out
    assert "content wxyz" in run("none")
    assert "volume data sealed as v3" in run("chmod")
    out = run("none")
    assert "unchanged: stays at v3" in out
    assert "content wxyz 0o600" in out
    assert "volume data sealed as v4" in run("add")
    assert "unchanged: stays at v4" in run("none")


class _Opened:
    """What `_Mounted.unchanged` asks of a volume: its version, and whether its workspace is
    as unsealed (here: always)."""

    def __init__(self, version: int) -> None:
        self.version = version

    def unchanged_since_unseal(self, workspace: Path) -> bool:
        return True


@pytest.mark.parametrize(
    ("local", "known", "expected"),
    [(3, 3, True), (4, 3, False), (0, 0, False)],
    ids=["same-as-service", "local-newer-than-service", "never-sealed"],
)
def test_only_a_volume_at_the_services_version_skips_its_seal(
    tmp_path: Path, local: int, known: int, expected: bool
) -> None:
    # A local copy newer than the service's version (a run sealed it and died before reporting
    # it) is sealed again, so the service and the receipt name what is on disk.
    from seml.cas import VolumeGrant
    from seml.runtime._run import _Mounted

    grant = VolumeGrant(path="/data", key="00" * 32, owner="s", volume="data", token="t")
    mounted = _Mounted("data", grant, _Opened(local), known, tmp_path)  # type: ignore[arg-type]
    assert mounted.unchanged() is expected
