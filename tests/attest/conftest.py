"""Fixtures for the attestation tests: an attestation service in-process (no HTTP), trusting
the stand-in AMD/NVIDIA hierarchy of _fake_hw alongside simulation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from _fake_hw import FakeAmd, FakeGpu
from _fake_verifiers import fake_verifier
from seml.cas._identity import init_state_dir
from seml.cas._service import CasService
from seml.cas._state import StateStore


@pytest.fixture
def fake_amd() -> FakeAmd:
    return FakeAmd()


@pytest.fixture
def fake_gpu() -> FakeGpu:
    return FakeGpu()


@pytest.fixture
def cas_service(tmp_path: Path, fake_amd: FakeAmd, fake_gpu: FakeGpu) -> Iterator[CasService]:
    identity = init_state_dir(
        tmp_path / "cas", hosts=["127.0.0.1"], now=dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    )
    store = StateStore(identity.database, identity.sign)
    try:
        yield CasService(identity, store, fake_verifier(fake_amd, fake_gpu))
    finally:
        store.close()
