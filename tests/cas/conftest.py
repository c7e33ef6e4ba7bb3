"""Fixtures of the attestation service's tests: one in-process service per test module, and
one client of it (closing a client closes the in-process transport, so the module shares
one). A module that needs a real server defines its own `cas`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _cas_inprocess import InProcessCas, in_process_cas
from seml.cas import CasClient


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessCas]:
    with in_process_cas(tmp_path_factory.mktemp("cas") / "state") as service:
        yield service


@pytest.fixture(scope="module")
def client(cas: InProcessCas) -> Iterator[CasClient]:
    with cas.client() as c:
        yield c
