"""Fixtures shared by the ml tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _skops_tamper import SemlForks


@pytest.fixture(scope="session")
def seml_forks() -> Iterator[SemlForks]:
    """One fork server per test process (see `SemlForks`)."""
    forks = SemlForks()
    try:
        yield forks
    finally:
        forks.close()
