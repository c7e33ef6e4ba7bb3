"""The HTTP face of the service (FastAPI). Thin: parse, call `CasService`, answer.

Handlers are `async def` and call the (fast, single-connection) store directly on the event
loop: there is no thread hop per request, and SQLite sees one writer at a time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from seml.attest import Evidence
from seml.cas._protocol import error_kind
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

__all__ = ["MAX_BODY", "create_app"]

# Evidence envelopes carry at most ~1 MiB of collateral; sessions are far smaller.
MAX_BODY = 2 * 1024 * 1024

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
    evidence: Evidence


class VolumeSet(_Body):
    expected: int = Field(ge=0)
    version: int = Field(ge=1)
    tag: str = Field(max_length=200)


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{what} is not base64") from None


async def _body(request: Request) -> bytes:
    """The request body, refused past MAX_BODY (a hostile client cannot make us buffer more)."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY:
        raise UsageError(f"request body larger than {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise UsageError(f"request body larger than {MAX_BODY} bytes")
    return bytes(body)


def _json(data: dict[str, Any]) -> Response:
    return Response(json.dumps(data).encode(), media_type="application/json")


def _describe(e: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in e.errors(include_url=False, include_input=False)[:5]
    )


def _error(e: SemlError) -> JSONResponse:
    status = next((code for cls, code in _STATUS if isinstance(e, cls)), 500)
    return JSONResponse({"error": error_kind(e), "message": str(e)}, status_code=status)


def create_app(service: CasService) -> FastAPI:
    app = FastAPI(title="SEML attestation service", docs_url=None, redoc_url=None, openapi_url=None)

    def refuse(request: str, e: SemlError, **details: str) -> JSONResponse:
        # The refusal is answered even if the log cannot be written.
        with contextlib.suppress(SemlError):
            service.log_refusal(request, str(e), time.time(), **details)
        return _error(e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()[:5]
        )
        return refuse(request.url.path, UsageError(f"malformed request: {where}"))

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
    # FastAPI body validation pass and no jsonable_encoder on the way out.
    @app.post("/v1/nonce")
    async def nonce() -> Response:
        value, expires = service.nonces.issue(time.time())
        return _json({"nonce": base64.b64encode(value).decode(), "expires": expires})

    @app.post("/v1/sessions", response_model=None)
    async def submit(request: Request) -> dict[str, Any] | JSONResponse:
        try:
            body = SubmitRequest.model_validate_json(await _body(request))
        except ValidationError as e:
            return refuse("submit", UsageError(f"malformed request: {_describe(e)}"))
        except SemlError as e:
            return refuse("submit", e)
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
        x_seml_party: Annotated[str | None, Header(max_length=64)] = None,
        x_seml_nonce: Annotated[str | None, Header(max_length=200)] = None,
        x_seml_signature: Annotated[str | None, Header(max_length=200)] = None,
    ) -> dict[str, Any] | JSONResponse:
        try:
            records = service.read(
                name,
                hash_=hash,
                party=x_seml_party,
                nonce=None if x_seml_nonce is None else _b64(x_seml_nonce, "nonce"),
                signature=None if x_seml_signature is None else _b64(x_seml_signature, "signature"),
                now=time.time(),
            )
        except SemlError as e:
            return refuse("read", e, session=name[:64])
        return SessionVersions(versions=[r.answer() for r in records]).model_dump(
            mode="json", by_alias=True
        )

    @app.post("/v1/attest")
    async def attest(request: Request) -> Response:
        try:
            body = AttestRequest.model_validate_json(await _body(request))
        except ValidationError as e:
            return refuse("attest", UsageError(f"malformed request: {_describe(e)}"))
        except SemlError as e:
            return refuse("attest", e)
        try:
            sealed = service.attest(
                session_name=body.session,
                service_name=body.service,
                session_hash_=body.session_hash,
                nonce=_b64(body.nonce, "nonce"),
                public_key=_b64(body.public_key, "public_key"),
                evidence=body.evidence,
                now=time.time(),
            )
        except SemlError as e:
            return refuse("attest", e, session=body.session, service=body.service)
        return _json({"sealed": base64.b64encode(sealed).decode()})

    @app.get("/v1/volumes/{owner}/{volume}", response_model=None)
    async def volume_get(
        owner: str, volume: str, x_seml_volume_token: Annotated[str, Header(max_length=100)]
    ) -> dict[str, Any] | JSONResponse:
        try:
            version, tag = service.volume_get(owner, volume, x_seml_volume_token)
        except SemlError as e:
            return refuse("volume.get", e, session=owner[:64], volume=volume[:64])
        return {"version": version, "tag": tag}

    @app.post("/v1/volumes/{owner}/{volume}", response_model=None)
    async def volume_set(
        owner: str,
        volume: str,
        body: VolumeSet,
        x_seml_volume_token: Annotated[str, Header(max_length=100)],
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

    @app.get("/v1/audit")
    async def audit(
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> dict[str, Any]:
        page = AuditPage(
            identity_key=service.info().identity_key, entries=service.store.audit(after, limit)
        )
        return page.model_dump()

    # Proposals and approvals: their own module, so the ledger's routes stay together.
    from seml.cas._proposal_routes import add_proposal_routes

    add_proposal_routes(app, service, refuse=refuse, read_body=_body)
    from seml.cas._listing import add_listing_routes

    add_listing_routes(app, service, refuse=refuse)
    # Completion reports, receipts and model releases: likewise.
    from seml.cas._receipt_routes import add_receipt_routes

    add_receipt_routes(app, service, refuse=refuse, read_body=_body)
    return app
