"""Code a program loads must be code the measurement covers: a forged compiled cache
(`__pycache__/*.pyc` whose header matches the measured source's size and time) runs instead of
the source under plain Python, so `seml run` refuses a code folder holding one before it asks
for any secret, and never writes one itself."""

from __future__ import annotations

import importlib.util
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.conftest import Party, seml_run, submit_secret_service
from seml.cas import LocalCas
from seml.errors import UsageError
from seml.runtime import measure

pytestmark = pytest.mark.integration

APP = """\
import sys
import helper
helper.go(sys.argv[1])
"""
HONEST = """\
import pathlib
def go(out):
    pathlib.Path(out).write_text("honest")
"""
FORGED = """\
import os, pathlib
def go(out):
    pathlib.Path(out).write_text("forged " + os.environ.get("APP_SECRET", ""))
"""


def _forge_cache(code: Path) -> Path:
    """What anyone who can write the code folder can do: compile other source into the cache
    of `helper.py`, with the real source's size and modification time in its header."""
    source = code / "helper.py"
    size = source.stat().st_size
    forged = FORGED + "#" * (size - len(FORGED) - 1) + "\n"
    assert len(forged) == size  # the header stores the size: it must match
    other = code.parent / "forged_helper.py"
    other.write_text(forged)
    st = source.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    cache = Path(importlib.util.cache_from_source(str(source)))
    py_compile.compile(
        str(other),
        cfile=str(cache),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
    )
    other.unlink()
    return cache


def _setup(tmp_path: Path, cas: LocalCas, alice: Party, session: str) -> tuple[Path, list[str]]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(APP)
    (code / "helper.py").write_text(HONEST + "#" * 200 + "\n")
    out = tmp_path / "out.txt"
    command = [sys.executable, str(code / "app.py"), str(out)]
    submit_secret_service(cas, alice, session, code, command)
    return code, command


def test_a_forged_compiled_cache_runs_under_python_and_seml_run_refuses_it(
    tmp_path: Path, cas_server: LocalCas, alice: Party
) -> None:
    code, command = _setup(tmp_path, cas_server, alice, "pyc-forged")
    out = Path(command[-1])
    measured = measure([code], command)
    cache = _forge_cache(code)
    # The attack is real: plain Python runs the forged cache, not the source beside it.
    plain = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    assert out.read_text() == "forged ", "Python ran the measured source: the cache was ignored"
    out.unlink()
    # seml run refuses before attestation: no secret, the command never starts.
    result = seml_run(
        cas_server, "pyc-forged", "app", "--code", str(code), "--", *command, volumes=tmp_path / "v"
    )
    assert result.returncode == UsageError.exit_code, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("seml: error: code folder ") and "__pycache__" in line, line
    assert "measurement does not cover" in line and "remove it" in line
    assert not out.exists(), "the command must not start"
    assert "SIMULATED" not in result.stderr, "nothing may be attested for such a folder"
    # Removing the cache, as the error says, makes the same folder run its measured source.
    cache.unlink()
    cache.parent.rmdir()
    assert measure([code], command) == measured
    for attempt in ("first", "second"):
        done = seml_run(
            cas_server,
            "pyc-forged",
            "app",
            "--code",
            str(code),
            "--",
            *command,
            volumes=tmp_path / "v",
        )
        assert done.returncode == 0, f"{attempt} run: {done.stderr}"
        assert out.read_text() == "honest", attempt
        # The workload imported helper.py without writing a cache into the code folder, so
        # the next run is not refused for one.
        assert not (code / "__pycache__").exists(), attempt
