"""`GET /v1/parties/sessions` (`CasClient.my_sessions`): the sessions a key is in, for the
holder of that key only."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from _cas_inprocess import InProcessCas
from _casdata import Parties, session_of, shared_document
from seml.cas import CasClient
from seml.cas._protocol import listing_challenge
from seml.errors import AttestationError, NetworkError, PolicyError
from seml.policy import Decision, new_key_pair, session_hash, sign_decision


def test_a_party_lists_the_sessions_and_proposals_it_is_in(client: CasClient) -> None:
    everyone = Parties("alice", "bob", "carol")
    ab, ac = Parties(), Parties()
    ab.keys = {k: everyone.keys[k] for k in ("alice", "bob")}
    ac.keys = {k: everyone.keys[k] for k in ("alice", "carol")}
    accepted = session_of(shared_document("accepted", ac, tolerate=()))
    accepted_doc = accepted.document()
    accepted_doc["secrets"] = [s for s in accepted_doc["secrets"] if s["name"] != "pw"]
    for s in accepted_doc["services"]:
        s["environment"].pop("PW", None)
    accepted = session_of(accepted_doc)
    client.submit_session(accepted, ac.sign(accepted))
    proposed = session_of(shared_document("proposed", ab))
    signed = sign_decision(
        session_hash(proposed), "proposed", "alice", everyone.keys["alice"], Decision.APPROVE
    )
    client.propose(proposed, signed)
    assert client.my_sessions(everyone.keys["alice"]) == ["accepted", "proposed"]
    assert client.my_sessions(everyone.keys["bob"]) == ["proposed"]
    assert client.my_sessions(everyone.keys["carol"]) == ["accepted"]
    assert client.my_sessions(new_key_pair()) == []


def test_a_listing_needs_the_keys_signature_over_a_fresh_nonce(
    client: CasClient, cas: InProcessCas
) -> None:
    key, other = new_key_pair(), new_key_pair()
    nonce = client.nonce()
    headers = {
        "X-Seml-Key": base64.b64encode(key.public).decode(),
        "X-Seml-Nonce": base64.b64encode(nonce).decode(),
        "X-Seml-Signature": base64.b64encode(other.sign(listing_challenge(nonce))).decode(),
    }
    with pytest.raises(PolicyError, match="bad session-list challenge signature"):
        client._call("GET", "/v1/parties/sessions", headers=headers)
    headers["X-Seml-Signature"] = base64.b64encode(key.sign(listing_challenge(nonce))).decode()
    with pytest.raises(AttestationError, match="nonce"):  # spent by the refused request
        client._call("GET", "/v1/parties/sessions", headers=headers)
    with pytest.raises(Exception, match="refused"):
        client._call("GET", "/v1/parties/sessions")
    cas.service.flush_refusals(time.time(), force=True)  # repeats of a kind are counted
    assert any(  # the operator's view: an outsider reads no entry's content
        e.event in ("refused", "refused.repeated")
        and (e.details or {}).get("request") == "sessions.list"
        for e in cas.service.store.audit(0, 100_000)
    )


def test_the_client_refuses_a_malformed_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    client = CasClient("https://cas.invalid", "sha256:" + "a" * 64, transport=_Fixed())
    with pytest.raises(NetworkError, match="unexpected answer to a session list"):
        client.my_sessions(new_key_pair())


class _Fixed(httpx.BaseTransport):
    """Answers a nonce, then a session list that is not a list of names."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/nonce":
            return httpx.Response(200, json={"nonce": base64.b64encode(b"\0" * 32).decode()})
        return httpx.Response(200, json={"sessions": "alice"})
