"""What reaches an attested command from the machine: the session's environment and a short
allow-list, never a variable that loads code; and `seml run` itself refuses to start with one.
Against a real attestation service over HTTPS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

from runtime.conftest import Party, seml_run, session_document, submit
from seml._environ import code_loading, from_host
from seml.cas import CasClient, LocalCas
from seml.errors import PolicyError, UsageError
from seml.runtime import RunOptions, measure, run_service

pytestmark = pytest.mark.integration

VICTIM = """\
import hashlib, json, os, pathlib, sys
pathlib.Path(sys.argv[1]).write_text(json.dumps(dict(os.environ)))
"""

# What an operator plants next to the service: Python runs it at start in every interpreter
# that has its folder on PYTHONPATH, before the program's own first line.
SITECUSTOMIZE = """\
import os, pathlib
with pathlib.Path(os.environ["STOLEN"]).open("a") as f:
    f.write(f"{os.getpid()} {os.environ.get('APP_SECRET', '-')}\\n")
"""


def _setup(tmp_path: Path, cas: LocalCas, alice: Party, session: str) -> list[str]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "victim.py").write_text(VICTIM)
    command = [sys.executable, str(code / "victim.py"), str(tmp_path / "environ.json")]
    doc = session_document(
        session,
        alice,
        [
            {
                "name": "app",
                "measurements": [measure([code], command)],
                "environment": {"APP_SECRET": "$$SEML::app_secret$$", "FROM_SESSION": "yes"},
            }
        ],
        secrets=[{"name": "app_secret", "kind": "ascii", "size": 40, "readers": ["app"]}],
    )
    submit(cas, doc, alice)
    return ["--code", str(code), "--", *command]


def _run(
    cas: LocalCas, session: str, args: list[str], env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return seml_run(cas, session, "app", *extra, *args, volumes=Path("unused"), env=env)


def test_sitecustomize_on_pythonpath_is_refused_before_any_secret(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    """The attack of issue 11: PYTHONPATH pointing at a sitecustomize.py ran unmeasured code in
    the workload, which read its secret, under the same measurement. Now `seml run` refuses to
    start with PYTHONPATH set, nothing is attested, the command never runs."""
    args = _setup(tmp_path, cas_server, alice, "env-sitecustomize")
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "sitecustomize.py").write_text(SITECUSTOMIZE)
    stolen = tmp_path / "stolen.txt"
    result = _run(
        cas_server,
        "env-sitecustomize",
        args,
        {"PYTHONPATH": str(planted), "STOLEN": str(stolen)},
    )
    assert result.returncode == UsageError.exit_code, result.stderr
    assert (
        "seml: error: seml run does not run with PYTHONPATH set: such variables load code the "
        "measurement does not cover; unset it and retry"
    ) in result.stderr
    assert not (tmp_path / "environ.json").exists(), "the command must never start"
    # The planted code ran only in seml's own process, before any secret existed there.
    lines = stolen.read_text().splitlines()
    assert lines and all(line.endswith(" -") for line in lines), lines
    # And the attestation service released nothing.
    with cas_server.client() as client:
        entries = client.audit(party=("alice", alice.key), sessions=["env-sitecustomize"])
    assert [e.event for e in entries if e.revealed] == ["session.create"]


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "NODE_OPTIONS", "BASH_ENV"])
def test_other_code_loading_variables_are_refused(
    tmp_path: Path, cas_server: LocalCas, alice: Party, name: str
) -> None:
    session = f"env-{name.lower().replace('_', '-')}"
    args = _setup(tmp_path, cas_server, alice, session)
    result = _run(cas_server, session, args, {name: str(tmp_path / "nothing-here")})
    assert result.returncode == UsageError.exit_code, result.stderr
    assert f"seml run does not run with {name} set" in result.stderr
    assert not (tmp_path / "environ.json").exists()


def test_the_command_gets_the_session_the_allow_list_and_what_is_passed_by_name(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    args = _setup(tmp_path, cas_server, alice, "env-allowed")
    host = {
        "HOST_ONLY_MARKER": "host-value-5d1e",
        "AWS_SECRET_ACCESS_KEY": "aws-value-77c2",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "HOME": str(tmp_path / "operator-home"),
    }
    result = _run(cas_server, "env-allowed", args, host, "--pass-env", "AWS_SECRET_ACCESS_KEY")
    assert result.returncode == 0, result.stderr
    seen = json.loads((tmp_path / "environ.json").read_text())
    assert "HOST_ONLY_MARKER" not in seen  # not on the allow-list, not passed
    assert seen["AWS_SECRET_ACCESS_KEY"] == "aws-value-77c2"  # passed by name
    assert seen["FROM_SESSION"] == "yes" and len(seen["APP_SECRET"]) == 40
    assert seen["LANG"] == "C.UTF-8" and seen["TZ"] == "UTC" and "PATH" in seen
    # The operator's home (its dotfiles, ~/.aws/config, user site-packages) is not the
    # command's: HOME is the private workspace, and user site-packages are off.
    assert seen["HOME"] == seen["SEML_WORKSPACE"] != host["HOME"]
    assert seen["PYTHONNOUSERSITE"] == "1"
    assert not [k for k in seen if code_loading(k)]
    # seml names what it passes, never the values.
    passing = next(x for x in result.stderr.splitlines() if x.startswith("seml run: passing "))
    assert "AWS_SECRET_ACCESS_KEY" in passing and passing.endswith(" from this machine")
    assert "aws-value-77c2" not in result.stderr + result.stdout


def test_passing_a_code_loading_variable_is_refused(tmp_path: Path) -> None:
    """`RunOptions.pass_env` (what a machine's operator passes) is checked before anything."""
    options = RunOptions(
        session="s", service="x", pass_env={"PYTHONPATH": str(tmp_path), "OK": "1"}
    )
    with pytest.raises(PolicyError, match="may not pass PYTHONPATH to a service: it makes"):
        run_service(options, cast(CasClient, object()), environ={})
    with pytest.raises(UsageError, match="seml run does not run with LD_AUDIT set"):
        run_service(
            RunOptions(session="s", service="x"),
            cast(CasClient, object()),
            environ={"LD_AUDIT": "x"},
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pass-env", "AWS_SECRET_ACCESS_KEY=v"], "takes a variable's NAME, not"),
        (["--pass-env", "SURELY_NOT_SET_5A1"], "SURELY_NOT_SET_5A1 is not set in this"),
    ],
)
def test_pass_env_takes_names_of_set_variables(
    cas_server: LocalCas, args: list[str], message: str
) -> None:
    result = seml_run(cas_server, "any", "app", *args, volumes=Path("unused"))
    assert result.returncode == UsageError.exit_code and message in result.stderr, result.stderr
    assert "=v" not in result.stderr


def test_the_allow_list_and_the_deny_list() -> None:
    host = {"PATH": "/bin", "LC_ALL": "C", "LANG": "C", "PYTHONPATH": "/x", "SECRET": "s"}
    assert from_host(host) == {"PATH": "/bin", "LC_ALL": "C", "LANG": "C"}
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONINSPECT",
                 "PYTHONPYCACHEPREFIX", "PYTHONWARNINGS", "PYTHON_FUTURE_LOADER", "LD_PRELOAD",
                 "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "PERL5LIB",
                 "NODE_OPTIONS", "BASH_ENV", "ENV", "BASH_FUNC_x%%", "GCONV_PATH",
                 "GLIBC_TUNABLES", "OPENSSL_CONF", "AWS_CONFIG_FILE", "pythonpath"):  # fmt: skip
        assert code_loading(name), name
    for name in ("PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "PYTHONHASHSEED", "PYTHON_VERSION",
                 "AWS_SECRET_ACCESS_KEY", "LDFLAGS", "ENVIRONMENT"):  # fmt: skip
        assert not code_loading(name), name
