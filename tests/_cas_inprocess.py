"""The attestation service's app in this process, reached through `CasClient(transport=...)`.

Unit tests of the service use this: the same FastAPI app, service and SQLite state as
`seml cas serve`, without TLS, sockets or a child process. What needs real HTTPS (pinning, a
swapped certificate, restarts, the CLI) runs against `seml.cas.LocalCas` instead.

`CasClient` is synchronous (a workload under `seml run` has no event loop), while
`httpx.ASGITransport` only serves async clients and starlette's `TestClient` keeps its
transport private. `SyncASGITransport` bridges the two: each request runs through
`httpx.ASGITransport` on one event loop kept in a helper thread by anyio's blocking portal, so
the app's loop-bound state lives on one loop for the whole test, as under uvicorn.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx

from seml.attest import default_verifier
from seml.cas import CasClient, init_state_dir
from seml.cas._app import create_app
from seml.cas._service import CasService
from seml.cas._state import StateStore

__all__ = ["InProcessCas", "SyncASGITransport", "in_process_cas"]

URL = "https://cas.in-process"


class SyncASGITransport(httpx.BaseTransport):
    """A synchronous httpx transport that calls an ASGI app in this process."""

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._stack = contextlib.ExitStack()
        self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        return self._portal.call(self._send, request.method, request.url, request.headers, content)

    async def _send(
        self, method: str, url: httpx.URL, headers: httpx.Headers, content: bytes
    ) -> httpx.Response:
        request = httpx.Request(method, url, headers=headers, content=content)
        response = await self._asgi.handle_async_request(request)
        body = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    def close(self) -> None:
        self._stack.close()


@dataclass
class InProcessCas:
    directory: Path
    service: CasService
    transport: SyncASGITransport

    def client(self) -> CasClient:
        return CasClient(URL, self.service.identity.fingerprint, transport=self.transport)


@contextlib.contextmanager
def in_process_cas(directory: Path) -> Iterator[InProcessCas]:
    """A fresh service in `directory` (keys, SQLite state), its app served in this process."""
    identity = init_state_dir(directory, hosts=["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    store = StateStore(identity.database, identity.sign)
    service = CasService(identity, store, default_verifier())
    transport = SyncASGITransport(create_app(service))
    try:
        yield InProcessCas(directory, service, transport)
    finally:
        transport.close()
        store.close()
