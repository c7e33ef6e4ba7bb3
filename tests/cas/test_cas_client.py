"""`CasClient` against answers it must not trust: wrong shapes, forged versions, unknown refusals
(through `httpx.MockTransport`, so each answer is exactly the one under test)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from _casdata import Parties, session_of, shared_document, update_of
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
from seml.policy import session_hash

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


def _reads(versions: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    """A service that hands out a nonce, then answers a read with `versions`."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/nonce":
            return httpx.Response(200, json={"nonce": "AAAA", "expires": 0})
        return httpx.Response(200, json={"versions": versions})

    return answer


PARTIES = Parties("alice", "bob")
READER = ("alice", PARTIES.keys["alice"])


def test_a_read_returns_typed_verified_versions() -> None:
    s = session_of(shared_document("typed", PARTIES))
    h = session_hash(s)
    sigs = PARTIES.sign(s)
    answer = _version(s.document(), h, "typed") | {"signatures": [x.model_dump() for x in sigs]}
    with _client(_reads([answer])) as client:
        got = client.get_session("typed", hash_=h, party=READER)
    assert got.hash == h and got.document == s and got.signatures == sigs


def test_a_forged_version_is_refused() -> None:
    s = session_of(shared_document("typed", PARTIES))
    forged = s.document()
    forged["storage"] = {"location": "s3://attacker"}
    with (
        _client(_reads([_version(forged, session_hash(s), "typed")])) as client,
        pytest.raises(IntegrityError, match="version 1 of typed does not match its hash"),
    ):
        client.get_session("typed", hash_=session_hash(s), party=READER)


def test_a_version_without_its_signatures_is_refused() -> None:
    """The client re-checks what the service returns: a version that matches its hash but
    lacks a required signature, or an update that does not follow its predecessor or lacks its
    approvals, is refused (a service, or whoever controls its database, cannot slip one in)."""
    s = session_of(shared_document("typed", PARTIES))
    h = session_hash(s)
    only_alice = _version(s.document(), h, "typed") | {
        "signatures": [x.model_dump() for x in PARTIES.sign(s, "alice")]
    }
    with (
        _client(_reads([only_alice])) as client,
        pytest.raises(IntegrityError, match=r"not signed as its rules require.*signature from bob"),
    ):
        client.history("typed", party=READER)
    v1 = _version(s.document(), h, "typed") | {
        "signatures": [x.model_dump() for x in PARTIES.sign(s)]
    }
    s2 = update_of(s, storage={"location": "s3://elsewhere"})
    v2 = _version(s2.document(), session_hash(s2), "typed") | {
        "version": 2,
        "predecessor": h,
        "signatures": [x.model_dump() for x in PARTIES.sign(s2, "alice")],
    }
    with (
        _client(_reads([v1, v2])) as client,
        pytest.raises(IntegrityError, match="version 2 of typed is not signed as its rules"),
    ):
        client.history("typed", party=READER)
    skipped = v2 | {"version": 3}
    with (
        _client(_reads([v1, skipped])) as client,
        pytest.raises(IntegrityError, match="version 3 of typed does not follow version 1"),
    ):
        client.history("typed", party=READER)
    v2_signed = v2 | {"signatures": [x.model_dump() for x in PARTIES.sign(s2)]}
    with _client(_reads([v1, v2_signed])) as client:
        assert [v.version for v in client.history("typed", party=READER)] == [1, 2]


def test_an_answer_without_the_version_asked_for_is_refused() -> None:
    with (
        _client(_reads([])) as client,
        pytest.raises(NetworkError, match="no version of typed in its answer"),
    ):
        client.get_session("typed", hash_="sha256:" + "0" * 64, party=READER)


def test_a_hash_alone_reads_nothing() -> None:
    with (
        _client(_reads([])) as client,
        pytest.raises(UsageError, match=r"needs a party.s key .* a hash alone grants no access"),
    ):
        client.get_session("typed", hash_="sha256:" + "0" * 64, party=None)
