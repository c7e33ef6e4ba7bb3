"""The HTTP face of the service (FastAPI). Thin: parse, call `CasService`, answer.

Handlers are `async def` and call the (fast, single-connection) store directly on the event
loop: there is no thread hop per request, and SQLite sees one writer at a time. Every request
passes `RequestLimits` first (bounded body, read deadline, bounded path), and every answer
waits there until the writes before it are durable (`StateStore.durable`, group commit);
`create_app` returns the app wrapped in it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from seml.attest._evidence_wire import EvidenceWire
from seml.cas._limits import MAX_BODY, Receive, RequestLimits, Scope, Send
from seml.cas._protocol import error_kind
from seml.cas._refusals import MAX_REASON, clip
from seml.cas._results import AuditPage, SessionVersions
from seml.cas._service import CasService, NotFoundError
from seml.errors import (
    AttestationError,
    IntegrityError,
    NetworkError,
    PolicyError,
    SemlError,
    StorageError,
    UsageError,
)
from seml.policy import SessionSignature

__all__ = ["MAX_BODY", "create_app", "routes"]

_STATUS: list[tuple[type[SemlError], int]] = [
    (NotFoundError, 404),
    (UsageError, 400),
    (PolicyError, 403),
    (AttestationError, 403),
    (IntegrityError, 500),
    (StorageError, 503),
    (NetworkError, 502),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitRequest(_Body):
    document: dict[str, Any]
    signatures: list[SessionSignature] = Field(max_length=64)
    provided: dict[str, str] = Field(default_factory=dict)  # name -> base64 sealed box


class AttestRequest(_Body):
    session: str = Field(max_length=64)
    service: str = Field(max_length=64)
    session_hash: str | None = Field(default=None, max_length=80)
    nonce: str = Field(max_length=200)
    public_key: str = Field(max_length=100)
    evidence: EvidenceWire


class VolumeSet(_Body):
    expected: int = Field(ge=0)
    version: int = Field(ge=1)
    tag: str = Field(max_length=200)


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{what} is not base64") from None


def _party(
    party: str | None, nonce: str | None, signature: str | None
) -> tuple[str | None, bytes | None, bytes | None]:
    """A party's signed challenge from its three headers (absent: None)."""
    return (
        party,
        None if nonce is None else _b64(nonce, "nonce"),
        None if signature is None else _b64(signature, "signature"),
    )


Party = Annotated[str | None, Header(max_length=64)]
Nonce = Annotated[str | None, Header(max_length=200)]
Signature = Annotated[str | None, Header(max_length=200)]
VolumeToken = Annotated[str, Header(max_length=300)]


async def _read_body(request: Request) -> bytes:
    """The request body: already read, within MAX_BODY, by `RequestLimits`."""
    return await request.body()


def _json(data: dict[str, Any]) -> Response:
    return Response(json.dumps(data).encode(), media_type="application/json")


def _describe(e: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in e.errors(include_url=False, include_input=False)[:5]
    )


def _error(e: SemlError) -> JSONResponse:
    status = next((code for cls, code in _STATUS if isinstance(e, cls)), 500)
    return JSONResponse(
        {"error": error_kind(e), "message": clip(str(e), 4 * MAX_REASON)}, status_code=status
    )


class _HotPaths:
    """ASGI: the endpoints every attestation calls (`hot`: (method, path) -> handler of the
    body) answered straight from the body `RequestLimits` has read, without the framework's
    middleware, routing and request objects in between; every other request goes to `app`.
    The same handlers serve those routes inside `app` too, so both ways answer alike."""

    def __init__(
        self, app: FastAPI, hot: Mapping[tuple[str, str], Callable[[bytes], Awaitable[Response]]]
    ) -> None:
        self.app = app
        self.hot = hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self.hot.get((scope.get("method", ""), scope.get("path", "")))
            if scope["type"] == "http"
            else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        message = await receive()  # the one message `RequestLimits` replays: the whole body
        response = await handler(message.get("body", b""))
        await response(scope, receive, send)


def routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every endpoint of an app made by `create_app`."""
    inner: Any = app.app if isinstance(app, RequestLimits) else app
    inner = inner.app if isinstance(inner, _HotPaths) else inner
    return sorted(
        (method, route.path)
        for route in inner.routes
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    )


def create_app(service: CasService) -> RequestLimits:
    app = FastAPI(title="SEML attestation service", docs_url=None, redoc_url=None, openapi_url=None)

    def log(request: str, e: SemlError, **details: str) -> None:
        # The refusal is answered even if the log cannot be written. Only the session, service
        # and volume it names are kept (bounded, see RefusalBook); never a hash or a party.
        kept = {k: v for k, v in details.items() if k in ("session", "service", "volume")}
        with contextlib.suppress(SemlError):
            service.log_refusal(request, e, time.time(), **kept)

    def refuse(request: str, e: SemlError, **details: str) -> JSONResponse:
        log(request, e, **details)
        return _error(e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()[:5]
        )
        return refuse(
            f"{request.method} {request.url.path}", UsageError(f"malformed request: {where}")
        )

    @app.exception_handler(404)
    async def _unknown(request: Request, exc: Exception) -> JSONResponse:
        return refuse(
            f"{request.method} {request.url.path}",
            NotFoundError("no such endpoint (see docs/formats.md for the service's API)"),
        )

    @app.exception_handler(405)
    async def _method(request: Request, exc: Exception) -> JSONResponse:
        e = UsageError(f"{request.method} is not allowed here")
        log(f"{request.method} {request.url.path}", e)
        return JSONResponse({"error": error_kind(e), "message": str(e)}, status_code=405)

    # For liveness and readiness probes: unauthenticated, so it says only whether the service
    # can answer (its database responds), nothing about sessions, keys or versions.
    @app.get("/healthz")
    async def healthz() -> Response:
        try:
            service.store.ping()
        except SemlError:
            return Response(b'{"status":"unavailable"}', 503, media_type="application/json")
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        return service.info().model_dump()

    # The two hot endpoints (every attestation calls both) parse and answer raw bytes: no
    # FastAPI body validation pass and no jsonable_encoder on the way out; `_HotPaths` calls
    # them without the framework at all.
    async def nonce_of(body: bytes) -> Response:
        value, expires = service.nonces.issue(time.time())
        return _json({"nonce": base64.b64encode(value).decode(), "expires": expires})

    @app.post("/v1/nonce")
    async def nonce() -> Response:
        return await nonce_of(b"")

    @app.post("/v1/sessions", response_model=None)
    async def submit(request: Request) -> dict[str, Any] | JSONResponse:
        try:
            body = SubmitRequest.model_validate_json(await request.body())
        except ValidationError as e:
            return refuse("submit", UsageError(f"malformed request: {_describe(e)}"))
        name = str(body.document.get("name", "?"))[:64]
        try:
            provided = {k: _b64(v, f"provided secret {k}") for k, v in body.provided.items()}
            record = service.submit(body.document, body.signatures, provided, time.time())
        except SemlError as e:
            return refuse("submit", e, session=name)
        return record.summary().model_dump(mode="json")

    @app.get("/v1/sessions/{name}", response_model=None)
    async def read(
        name: str,
        hash: Annotated[str | None, Query(max_length=80)] = None,
        x_seml_party: Party = None,
        x_seml_nonce: Nonce = None,
        x_seml_signature: Signature = None,
    ) -> dict[str, Any] | JSONResponse:
        try:
            party, nonce, signature = _party(x_seml_party, x_seml_nonce, x_seml_signature)
            records = service.read(
                name, hash_=hash, party=party, nonce=nonce, signature=signature, now=time.time()
            )
        except SemlError as e:
            return refuse("read", e, session=name[:64])
        return SessionVersions(versions=[r.answer() for r in records]).model_dump(
            mode="json", by_alias=True
        )

    async def attest_of(raw: bytes) -> Response:
        try:
            body = AttestRequest.model_validate_json(raw)
        except ValidationError as e:
            return refuse("attest", UsageError(f"malformed request: {_describe(e)}"))
        try:
            sealed = service.attest(
                session_name=body.session,
                service_name=body.service,
                session_hash_=body.session_hash,
                nonce=_b64(body.nonce, "nonce"),
                public_key=_b64(body.public_key, "public_key"),
                evidence=body.evidence.to_evidence(),
                now=time.time(),
            )
        except SemlError as e:
            return refuse("attest", e, session=body.session, service=body.service)
        return _json({"sealed": base64.b64encode(sealed).decode()})

    @app.post("/v1/attest")
    async def attest(request: Request) -> Response:
        return await attest_of(await request.body())

    @app.get("/v1/volumes/{owner}/{volume}", response_model=None)
    async def volume_get(
        owner: str, volume: str, x_seml_volume_token: VolumeToken
    ) -> dict[str, Any] | JSONResponse:
        try:
            version, tag = service.volume_get(owner, volume, x_seml_volume_token, now=time.time())
        except SemlError as e:
            return refuse("volume.get", e, session=owner[:64], volume=volume[:64])
        return {"version": version, "tag": tag}

    @app.post("/v1/volumes/{owner}/{volume}", response_model=None)
    async def volume_set(
        owner: str,
        volume: str,
        body: VolumeSet,
        x_seml_volume_token: VolumeToken,
    ) -> dict[str, Any] | JSONResponse:
        try:
            version, tag = service.volume_set(
                owner,
                volume,
                x_seml_volume_token,
                expected=body.expected,
                version=body.version,
                tag=body.tag,
                now=time.time(),
            )
        except SemlError as e:
            return refuse("volume.set", e, session=owner[:64], volume=volume[:64])
        return {"version": version, "tag": tag}

    # Without a session: the chain only (numbers, links, commitments, signatures), enough to
    # check its continuity and nothing else. With a session and its party's signed challenge
    # (X-Seml-Party, X-Seml-Nonce, X-Seml-Signature over `audit_challenge`): the content of the
    # entries that name that session too.
    @app.get("/v1/audit", response_model=None)
    async def audit(
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
        session: Annotated[str | None, Query(max_length=64)] = None,
        x_seml_party: Party = None,
        x_seml_nonce: Nonce = None,
        x_seml_signature: Signature = None,
    ) -> dict[str, Any] | JSONResponse:
        try:
            party, nonce, signature = _party(x_seml_party, x_seml_nonce, x_seml_signature)
            entries = service.audit(
                after,
                limit,
                session=session,
                party=party,
                nonce=nonce,
                signature=signature,
                now=time.time(),
            )
        except SemlError as e:
            return refuse("audit", e, **({"session": session} if session else {}))
        page = AuditPage(identity_key=service.info().identity_key, entries=entries)
        return page.model_dump()

    # Proposals and approvals: their own module, so the ledger's routes stay together.
    from seml.cas._proposal_routes import add_proposal_routes

    add_proposal_routes(app, service, refuse=refuse, read_body=_read_body)
    from seml.cas._listing import add_listing_routes

    add_listing_routes(app, service, refuse=refuse)
    # Completion reports, receipts and model releases: likewise.
    from seml.cas._receipt_routes import add_receipt_routes

    add_receipt_routes(app, service, refuse=refuse, read_body=_read_body)
    # Each answer waits until the writes before it are on the disk (group commit), except a
    # nonce's: it is random bytes and a clock reading, nothing stored.
    hot = {("POST", "/v1/nonce"): nonce_of, ("POST", "/v1/attest"): attest_of}
    return RequestLimits(
        _HotPaths(app, hot),
        on_refusal=log,
        durable=service.store.durable,
        stateless=frozenset({("POST", "/v1/nonce")}),
    )
