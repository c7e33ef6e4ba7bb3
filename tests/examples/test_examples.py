"""The examples and `seml demo` run as a user would run them, and say what they claim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEML_")}
    env["SEML_CONFIG_DIR"] = os.environ["SEML_CONFIG_DIR"]  # no profile of the user's
    env["SEML"] = str(Path(sys.executable).with_name("seml"))
    env.update(extra)
    return env


def test_hello_example_runs_from_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(REPO / "examples" / "hello" / "run.sh"), str(tmp_path / "w")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=180,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "SIMULATED attestation" in out
    assert "greetings.txt now has 1 line(s)" in out
    assert "greetings.txt now has 2 line(s)" in out
    digests = [line.split()[-1] for line in out.splitlines() if "sha256 of my secret" in line]
    assert len(digests) == 2 and digests[0] == digests[1]
    # The attestation service it started is stopped.
    assert "serving" in (tmp_path / "w" / "cas.out").read_text()


def test_hello_example_fails_loudly_when_a_step_fails(tmp_path: Path) -> None:
    # A session the service refuses (no seml on PATH for measure) must stop the script.
    result = subprocess.run(
        ["bash", str(REPO / "examples" / "hello" / "run.sh"), str(tmp_path / "w")],
        capture_output=True,
        text=True,
        env=_env(SEML="/bin/false"),
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


# `make test-long` (which .ci/run runs too): the flow `seml demo` narrates runs in `make test`
# once already, as tests/flow/test_flow.py's fixture, with the same checks (`verify_flow`);
# this adds the command and its narration at about a minute of one test worker.
@pytest.mark.long
@pytest.mark.timeout(600)
def test_demo_verifies_and_exits_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("seml")), "demo", "--workdir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        env=_env(COLUMNS="120"),
        timeout=300,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "verified" in out and "FAILED" not in out
    assert "SIMULATED" in out
    for layer in ("parties/alice", "parties/bob", "cloud/storage", "cloud/volumes", "cas"):
        assert (tmp_path / "d" / layer).is_dir()


def test_demo_refuses_a_non_empty_workdir(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("seml")), "demo", "--workdir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "not empty" in result.stderr


@pytest.mark.parametrize("name", ["iris.example.yaml", "iris-alice.example.yaml"])
def test_example_sessions_are_valid(name: str) -> None:
    from seml.policy import parse_session

    session = parse_session((REPO / "examples" / "iris" / name).read_text(), source=name)
    assert session.security.tolerate == ["simulation"]
    assert all(s.platforms for s in session.services)
