"""Manifests as YAML documents, with a header saying where they came from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

__all__ = ["manifest_yaml"]


class _Dumper(yaml.SafeDumper):
    """Writes a repeated dict (the Job's labels on the pod template) out again, not as an
    anchor and alias: plainer to read and to diff."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def manifest_yaml(manifests: Sequence[dict[str, Any]], header: Sequence[str] = ()) -> str:
    """`manifests` as one YAML stream (documents separated by ---), `header` as comments."""
    lines = [f"# {line}".rstrip() for line in header]
    docs = [
        yaml.dump(m, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
        for m in manifests
    ]
    return "\n".join(lines) + ("\n" if lines else "") + "---\n".join(docs)
