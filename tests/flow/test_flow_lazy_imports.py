"""The flow's programs run once per phase in both modes: they import only what they use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import seml.flow

_CHECK = """\
import sys
from seml.flow import copy_in, copy_out, fetch, predict_all, train_all
heavy = sorted(m for m in ("seml.cas", "seml.policy", "seml.flow._flow", "seml.flow._demo",
                           "httpx", "pydantic", "yaml") if m in sys.modules)
print(",".join(heavy))
"""


def test_the_programs_do_not_import_the_flow_driver() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CHECK], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == ""


def test_every_public_name_resolves_and_an_unknown_one_is_refused() -> None:
    for name in seml.flow.__all__:
        assert getattr(seml.flow, name) is not None
    assert seml.flow.Flow.__module__ == "seml.flow._flow"
    assert set(seml.flow.__all__) <= set(dir(seml.flow))
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = seml.flow.Nope
