"""Run `seml` as one machine would: its own configuration folder, no other SEML_* variable."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

from seml.cli import seml_command


def seml_as(
    config: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`seml ARGS` with its configuration in `config` (SEML_CONFIG_DIR), plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEML_")}
    base["SEML_CONFIG_DIR"] = str(config)
    return subprocess.run(
        [*seml_command(), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def seml_in(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`seml_as` in this process: the same entry point (`seml.cli.main`), environment and
    separate stdout/stderr, without the ~0.6 s start of a new interpreter per call."""
    import pytest

    from seml.cli import _machine, main

    # A process reads its profile once (`_machine.selected` caches it): each call here is a
    # process of its own, which reads what earlier calls wrote and leaves nothing behind.
    # Unlike a new process, it sees every command module earlier calls registered: a test of
    # what a lone command does without a profile (`seml --profile NEW init`) uses `seml_as`.
    _machine._cache.clear()
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("SEML_")]:
            mp.delenv(name)
        mp.setenv("SEML_CONFIG_DIR", str(config))
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(args))
        finally:
            _machine._cache.clear()
    return subprocess.CompletedProcess(
        [*seml_command(), *args], code, out.getvalue(), err.getvalue()
    )
