"""`GET /v1/parties/sessions`: the sessions a party is in, for that party only.

A party's console needs to know which sessions to show without the party typing their names.
The reader proves it holds a key by signing a challenge over a fresh nonce of the service
(headers `X-Seml-Key`, `X-Seml-Nonce`, `X-Seml-Signature`), like a proposals read; the answer
lists the names of the sessions whose latest version, or one of whose proposals, lists that key
among its parties. Nothing else: the documents are read through the existing endpoints, which
check the party again. A key that is in no session gets an empty list, so the answer does not
say whether a key is known beyond what the signature already proves.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

from seml.cas._ledger import Ledger
from seml.cas._protocol import listing_challenge
from seml.cas._service import CasService
from seml.errors import PolicyError, SemlError, UsageError
from seml.policy import parse_public_key, verify_ed25519

__all__ = ["add_listing_routes", "sessions_of"]


def sessions_of(service: CasService, key: bytes) -> list[str]:
    """Names of the sessions whose latest version or one of whose proposals lists `key`."""
    db = service.store.db
    names = {r[0] for r in db.execute("SELECT DISTINCT name FROM sessions").fetchall()}
    names |= {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT name FROM proposals WHERE subject_kind = 'session'"
        ).fetchall()
    }
    ledger = Ledger(service.store)

    def listed(parties: dict[str, str]) -> bool:
        return any(parse_public_key(text) == key for text in parties.values())

    out = []
    for name in sorted(names):
        latest = service.store.latest(name)
        if (latest is not None and listed(latest.session.parties)) or any(
            listed(p.session.parties) for p in ledger.proposals(name)
        ):
            out.append(name)
    return out


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{what} is not base64") from None


def add_listing_routes(
    app: FastAPI, service: CasService, *, refuse: Callable[..., JSONResponse]
) -> None:
    @app.get("/v1/parties/sessions", response_model=None)
    async def my_sessions(
        x_seml_key: Annotated[str, Header(max_length=100)],
        x_seml_nonce: Annotated[str, Header(max_length=200)],
        x_seml_signature: Annotated[str, Header(max_length=200)],
    ) -> dict[str, Any] | JSONResponse:
        try:
            key = _b64(x_seml_key, "X-Seml-Key")
            nonce = _b64(x_seml_nonce, "X-Seml-Nonce")
            signature = _b64(x_seml_signature, "X-Seml-Signature")
            service.nonces.consume(nonce, time.time())
            if len(key) != 32:
                raise UsageError("the reader's key must be a 32-byte Ed25519 public key")
            if not verify_ed25519(key, signature, listing_challenge(nonce)):
                raise PolicyError("bad session-list challenge signature")
            return {"sessions": sessions_of(service, key)}
        except SemlError as e:
            return refuse("sessions.list", e)
