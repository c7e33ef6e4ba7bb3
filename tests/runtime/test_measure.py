from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from seml.errors import UsageError
from seml.runtime import explain, measure, runtime_identity


def _code(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    (root / "pkg").mkdir(parents=True)
    (root / "main.py").write_text("print('hello')\n")
    (root / "pkg" / "util.py").write_text("X = 1\n")
    return root


def test_same_inputs_same_measurement_wherever_the_files_sit(tmp_path: Path) -> None:
    a = _code(tmp_path / "a")
    b = _code(tmp_path / "b")
    assert measure([a], ["python3", "main.py"]) == measure([b], ["python3", "main.py"])


def test_measurement_is_hex_sha256(tmp_path: Path) -> None:
    value = measure([_code(tmp_path)], ["python3", "main.py"])
    assert len(value) == 64
    int(value, 16)


@pytest.mark.parametrize("position", [0, 5, -1])
def test_one_byte_change_in_code_changes_the_measurement(tmp_path: Path, position: int) -> None:
    root = _code(tmp_path)
    before = measure([root], ["python3", "main.py"])
    target = root / "main.py"
    data = bytearray(target.read_bytes())
    data[position] ^= 0x01
    target.write_bytes(bytes(data))
    assert measure([root], ["python3", "main.py"]) != before


def test_added_file_changes_the_measurement(tmp_path: Path) -> None:
    root = _code(tmp_path)
    before = measure([root], ["python3", "main.py"])
    (root / "extra.py").write_text("")
    assert measure([root], ["python3", "main.py"]) != before


def test_command_is_covered(tmp_path: Path) -> None:
    root = _code(tmp_path)
    assert measure([root], ["python3", "main.py"]) != measure([root], ["python3", "main.py", "-x"])
    # Argument boundaries matter: ["a b"] is not ["a", "b"].
    assert measure([], ["a b"]) != measure([], ["a", "b"])


def test_missing_code_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        measure([tmp_path / "nope"], ["true"])


def _package() -> Path:
    import seml

    return Path(seml.__file__).resolve().parent


def test_the_runtime_identity_does_not_depend_on_where_seml_is_installed(tmp_path: Path) -> None:
    from seml.runtime._measure import _identity, _runtime_files

    here = _runtime_files(_package())
    for where in (tmp_path / "a" / "seml", tmp_path / "b" / "deeper" / "site-packages" / "seml"):
        shutil.copytree(_package(), where, ignore=shutil.ignore_patterns("__pycache__"))
        assert _runtime_files(where) == here
    assert _identity(here) == runtime_identity()
    # Data the package ships is covered too: a changed pinned root is another runtime.
    root = next(p for p in (tmp_path / "a" / "seml").rglob("*.pem"))
    root.write_bytes(root.read_bytes() + b"\n")
    assert _identity(_runtime_files(tmp_path / "a" / "seml")) != _identity(here)


def test_explain_lists_what_the_value_covers(tmp_path: Path) -> None:
    code = _code(tmp_path)
    e = explain([code], ["python3", "main.py"])
    assert e.value == measure([code], ["python3", "main.py"])
    assert e.runtime_identity == runtime_identity()
    assert ("runtime/_measure.py", _sha256(_package() / "runtime" / "_measure.py")) in (
        e.runtime_files
    )
    assert not any("__pycache__" in n or n.endswith(".pyc") for n, _ in e.runtime_files)
    assert dict(e.code_files) == {
        "code/main.py": _sha256(code / "main.py"),
        "code/pkg/util.py": _sha256(code / "pkg" / "util.py"),
    }
    assert e.command == ("python3", "main.py")
    assert any("install" in x for x in e.not_covered)
    assert any("dependencies" in x for x in e.not_covered)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_seml_measure_explain_prints_files_command_and_what_is_not_covered() -> None:
    import subprocess

    from seml.cli import seml_command

    out = subprocess.run(
        [*seml_command(), "measure", "--explain", "--", "seml", "flow", "train"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    value = measure([], ["seml", "flow", "train"])
    assert out.startswith(f"measurement {value}\n")
    assert f"the runtime identity {runtime_identity()}" in out
    assert f"{_sha256(_package() / '_fs.py')}  _fs.py" in out
    assert '3. the command ["seml", "flow", "train"]' in out
    assert "does not cover:" in out and "(simulation)" in out
    as_json = subprocess.run(
        [*seml_command(), "measure", "--explain", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    import json

    doc = json.loads(as_json)
    assert doc["measurement"] == measure([], []) and doc["simulated"] is True
    assert len(doc["runtime_files"]) > 100 and doc["command"] == []


@pytest.mark.integration
def test_two_installs_at_different_paths_measure_the_same(tmp_path: Path) -> None:
    """The package copied to two install paths, each imported by its own interpreter process
    (as a service's runtime would be), measures what this installation measures."""
    import os
    import subprocess
    import sys

    values = []
    for target in (tmp_path / "one", tmp_path / "two" / "opt" / "lib" / "site-packages"):
        shutil.copytree(_package(), target / "seml", ignore=shutil.ignore_patterns("__pycache__"))
        probe = (
            "import seml, sys; from seml.runtime import measure; "
            f"assert seml.__file__.startswith({str(target)!r}), seml.__file__; "
            "print(measure([], ['seml', 'flow', 'train']))"
        )
        env = {**os.environ, "PYTHONPATH": str(target)}
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        values.append(out.stdout.strip())
    assert values[0] == values[1] == measure([], ["seml", "flow", "train"])


def test_a_built_package_ships_every_file_the_measurement_covers() -> None:
    """Every file of the source package is one a wheel installs (a .py file, or package data
    declared in pyproject.toml), so an installed release measures like this tree."""
    import fnmatch
    import tomllib

    repo = Path(__file__).resolve().parents[2]
    data = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = data["package-data"]
    from seml.runtime._measure import _runtime_files

    for name, _ in _runtime_files(repo / "src" / "seml"):
        if name.endswith(".py"):
            continue
        package = ".".join(["seml", *Path(name).parts[:-1]])
        owner = max(
            (p for p in declared if package == p or package.startswith(p + ".")),
            key=len,
            default=None,
        )
        rel = (
            name
            if owner in (None, "seml")
            else Path(name).relative_to(*owner.split(".")[1:]).as_posix()
        )
        patterns = declared.get(owner or "", [])
        assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), (name, owner, patterns)


def test_a_pyc_outside_pycache_is_code_and_is_measured(tmp_path: Path) -> None:
    """Python imports `json.pyc` beside the script (no source needed) before the standard
    library's json: such a file is code, so it changes the measurement like any other."""
    root = _code(tmp_path)
    before = measure([root], ["python3", "main.py"])
    (root / "json.pyc").write_bytes(b"\x00" * 16)
    assert measure([root], ["python3", "main.py"]) != before


@pytest.mark.parametrize("kind", ["pycache", "pycache-link", "folder-link", "dangling", "fifo"])
def test_what_a_program_could_load_unmeasured_is_refused(tmp_path: Path, kind: str) -> None:
    root = _code(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "__init__.py").write_text("print('not measured')\n")
    where = root / "pkg"
    if kind == "pycache":
        (where / "__pycache__").mkdir()
        (where / "__pycache__" / "util.cpython-311.pyc").write_bytes(b"\x00" * 16)
        name, what = "pkg/__pycache__", "is a compiled cache (__pycache__)"
    elif kind == "pycache-link":
        (where / "__pycache__").symlink_to(elsewhere)
        name, what = "pkg/__pycache__", "is a link to a folder"
    elif kind == "folder-link":
        (root / "sklearn").symlink_to(elsewhere)  # would shadow the installed library
        name, what = "sklearn", "is a link to a folder"
    elif kind == "dangling":
        (where / "late.py").symlink_to(tmp_path / "created-later.py")
        name, what = "pkg/late.py", "is a link to nothing"
    else:
        os.mkfifo(where / "pipe.py")
        name, what = "pkg/pipe.py", "is neither a file nor a folder"
    with pytest.raises(UsageError) as e:
        measure([root], ["python3", "main.py"])
    assert f"{root / name} {what}" in str(e.value)
    assert "the measurement does not cover" in str(e.value)
    # The same tree without it measures as before: only the refused entry was in the way.
    if kind == "pycache":
        shutil.rmtree(where / "__pycache__")
    else:
        ((root / name) if kind != "fifo" else where / "pipe.py").unlink()
    assert measure([root], ["python3", "main.py"]) == measure(
        [_code(tmp_path / "b")], ["python3", "main.py"]
    )


def test_a_code_path_inside_a_compiled_cache_is_refused(tmp_path: Path) -> None:
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    with pytest.raises(UsageError, match="is a compiled cache"):
        measure([cache], ["true"])
