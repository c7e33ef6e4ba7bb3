"""One keep-alive HTTPS connection to the attestation service, on the standard library only.

`seml run` starts once per service and talks to the service four or five times; httpx (with
httpcore, h11, anyio, and trio when it is installed) costs more CPU to import than everything
else the runtime does before the command starts. `http.client` with the pinned SSL context
(`CasClient` builds it) does the same job: the certificate is checked at every handshake
against the one trusted anchor, exactly as before.

A connection the service closed while idle (its keep-alive timeout) is noticed before the next
request (the socket reads as ready: EOF) and replaced, so a request is never sent on a dead
connection and never resent: the attestation is not idempotent.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

__all__ = ["HttpFailure", "PinnedConnection"]

_USER_AGENT = "seml"


class HttpFailure(Exception):
    """The request did not get an HTTP answer (connection, TLS or protocol failure)."""


class PinnedConnection:
    """Requests to one HTTPS origin over one connection at a time (thread-safe: requests from
    several threads take turns)."""

    def __init__(self, url: str, context: ssl.SSLContext, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.hostname is None:  # pragma: no cover - the caller checked the URL
            raise ValueError(f"no host in {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 443
        self._context = context
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: http.client.HTTPSConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """(status, body) of one request; HttpFailure if no answer came."""
        if params:
            path += "?" + urlencode({k: str(v) for k, v in params.items()})
        sent = {"User-Agent": _USER_AGENT, "Accept": "application/json", **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/json"
        with self._lock:
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=sent)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                raise HttpFailure(str(e) or type(e).__name__) from e
            if response.will_close:
                self._drop()
            return response.status, data

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connection(self) -> http.client.HTTPSConnection:
        conn = self._conn
        if conn is not None and conn.sock is not None and _closed_by_peer(conn.sock):
            self._drop()
            conn = None
        if conn is None:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._context
            )
            self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether an idle keep-alive socket has something to read: EOF (or unexpected bytes),
    either way it cannot carry the next request."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
