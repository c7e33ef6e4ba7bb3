"""The `seml` entry point: errors, exit codes, and `seml run`'s fast option parser."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from seml.cli import _run_fast, main


def _typer_run_options() -> set[str]:
    from seml.cli._app import app, register

    register(("_run",))
    group = typer.main.get_command(app)
    run = group.commands["run"]  # type: ignore[attr-defined]
    names: set[str] = set()
    for param in run.params:
        names.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("--"))
    names.discard("--help")
    return names


def test_fast_parser_knows_exactly_the_options_typer_declares() -> None:
    assert _typer_run_options() == set(_run_fast.OPTIONS)


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
    assert main(["volume", "inspect", str(tmp_path / "missing")]) != 0
    err = capsys.readouterr().err
    assert err.startswith("seml: error:")
    assert "Traceback" not in err
