"""The console's app in this process, in front of the attestation service's app in this process.

`ConsoleUnderTest.browser()` is an httpx client that talks to the console as a browser would
(cookies kept, Host set to the console's loopback address); `.login()` opens a session with
the access token, `.csrf()` reads the CSRF token a page carries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from _cas_inprocess import InProcessCas, SyncASGITransport, in_process_cas
from seml.cas import CasClient
from seml.console import ConsoleGuard, PartyDesk, create_console_app
from seml.policy import PartyKey

PORT = 48123
BASE = f"http://127.0.0.1:{PORT}"


@dataclass
class ConsoleUnderTest:
    guard: ConsoleGuard
    transport: SyncASGITransport
    app: object

    def browser(self, **kw: object) -> httpx.Client:
        return httpx.Client(transport=self.transport, base_url=BASE, **kw)  # type: ignore[arg-type]

    def login(self) -> httpx.Client:
        b = self.browser()
        r = b.get(f"/?token={self.guard.token}")
        assert r.status_code == 303, r.text
        return b


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert m, "the page carries no CSRF token"
    return m.group(1)


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessCas]:
    with in_process_cas(tmp_path_factory.mktemp("cas") / "state") as cas:
        yield cas


@pytest.fixture(scope="module")
def cas_client(cas: InProcessCas) -> Iterator[CasClient]:
    with cas.client() as c:
        yield c


def console_for(
    cas: InProcessCas, key: PartyKey, label: str, state_dir: Path | None = None
) -> Iterator[ConsoleUnderTest]:
    client = cas.client()
    guard = ConsoleGuard(PORT)
    app = create_console_app(PartyDesk(client, key, label, state_dir=state_dir), guard)
    transport = SyncASGITransport(app)
    try:
        yield ConsoleUnderTest(guard, transport, app)
    finally:
        # Only the console's transport: closing `client` would close the service's in-process
        # transport, which `in_process_cas` closes when the module is done.
        transport.close()
