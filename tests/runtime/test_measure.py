from __future__ import annotations

from pathlib import Path

import pytest

from seml.errors import UsageError
from seml.runtime import measure


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
