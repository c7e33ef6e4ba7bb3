"""Every command's --help renders: option help is Rich markup, so a literal `[...]` in it (a
path like `files[/specs/a.yaml]`, a YAML list) must be escaped or `--help` crashes."""

from __future__ import annotations

import pytest
import typer

from seml.cli import main
from seml.cli._app import app, register


def _paths(group: typer.Typer, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for info in group.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        found.append((*prefix, name))
    for sub in group.registered_groups:
        if sub.name and sub.typer_instance is not None:
            found.append((*prefix, sub.name))
            found.extend(_paths(sub.typer_instance, (*prefix, sub.name)))
    return found


def test_every_commands_help_renders(capsys: pytest.CaptureFixture[str]) -> None:
    register()
    paths = _paths(app, ())
    assert len(paths) > 40 and ("session", "update") in paths
    failed = []
    for path in paths:
        try:
            code = main([*path, "--help"])
        except SystemExit as e:  # typer may exit after printing help
            code = int(e.code or 0)
        out, err = capsys.readouterr()
        if code != 0 or "usage:" not in out.lower():
            failed.append((" ".join(path), code, err[-300:]))
    assert not failed, failed
