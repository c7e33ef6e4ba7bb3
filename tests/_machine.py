"""Run `seml` as one machine would: its own configuration folder, no other SEML_* variable."""

from __future__ import annotations

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
