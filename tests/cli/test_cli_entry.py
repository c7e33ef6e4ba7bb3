"""The `seml` entry point: errors, exit codes, and `seml run`'s fast option parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from seml.cli import _run_fast, main
from seml.errors import UsageError


def test_run_help_comes_from_its_one_parser_without_typer() -> None:
    code = (
        "import sys; from seml.cli import main; rc = main(['run', '--help']); "
        "assert 'typer' not in sys.modules, 'typer loaded'; sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == _run_fast.help_text()
    for option in ("--session", "--service", "--code", "--mount", "--no-simulation", "--cas"):
        assert option in out.stdout
    assert out.stdout.startswith("usage: seml run --session NAME --service NAME")


def test_seml_help_lists_run_with_the_same_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listing = " ".join(capsys.readouterr().out.split())
    assert " ".join(_run_fast.SUMMARY.split()) in " ".join(listing.replace("│", " ").split())


def test_typer_app_hands_run_to_the_same_parser() -> None:
    from seml.cli._app import app, register

    register(("_run",))
    with pytest.raises(UsageError, match="required: --session"):
        app(args=["run", "--service", "x"], prog_name="seml", standalone_mode=False)


def test_fast_parser_reads_options_and_the_command_after_double_dash() -> None:
    options, command = _run_fast.parse(
        [
            "--session",
            "s",
            "--service",
            "x",
            "--code",
            "a",
            "--code",
            "b",
            "--no-simulation",
            "--mount",
            "workspace",
            "--",
            "python3",
            "--session",
            "-v",
        ]
    )
    assert (options.session, options.service) == ("s", "x")
    assert options.code == [Path("a"), Path("b")]
    assert options.simulation is False
    assert options.mount == "workspace"
    assert command == ["python3", "--session", "-v"]  # the command's own options are its own


def test_run_without_session_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--service", "x"]) == 2
    assert "--session" in capsys.readouterr().err


def test_run_with_a_bad_mount_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--session", "s", "--service", "x", "--mount", "chroot", "--", "true"])
    assert code == 2
    assert "--mount" in capsys.readouterr().err


def test_unknown_command_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert "seml" in capsys.readouterr().out


def test_library_error_prints_one_line_and_its_exit_code(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["volume", "inspect", str(tmp_path / "missing")]) == UsageError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("seml: error: no protected volume at ")
    assert "Traceback" not in err


def test_options_after_the_command_or_after_double_dash_are_not_seml_s(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad_run = ["run", "--session", "s", "--service", "x", "--mount", "chroot", "--"]
    assert main([*bad_run, "prog", "-v"]) == 2
    assert "Traceback" not in capsys.readouterr().err  # the workload's -v, not seml's
    assert main(["-v", *bad_run, "prog"]) == 2
    assert "Traceback" in capsys.readouterr().err
    missing = str(tmp_path / "missing")
    assert main(["volume", "inspect", missing, "--", "-v"]) != 0
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--verbose", "volume", "inspect", missing]) != 0
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("seml: error:")


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (ValueError("boom"), 1, "seml: error: internal error (ValueError: boom); this is a bug"),
        (
            FileNotFoundError(2, "No such file or directory", "/nowhere/x"),
            6,
            "seml: error: No such file or directory: /nowhere/x",
        ),
        (KeyError("k"), 1, "seml: error: internal error (KeyError: 'k')"),
    ],
)
def test_a_foreign_exception_that_escapes_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    code: int,
    line: str,
) -> None:
    import seml.cli

    def fail(*args: object) -> int:
        raise error

    monkeypatch.setattr(seml.cli, "_typer_main", fail)
    assert main(["keys", "new", "x"]) == code
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1 and "Traceback" not in err
    assert main(["--verbose", "keys", "new", "x"]) == code
    assert "Traceback" in capsys.readouterr().err  # asked for


def test_every_seml_command_first_wipes_the_workspaces_of_killed_runs(tmp_path: Path) -> None:
    """A runtime killed by SIGKILL leaves its workspace (secrets, plaintext) behind; any next
    seml command on the machine removes it, and only workspaces whose owner is gone."""
    import os
    import tempfile

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    base = Path(tempfile.gettempdir())
    stale = base / f"seml-ws-{dead.pid}-test"
    live = base / f"seml-ws-{os.getpid()}-test"
    for folder in (stale, live):
        folder.mkdir(mode=0o700)
        (folder / "secret.txt").write_text("held")
    try:
        assert main(["keys", "--help"]) == 0
        assert not stale.exists()
        assert (live / "secret.txt").read_text() == "held"
    finally:
        import shutil

        for folder in (stale, live):
            shutil.rmtree(folder, ignore_errors=True)
