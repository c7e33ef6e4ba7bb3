"""Fixtures shared by the ml tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from _skops_tamper import SemlForks


@pytest.fixture(scope="session")
def seml_forks() -> Iterator[SemlForks]:
    """One fork server per test process (see `SemlForks`)."""
    forks = SemlForks()
    try:
        yield forks
    finally:
        forks.close()


@pytest.fixture(scope="module", autouse=True)
def _one_compute_thread() -> Iterator[None]:
    """Models fit and predict in this process with one OpenMP/BLAS thread. `make test` runs two
    test workers on two cores: a second thread per worker only oversubscribes them, and on
    iris-sized data each parallel loop then waits at a barrier for a descheduled thread
    (a default HistGradientBoostingClassifier fit took 2.3 s instead of 0.3 s). Results do not
    depend on the thread count; no test here is about threads."""
    with threadpool_limits(limits=1):
        yield
