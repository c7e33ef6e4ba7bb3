"""The HTTP face of completions, receipts and model releases (`seml.cas._receipts`): thin.

- `POST /v1/completions`: an attested service's runtime, carrying its capability;
- `GET /v1/receipts/{session}`: a party of the session, by a signed challenge (headers
  `X-Seml-Key`, `X-Seml-Nonce`, `X-Seml-Signature`); each receipt with its release status;
- `POST /v1/models/{digest}/decisions`: anyone carrying an owner's signed decision.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from seml.cas._proposal_routes import _b64, _malformed
from seml.cas._service import CasService
from seml.errors import SemlError, UsageError
from seml.policy import ModelDecision
from seml.receipt import CompletionReport

__all__ = ["add_receipt_routes"]

Refuse = Callable[..., JSONResponse]


class DecideModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: ModelDecision


def add_receipt_routes(
    app: FastAPI,
    service: CasService,
    *,
    refuse: Refuse,
    read_body: Callable[[Request], Awaitable[bytes]],
) -> None:
    desk = service.receipts

    @app.post("/v1/completions", response_model=None)
    async def complete(request: Request) -> dict[str, Any] | JSONResponse:
        try:
            report = CompletionReport.model_validate_json(await read_body(request))
        except ValidationError as e:
            return refuse("complete", _malformed(e))
        except SemlError as e:
            return refuse("complete", e)
        try:
            answer = desk.complete(report, time.time())
        except SemlError as e:
            return refuse("complete", e, session=report.session, service=report.service)
        return answer.model_dump(mode="json")

    @app.get("/v1/receipts/{session}", response_model=None)
    async def receipts(
        session: str,
        x_seml_key: Annotated[str, Header(max_length=100)],
        x_seml_nonce: Annotated[str, Header(max_length=200)],
        x_seml_signature: Annotated[str, Header(max_length=200)],
    ) -> dict[str, Any] | JSONResponse:
        try:
            answer = desk.receipts(
                session,
                key=_b64(x_seml_key, "X-Seml-Key"),
                nonce=_b64(x_seml_nonce, "X-Seml-Nonce"),
                signature=_b64(x_seml_signature, "X-Seml-Signature"),
                now=time.time(),
            )
        except SemlError as e:
            return refuse("receipts.read", e, session=session[:64])
        return answer.model_dump(mode="json")

    @app.post("/v1/models/{model}/decisions", response_model=None)
    async def decide(model: str, request: Request) -> dict[str, Any] | JSONResponse:
        try:
            body = DecideModel.model_validate_json(await read_body(request))
        except ValidationError as e:
            return refuse("model.decide", _malformed(e), model=model[:80])
        except SemlError as e:
            return refuse("model.decide", e, model=model[:80])
        d = body.decision
        try:
            if d.hash != model:
                raise UsageError(f"the decision is about model {d.hash}, not {model}")
            status = desk.decide(d, time.time())
        except SemlError as e:
            return refuse(
                "model.decide",
                e,
                session=d.session,
                model=model[:80],
                party=d.party,
                decision=d.decision.value,
            )
        return status.model_dump(mode="json")
