"""Claims a workload under `seml run` makes about what it did (its completion report).

The runtime names a file in ``SEML_REPORT``; a program merges its claims into it, and after the
command exits 0 the runtime posts them to the attestation service with the capability only the
attested workload's runtime holds (schema: `seml.receipt.Claims`, checked by the service).
Plain JSON, so a workload pays no import for it; outside `seml run` (no variable) nothing is
written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from seml._fs import write_atomic
from seml.errors import StorageError

__all__ = ["RELEASED_VARIABLE", "REPORT_VARIABLE", "add_claims", "claims_file"]

REPORT_VARIABLE = "SEML_REPORT"
# Set by the attestation service for a model service gated by a release rule: the SHA-256 (hex)
# of the model manifest its owners approved (`seml pull` refuses any other).
RELEASED_VARIABLE = "SEML_RELEASED_MANIFEST"


def claims_file(environ: dict[str, str] | os._Environ[str] | None = None) -> Path | None:
    """The claims file the runtime named, or None outside `seml run` (read at the CLI edge)."""
    value = (os.environ if environ is None else environ).get(REPORT_VARIABLE, "")
    return Path(value) if value else None


def add_claims(path: Path | None, **claims: Any) -> None:
    """Merge `claims` (plain data) into the claims file; nothing when `path` is None."""
    if path is None:
        return
    current: dict[str, Any] = {}
    try:
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict):
            current = loaded
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        raise StorageError(f"{path}: unreadable claims file: {e}") from e
    current.update(claims)
    write_atomic(path, json.dumps(current, sort_keys=True), mode=0o600)
