"""Fixtures for the attestation service tests: one real HTTPS server per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _cas import CasProcess, running_cas


@pytest.fixture(scope="module")
def cas_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CasProcess]:
    """A real `seml cas serve` over HTTPS on a free loopback port (module-scoped)."""
    with running_cas(tmp_path_factory.mktemp("cas") / "state") as cas:
        yield cas
