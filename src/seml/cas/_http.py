"""One keep-alive HTTPS connection to the attestation service, on the standard library's
`socket` and `ssl` only.

`seml run` starts once per service and talks to the service four or five times. httpx (with
httpcore, h11, anyio, and trio when it is installed) cost more CPU to import than everything
else the runtime did before the command started, and `http.client` still loads the `email`
package to parse headers (~20 ms of CPU per start). The service speaks plain HTTP/1.1 with
JSON bodies, so the little of the protocol used here is written out: a request with a
Content-Length, an answer with a Content-Length, chunked, or ended by the connection's close.
The first TLS connection is the one on which `CasClient` read and pinned the certificate;
every later one uses the pinned SSL context: its certificate is checked at the handshake
against the one trusted anchor.

A connection the service closed while idle (its keep-alive timeout) is noticed before the next
request (the socket reads as ready: EOF) and replaced, so a request is never sent on a dead
connection and never resent: the attestation is not idempotent.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import BinaryIO
from urllib.parse import urlencode, urlsplit

__all__ = ["HttpFailure", "PinnedConnection"]

_USER_AGENT = "seml"
_MAX_LINE = 65536  # a status or header line
_MAX_HEADERS = 100
_MAX_BODY = 64 << 20  # far above any answer of the service; a bound for a broken one


class HttpFailure(Exception):
    """The request did not get an HTTP answer (connection, TLS or protocol failure)."""


class _Connection:
    """One TLS connection: requests go out in order, each answer is read whole."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self._file: BinaryIO = sock.makefile("rb")

    @classmethod
    def open(cls, host: str, port: int, context: ssl.SSLContext, timeout: float) -> _Connection:
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            return cls(context.wrap_socket(raw, server_hostname=host))
        except BaseException:
            raw.close()
            raise

    def close(self) -> None:
        self._file.close()
        self.sock.close()

    def exchange(self, head: bytes, body: bytes | None) -> tuple[int, bytes, bool]:
        """(status, body, whether the connection must close) of one request."""
        self.sock.sendall(head if body is None else head + body)
        status, version, headers = self._read_head()
        while 100 <= status < 200:  # interim answers carry no body
            status, version, headers = self._read_head()
        close = "close" in headers.get("connection", "").lower() or version == "HTTP/1.0"
        if status in (204, 304):
            return status, b"", close
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return status, self._read_chunked(), close
        length = headers.get("content-length")
        if length is None:  # the body ends with the connection
            return status, self._read(_MAX_BODY + 1, exact=False), True
        if not length.isdigit() or int(length) > _MAX_BODY:
            raise HttpFailure(f"bad Content-Length {length[:40]!r}")
        return status, self._read(int(length)), close

    def _line(self) -> bytes:
        line = self._file.readline(_MAX_LINE + 1)
        if not line:
            raise HttpFailure("the connection closed before the answer")
        if len(line) > _MAX_LINE or not line.endswith(b"\n"):
            raise HttpFailure("answer line too long or cut")
        return line.rstrip(b"\r\n")

    def _read_head(self) -> tuple[int, str, dict[str, str]]:
        version, _, rest = self._line().decode("latin-1").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
            raise HttpFailure(f"not an HTTP/1.x answer: {version[:20]!r}")
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = self._line()
            if not line:
                return int(code), version, headers
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise HttpFailure(f"bad header line {name[:40]!r}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raise HttpFailure(f"more than {_MAX_HEADERS} header lines")

    def _read(self, n: int, *, exact: bool = True) -> bytes:
        data = self._file.read(n)
        if exact and len(data) != n:
            raise HttpFailure(f"the answer ended after {len(data)} of {n} bytes")
        if not exact and len(data) > _MAX_BODY:
            raise HttpFailure(f"answer larger than {_MAX_BODY} bytes")
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpFailure(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            total += size
            if size < 0 or total > _MAX_BODY:
                raise HttpFailure(f"answer larger than {_MAX_BODY} bytes")
            parts.append(self._read(size))
            if self._line():
                raise HttpFailure("chunk not followed by its line end")


class PinnedConnection:
    """Requests to one HTTPS origin over one connection at a time (thread-safe: requests from
    several threads take turns)."""

    def __init__(
        self,
        url: str,
        context: ssl.SSLContext,
        timeout: float,
        *,
        first: ssl.SSLSocket | None = None,
    ) -> None:
        """`first`: an open TLS connection to the origin whose certificate the caller already
        checked (the pin probe's), used for the first requests; later connections use
        `context`."""
        parts = urlsplit(url)
        if parts.hostname is None:  # pragma: no cover - the caller checked the URL
            raise ValueError(f"no host in {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 443
        # As http.client sends it: the port only when it is not the default one.
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = host if self._port == 443 else f"{host}:{self._port}"
        self._context = context
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: _Connection | None = _Connection(first) if first is not None else None

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
        sent = {
            "Host": self._authority,
            "User-Agent": _USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            **(headers or {}),
        }
        if body is not None:
            sent["Content-Type"] = "application/json"
        if body is not None or method in ("POST", "PUT", "PATCH"):
            sent["Content-Length"] = str(len(body or b""))
        with self._lock:
            try:
                head = _head(method, path, sent)
                conn = self._connection()
                status, data, close = conn.exchange(head, body)
            except (OSError, ValueError, HttpFailure) as e:
                self._drop()
                if isinstance(e, HttpFailure):
                    raise
                raise HttpFailure(str(e) or type(e).__name__) from e
            if close:
                self._drop()
            return status, data

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and _closed_by_peer(conn.sock):
            self._drop()
            conn = None
        if conn is None:
            conn = _Connection.open(self._host, self._port, self._context, self._timeout)
            self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _head(method: str, path: str, headers: Mapping[str, str]) -> bytes:
    """The request line and headers; nothing that could end a line or the request line early
    gets in (a name, token or path from elsewhere is data, never protocol)."""
    if not path.startswith("/") or any(c in path for c in " \r\n\0"):
        raise HttpFailure(f"refusing to send the path {path[:60]!r}")
    lines = [f"{method} {path} HTTP/1.1"]
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\0") or ":" in name:
            raise HttpFailure(f"refusing to send the header {name[:40]!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _closed_by_peer(sock: ssl.SSLSocket) -> bool:
    """Whether an idle keep-alive connection cannot carry the next request: EOF, or bytes
    nobody asked for. A socket that reads as ready may hold only TLS's own records (TLS 1.3
    servers send session tickets after the handshake, which a connection that has not read yet
    still holds): those are consumed here, and the connection stays."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    timeout = sock.gettimeout()
    try:
        sock.settimeout(0)
        sock.recv(1)  # b"" (EOF) or an unasked byte: either way the connection is done
    except ssl.SSLWantReadError:
        return False  # no application data: only TLS records were waiting
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            sock.settimeout(timeout)
    return True
