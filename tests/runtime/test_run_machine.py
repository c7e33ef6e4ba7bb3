"""`seml run` gives a service what the machine it runs on chooses, from its profile: storage
endpoint and credentials (named on stderr, never valued), its sync-state folder, its folders by
name, its volumes folder, and its own `seml`; never what the session's public text would say."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from _machine import seml_as
from runtime.conftest import Party, session_document, submit
from seml.cas import LocalCas
from seml.errors import PolicyError, UsageError
from seml.runtime import measure
from seml.runtime._layout import check_pass_env, resolve_seml

pytestmark = pytest.mark.integration

SHOW = """\
import json, os, pathlib
names = ["SEML_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SEML_STATE_DIR",
         "SEML_CAS", "SEML_CONFIG_DIR", "SEML_PROFILE", "SEML_VOLUMES_DIR"]
print(json.dumps({n: os.environ.get(n) for n in names}))
print(json.dumps(sorted(os.listdir("data"))))
pathlib.Path("output/result.txt").write_text("written by the service")
"""
ENDPOINT = "http://storage.example.org:8333"


def _alice(tmp_path: Path, cas: LocalCas) -> Path:
    cfg = tmp_path / "cfg"
    r = seml_as(cfg, "init", "--role", "party", "--name", "alice", "--root", str(tmp_path / "a"),
                "--cas", cas.url, "--cas-fingerprint", cas.fingerprint,
                "--storage", "s3://bucket/p", "--s3-endpoint", ENDPOINT,
                "--access-key-env", "ALICE_KEY", "--secret-key-env", "ALICE_SECRET")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return cfg


def _show_session(cas: LocalCas, alice: Party, name: str, command: list[str]) -> None:
    doc = session_document(
        name,
        alice,
        [
            {
                "name": "show",
                "measurements": [measure([], [])],
                "command": command,
                "files": {"/show.py": SHOW},
                "volumes": {"v": "/v"},
            }
        ],
        volumes=["v"],
    )
    submit(cas, doc, alice)


def test_the_service_gets_the_machines_storage_settings_and_folders(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    cfg = _alice(tmp_path, cas_server)
    root = tmp_path / "a"
    (root / "data" / "rows.csv").write_text("a,b\n1,2\n")
    _show_session(cas_server, alice, "machine-show", [sys.executable, "show.py"])
    env = {"ALICE_KEY": "key-id", "ALICE_SECRET": "the-secret-value"}
    r = seml_as(cfg, "run", "--session", "machine-show", "--service", "show", env=env)
    assert r.returncode == 0, r.stderr
    assert "seml run: profile alice" in r.stderr
    passing = next(x for x in r.stderr.splitlines() if x.startswith("seml run: passing "))
    names = passing.removeprefix("seml run: passing ").removesuffix(" from this machine")
    # (plus AWS settings such as AWS_CA_BUNDLE when the caller has them set)
    assert {n for n in names.split(", ") if not n.startswith("AWS_") or "KEY" in n} == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "SEML_S3_ENDPOINT",
        "SEML_STATE_DIR",
    }
    assert "the-secret-value" not in r.stderr  # names only
    assert f"data -> {root / 'data'}" in r.stderr
    seen, listing = (json.loads(x) for x in r.stdout.splitlines()[:2])
    assert seen == {
        "SEML_S3_ENDPOINT": ENDPOINT,
        "AWS_ACCESS_KEY_ID": "key-id",
        "AWS_SECRET_ACCESS_KEY": "the-secret-value",
        "SEML_STATE_DIR": str(root / "state"),
        "SEML_CAS": None,  # seml's own settings are not the service's
        "SEML_CONFIG_DIR": None,
        "SEML_PROFILE": None,
        "SEML_VOLUMES_DIR": None,
    }
    assert listing == ["rows.csv"]
    # The folders were the machine's own, and survive the wiped workspace untouched.
    assert (root / "output" / "result.txt").read_text() == "written by the service"
    assert (root / "data" / "rows.csv").read_text() == "a,b\n1,2\n"
    # The volume went to the profile's volumes folder, not ./volumes.
    assert (root / "volumes" / "machine-show" / "v").is_dir()
    assert not (tmp_path / "volumes").exists()


def test_a_variable_the_profile_names_but_is_unset_is_warned_about(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    cfg = _alice(tmp_path, cas_server)
    _show_session(cas_server, alice, "machine-unset", [sys.executable, "show.py"])
    r = seml_as(cfg, "run", "--session", "machine-unset", "--service", "show",
                env={"ALICE_KEY": "id"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "seml run: warning: $ALICE_SECRET is not set" in r.stderr
    seen = json.loads(r.stdout.splitlines()[0])
    assert seen["AWS_ACCESS_KEY_ID"] == "id" and seen["AWS_SECRET_ACCESS_KEY"] is None


def test_seml_need_not_be_on_path_for_a_service(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    cfg = _alice(tmp_path, cas_server)
    _show_session(cas_server, alice, "machine-seml", ["seml", "measure"])
    r = seml_as(cfg, "run", "--session", "machine-seml", "--service", "show",
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == measure([], [])  # the machine's seml ran the session's `seml`


def test_a_machine_folder_colliding_with_a_session_path_is_refused_before_the_command(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    cfg = _alice(tmp_path, cas_server)
    (tmp_path / "v").mkdir()
    _show_session(cas_server, alice, "machine-clash", [sys.executable, "show.py"])
    r = seml_as(cfg, "run", "--session", "machine-clash", "--service", "show",
                "--folder", f"v={tmp_path / 'v'}")  # fmt: skip
    assert r.returncode == PolicyError.exit_code, r.stderr
    assert "this machine's folder v collides with /v of the session" in r.stderr
    assert r.stdout == ""  # the command never started
    r = seml_as(cfg, "run", "--session", "machine-clash", "--service", "show",
                "--folder", f"extra={tmp_path / 'missing'}")  # fmt: skip
    assert r.returncode == UsageError.exit_code, r.stderr
    assert f"this machine's folder extra ({tmp_path / 'missing'}) is not a folder" in r.stderr


def test_code_loading_variables_and_the_sessions_own_are_never_passed() -> None:
    for name in ("LD_PRELOAD", "PYTHONPATH", "LD_ANYTHING", "NODE_OPTIONS", "BASH_ENV"):
        with pytest.raises(PolicyError, match=f"may not pass {name} to a service: it makes"):
            check_pass_env({name: "x"}, {})
    with pytest.raises(PolicyError, match="passes MODEL_KEY, which the session sets"):
        check_pass_env({"MODEL_KEY": "x"}, {"MODEL_KEY": "$$SEML::k$$"})
    with pytest.raises(UsageError, match="not a variable name"):
        check_pass_env({"A=B": "x"}, {})
    check_pass_env({"SEML_S3_ENDPOINT": "http://e", "AWS_PROFILE": "p"}, {"OTHER": "y"})


def test_the_program_seml_is_this_machines_seml() -> None:
    assert resolve_seml(["seml", "push", "data"], ["/opt/s/bin/seml"]) == [
        "/opt/s/bin/seml",
        "push",
        "data",
    ]
    assert resolve_seml(["seml", "x"], ["/usr/bin/python3", "-m", "seml"])[:3] == [
        "/usr/bin/python3",
        "-m",
        "seml",
    ]
    assert resolve_seml(["python3", "seml"], ["/opt/seml"]) == ["python3", "seml"]
    assert resolve_seml(["seml"], []) == ["seml"]
