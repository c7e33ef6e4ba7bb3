"""Shared test configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"

settings.register_profile(
    "seml", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("seml")


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    """`../shared/testdata`, or a skip that says why when this checkout has no copy beside it."""
    if not SHARED_TESTDATA.is_dir():
        pytest.skip(f"shared test vectors not found at {SHARED_TESTDATA} (clone beside ../shared)")
    return SHARED_TESTDATA
