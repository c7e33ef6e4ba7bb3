"""The HTTP face of the proposals ledger (`seml.cas._proposals`): thin, like `_app`.

- `POST /v1/proposals`: anyone carrying a party's signed approval of the proposed version;
- `POST /v1/proposals/{hash}/decisions`: anyone carrying a party's signed decision about it;
- `GET /v1/proposals/{name or hash}`: a party, by a signed challenge (headers `X-Seml-Key`,
  `X-Seml-Nonce`, `X-Seml-Signature`).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from seml.cas._proposals import ProposalDesk
from seml.cas._service import CasService
from seml.errors import SemlError, UsageError
from seml.policy import SignedDecision

__all__ = ["add_proposal_routes"]

Refuse = Callable[..., JSONResponse]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProposeRequest(_Body):
    document: dict[str, Any]
    signature: SignedDecision  # the proposer's approval
    provided: dict[str, str] = Field(default_factory=dict, max_length=64)  # name -> b64 sealed


class DecideRequest(_Body):
    decision: SignedDecision
    provided: dict[str, str] = Field(default_factory=dict, max_length=64)


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{what} is not base64") from None


def _provided(items: dict[str, str]) -> dict[str, bytes]:
    return {k: _b64(v, f"provided secret {k}") for k, v in items.items()}


def _malformed(e: ValidationError) -> UsageError:
    where = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in e.errors(include_url=False, include_input=False)[:5]
    )
    return UsageError(f"malformed request: {where}")


def add_proposal_routes(
    app: FastAPI,
    service: CasService,
    *,
    refuse: Refuse,
    read_body: Callable[[Request], Awaitable[bytes]],
) -> None:
    """Attach the proposal endpoints; `refuse` answers and logs a refusal, `read_body` reads a
    request body within the service's size limit."""
    desk = ProposalDesk(service)

    @app.post("/v1/proposals", response_model=None)
    async def propose(request: Request) -> dict[str, Any] | JSONResponse:
        try:
            body = ProposeRequest.model_validate_json(await read_body(request))
        except ValidationError as e:
            return refuse("propose", _malformed(e))
        except SemlError as e:
            return refuse("propose", e)
        name = str(body.document.get("name", "?"))[:64]
        try:
            provided = _provided(body.provided)
            view = desk.propose(body.document, body.signature, provided, time.time())
        except SemlError as e:
            return refuse("propose", e, session=name)
        return view.model_dump(mode="json", by_alias=True)

    @app.post("/v1/proposals/{hash_}/decisions", response_model=None)
    async def decide(hash_: str, request: Request) -> dict[str, Any] | JSONResponse:
        try:
            body = DecideRequest.model_validate_json(await read_body(request))
        except ValidationError as e:
            return refuse("decide", _malformed(e), hash=hash_[:80])
        except SemlError as e:
            return refuse("decide", e, hash=hash_[:80])
        try:
            view = desk.decide(hash_, body.decision, _provided(body.provided), time.time())
        except SemlError as e:
            return refuse(
                "decide",
                e,
                session=body.decision.session,
                hash=hash_[:80],
                party=body.decision.party,
                decision=body.decision.decision.value,
            )
        return view.model_dump(mode="json", by_alias=True)

    @app.get("/v1/proposals/{subject}", response_model=None)
    async def status(
        subject: str,
        x_seml_key: Annotated[str, Header(max_length=100)],
        x_seml_nonce: Annotated[str, Header(max_length=200)],
        x_seml_signature: Annotated[str, Header(max_length=200)],
    ) -> dict[str, Any] | JSONResponse:
        try:
            answer = desk.status(
                subject,
                key=_b64(x_seml_key, "X-Seml-Key"),
                nonce=_b64(x_seml_nonce, "X-Seml-Nonce"),
                signature=_b64(x_seml_signature, "X-Seml-Signature"),
                now=time.time(),
            )
        except SemlError as e:
            return refuse("proposals.read", e, session=subject[:80])
        return answer.model_dump(mode="json", by_alias=True)
