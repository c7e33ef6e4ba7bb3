"""What a client can make the service hold, and for how long: bounded everywhere.

Two layers, because no one layer sees everything:

- `RequestLimits`, an ASGI middleware around the whole app, reads every request body itself
  before any endpoint runs: a declared Content-Length above `MAX_BODY` is refused without
  reading a byte, and a body without a length (chunked) is counted as it streams and refused at
  the first byte past the limit; the whole body must arrive within `BODY_TIMEOUT`. The app then
  gets the body from memory, so no endpoint (nor FastAPI's own parsing) can buffer more. An
  over-long path is refused here too.
- `bounded_protocol()`, the HTTP/1.1 protocol uvicorn runs per connection, with two more
  bounds uvicorn does not set: a request's line and headers must arrive within
  `HEADER_TIMEOUT` of its first byte (or of the connection's start) and may not exceed
  `MAX_HEADER` bytes. Idle keep-alive connections close after `KEEP_ALIVE` (uvicorn's own
  timer), and TLS handshakes after `TLS_HANDSHAKE` (see `seml.cas._serve`).

`ConnectionDeadlines` carries the handshake, head and closing deadlines a service runs with:
the defaults above, or lower ones (`SEML_CAS_CONNECTION_DEADLINE`; the tests use it to see
each deadline act without waiting it out).

So a slow, stalled or endless client holds a connection for seconds, not forever, and at most
`MAX_BODY` bytes of memory for a few seconds.

`RequestLimits` is also where answers wait for the disk: given `durable` (the store's group
commit), no answer's first byte leaves before every commit made until then is synced, so an
answer never tells of (or hands out a secret released by) a write a power loss could undo.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from seml._environ import seconds
from seml.errors import SemlError, UsageError

__all__ = [
    "BODY_TIMEOUT",
    "DEADLINE_ENV",
    "HEADER_TIMEOUT",
    "KEEP_ALIVE",
    "MAX_BODY",
    "MAX_HEADER",
    "MAX_PATH",
    "TLS_HANDSHAKE",
    "TLS_SHUTDOWN",
    "ConnectionDeadlines",
    "RequestLimits",
    "bounded_protocol",
]

# Evidence envelopes carry at most ~1 MiB of collateral; sessions are far smaller.
MAX_BODY = 2 * 1024 * 1024
MAX_PATH = 1024  # the longest path an endpoint takes is far shorter
MAX_HEADER = 64 * 1024  # request line and headers
BODY_TIMEOUT = 30.0  # 2 MiB in 30 s: a link below 70 KB/s is not a client we wait for
HEADER_TIMEOUT = 10.0
KEEP_ALIVE = 15.0
TLS_HANDSHAKE = 10.0
TLS_SHUTDOWN = 5.0  # after a refusal: how long a closing connection may take to say goodbye
DEADLINE_ENV = "SEML_CAS_CONNECTION_DEADLINE"


@dataclass(frozen=True)
class ConnectionDeadlines:
    """How long one connection may take to shake hands, to send a request's head, and to close
    after a refusal. `capped(text)` lowers each to at most `text` seconds (the value of
    `DEADLINE_ENV`, read by `seml cas serve`); it never raises one, so no setting can let a
    stalled client hold a connection longer than the defaults."""

    tls_handshake: float = TLS_HANDSHAKE
    header: float = HEADER_TIMEOUT
    tls_shutdown: float = TLS_SHUTDOWN

    @classmethod
    def capped(cls, text: str | None) -> ConnectionDeadlines:
        if not text:
            return cls()
        cap = seconds({DEADLINE_ENV: text}, DEADLINE_ENV, math.inf)
        return cls(min(TLS_HANDSHAKE, cap), min(HEADER_TIMEOUT, cap), min(TLS_SHUTDOWN, cap))


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Refused(Exception):
    def __init__(self, status: int, error: SemlError) -> None:
        self.status = status
        self.error = error


class RequestLimits:
    """ASGI middleware: bodies and paths bounded before the app sees the request.

    `on_refusal(request, error)` is told about each refusal (the service logs it). `durable()`
    returns once every commit so far is on the disk: each answer waits for it, except those of
    `stateless` (method, path) requests, whose answers depend on nothing stored. If it raises,
    the app's answer is dropped and a 503 carrying the error goes instead."""

    def __init__(
        self,
        app: App,
        *,
        on_refusal: Callable[[str, SemlError], None],
        durable: Callable[[], Awaitable[None]] | None = None,
        stateless: frozenset[tuple[str, str]] = frozenset(),
        max_body: int = MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.app = app
        self.on_refusal = on_refusal
        self.durable = durable
        self.stateless = stateless
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.durable is not None and (scope.get("method"), scope.get("path")) not in (
            self.stateless
        ):
            send = _after(self.durable, send)
        try:
            body = await self._read(scope, receive)
        except _Refused as r:
            request = f"{scope.get('method', '?')} {scope.get('path', '')}"
            self.on_refusal(request, r.error)
            await _answer(send, r.status, r.error)
            return
        if body is None:  # the client went away
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # only a disconnect can follow

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes | None:
        if len(scope.get("path", "")) > MAX_PATH:
            raise _Refused(414, UsageError(f"request path longer than {MAX_PATH} characters"))
        declared = [v for k, v in scope.get("headers", []) if k == b"content-length"]
        if declared:
            text = declared[0].decode("latin-1").strip()
            if len(declared) > 1 or not text.isdigit():
                raise _Refused(400, UsageError("malformed Content-Length"))
            if int(text) > self.max_body:
                raise _Refused(413, UsageError(f"request body larger than {self.max_body} bytes"))
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body:
                        raise _Refused(
                            413, UsageError(f"request body larger than {self.max_body} bytes")
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise _Refused(
                408, UsageError(f"request body not received within {self.body_timeout:.0f} s")
            ) from None


def _after(durable: Callable[[], Awaitable[None]], send: Send) -> Send:
    """`send`, holding the answer's start until `durable()` returns; if it raises, a 503 with
    its message instead of the answer."""
    failed = False

    async def durable_send(message: Message) -> None:
        nonlocal failed
        if failed:
            return  # the rest of the answer that was held back
        if message["type"] == "http.response.start":
            try:
                await durable()
            except SemlError as e:
                failed = True
                await _answer(send, 503, e)
                return
        await send(message)

    return durable_send


async def _answer(send: Send, status: int, error: SemlError) -> None:
    from seml.cas._protocol import error_kind

    payload = json.dumps({"error": error_kind(error), "message": str(error)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                # The rest of the body is never read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _Coalescing:
    """A response's writes to `transport`, joined: uvicorn writes an answer's head and body
    separately, and over TLS each write costs its own record and system call. Writes made in
    one step of the event loop go out as one, at the end of that step (or before a close)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def bounded_protocol(
    *, header_timeout: float = HEADER_TIMEOUT, max_header: int = MAX_HEADER
) -> type:
    """uvicorn's httptools protocol with a deadline and a size limit on each request's head,
    whose answers go out in one write each (`_Coalescing`)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_bytes = 0
                self._head_timer = self.loop.call_later(header_timeout, self._head_too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()  # a new connection owes its first request's head

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            cycle = getattr(self, "cycle", None)  # made just now; its task has not run yet
            if cycle is not None and not isinstance(cycle.transport, _Coalescing):
                cycle.transport = _Coalescing(self.transport, self.loop)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.transport.is_closing():
                # A refused request's body may still be streaming in: read no more of it (the
                # connection goes once TLS_SHUTDOWN has passed).
                with contextlib.suppress(RuntimeError, AttributeError):
                    self.transport.pause_reading()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_timer is not None:  # still reading a head: count it
                self._head_bytes += len(data)
                if self._head_bytes > max_header and not self.transport.is_closing():
                    self._disarm()
                    self.send_400_response("request head too large")

    return BoundedHttpToolsProtocol
