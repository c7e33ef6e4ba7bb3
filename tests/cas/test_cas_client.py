"""`CasClient` against answers it must not trust: wrong shapes, forged versions, unknown refusals
(through `httpx.MockTransport`, so each answer is exactly the one under test)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from _casdata import Parties, session_of, shared_document
from seml.cas import CasClient
from seml.cas._protocol import error_class, error_kind
from seml.cas._service import NotFoundError
from seml.errors import (
    AttestationError,
    IntegrityError,
    NetworkError,
    PolicyError,
    SemlError,
    StorageError,
    UsageError,
)
from seml.policy import session_hash, sign_session

PIN = "sha256:" + "ab" * 32


def _client(answer: Callable[[httpx.Request], httpx.Response]) -> CasClient:
    return CasClient("https://cas.test", PIN, transport=httpx.MockTransport(answer))


def _json(status: int, body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=json.dumps(body).encode())


@pytest.mark.parametrize(
    "cls", [UsageError, IntegrityError, PolicyError, AttestationError, StorageError, NetworkError]
)
def test_refusals_keep_their_class_across_the_wire(cls: type[SemlError]) -> None:
    body = {"error": error_kind(cls("no")), "message": "no"}
    with _client(_json(403, body)) as client, pytest.raises(cls, match=r"refused: no$"):
        client.nonce()


def test_subclasses_travel_as_their_category() -> None:
    assert error_kind(NotFoundError("x")) == "UsageError"
    assert error_class("NotFoundError") is NetworkError  # not a protocol word
    assert error_class(None) is NetworkError


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, "oops", "HTTP 500"),
        (200, ["not", "an", "object"], "answer is not JSON"),
        (200, {"service": "seml-cas"}, "unexpected answer to info"),
    ],
)
def test_answers_outside_the_protocol_are_network_errors(
    status: int, body: Any, message: str
) -> None:
    with _client(_json(status, body)) as client, pytest.raises(NetworkError, match=message):
        client.info()


def _version(document: dict[str, Any], claimed_hash: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "hash": claimed_hash,
        "version": 1,
        "predecessor": None,
        "accepted": 1.0,
        "signers": [],
        "document": document,
        "signatures": [],
    }


def test_a_read_returns_typed_verified_versions() -> None:
    parties = Parties("alice", "bob")
    s = session_of(shared_document("typed", parties))
    h = session_hash(s)
    sig = sign_session(s, "alice", parties.keys["alice"])
    answer = _version(s.document(), h, "typed") | {"signatures": [sig.model_dump()]}
    with _client(_json(200, {"versions": [answer]})) as client:
        got = client.get_session("typed", hash_=h)
    assert got.hash == h and got.document == s and got.signatures == [sig]


def test_a_forged_version_is_refused() -> None:
    parties = Parties("alice", "bob")
    s = session_of(shared_document("typed", parties))
    forged = s.document()
    forged["storage"] = {"location": "s3://attacker"}
    answer = {"versions": [_version(forged, session_hash(s), "typed")]}
    with (
        _client(_json(200, answer)) as client,
        pytest.raises(IntegrityError, match="version 1 of typed does not match its hash"),
    ):
        client.get_session("typed", hash_=session_hash(s))


def test_an_answer_without_the_version_asked_for_is_refused() -> None:
    with (
        _client(_json(200, {"versions": []})) as client,
        pytest.raises(NetworkError, match="no version of typed in its answer"),
    ):
        client.get_session("typed", hash_="sha256:" + "0" * 64)
