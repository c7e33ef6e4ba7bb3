"""The console's pages and actions through its app in this process, in front of the attestation
service's app: what each page shows, approving with the confirmation step, and the refusals
(no token, wrong Host, forged CSRF, cross-site POST) with their reasons."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute

from _cas_inprocess import InProcessCas
from _casdata import GOOD, Parties, session_of, shared_document
from console.conftest import PORT, ConsoleUnderTest, console_for, csrf_of
from seml.cas import CasClient, ProposalState
from seml.policy import Decision, Session, session_hash, sign_decision

PROVIDED = b"console-provided-value-7c1e"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties("alice", "bob", "carol")


def _propose(client: CasClient, s: Session, parties: Parties, party: str, **kw: Any) -> str:
    signed = sign_decision(session_hash(s), s.name, party, parties.keys[party], Decision.APPROVE)
    return client.propose(s, signed, **kw).hash


@pytest.fixture(scope="module")
def world(cas_client: CasClient, parties: Parties) -> dict[str, str]:
    """alice proposes `shared` (alice and bob, with alice's provided secret) and `hostile`
    (HTML in its command, files and environment); `other` is alice's and carol's only."""
    pair = Parties()
    pair.keys = {k: parties.keys[k] for k in ("alice", "bob")}
    shared = session_of(shared_document("shared", pair))
    h_shared = _propose(
        cas_client, shared, parties, "alice", provided=pair.provide(cas_client, shared, PROVIDED)
    )
    doc = {
        "version": 1,
        "name": "hostile",
        "parties": pair.public(),
        "approval": {"create": ["alice", "bob"], "update": ["alice", "bob"]},
        "security": {"tolerate": []},
        "services": [
            {
                "name": "svc",
                "measurements": [GOOD],
                "command": ["python", HOSTILE],
                "files": {"/etc/x.conf": HOSTILE},
            }
        ],
        "storage": {"location": "file:///tmp/x"},
    }
    h_hostile = _propose(cas_client, session_of(doc), parties, "alice")
    trio = Parties()
    trio.keys = {k: parties.keys[k] for k in ("alice", "carol")}
    other = session_of(shared_document("other", trio))
    _propose(cas_client, other, parties, "alice")
    return {"shared": h_shared, "hostile": h_hostile}


@pytest.fixture(scope="module")
def bob(cas: InProcessCas, parties: Parties, world: dict[str, str]) -> Iterator[ConsoleUnderTest]:
    yield from console_for(cas, parties.keys["bob"], "bob")


def _routes(console: ConsoleUnderTest) -> list[tuple[str, str]]:
    out = []
    for r in console.app.routes:  # type: ignore[attr-defined]
        if isinstance(r, APIRoute):
            path = r.path.replace("{hash_}", "sha256:" + "ab" * 32)
            path = path.replace("{subject}", "shared").replace("{name}", "console.css")
            path = path.replace("{session}", "shared").replace(
                "{receipt_id}", "sha256:" + "cd" * 32
            )
            out += [(m, path) for m in sorted(r.methods or ())]
    return out


def test_the_token_opens_a_session_in_a_cookie_and_leaves_the_address(
    bob: ConsoleUnderTest,
) -> None:
    b = bob.browser()
    r = b.get(f"/review/shared?token={bob.guard.token}&x=1")
    assert r.status_code == 303
    assert r.headers["location"] == "/review/shared?x=1"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert bob.guard.token not in r.headers["set-cookie"]
    assert b.get("/").status_code == 200


def test_every_route_is_refused_without_a_valid_token_or_cookie(
    bob: ConsoleUnderTest, world: dict[str, str]
) -> None:
    routes = _routes(bob)
    assert {p.split("/")[1] for _, p in routes} >= {
        *("", "review", "proposals", "audit", "static", "runs", "receipts", "verify"),
    }
    for cookies in ({}, {"seml_console": "forged-session"}):
        b = bob.browser(cookies=cookies)
        for method, path in routes:
            r = b.request(method, path)
            assert r.status_code == 401, (method, path, r.status_code)
            assert "Not signed in" in r.text
            for secret in ("shared", "alice", world["shared"], GOOD):
                assert secret not in r.text, (method, path, secret)
    r = bob.browser().get("/?token=not-the-token")
    assert r.status_code == 401 and "not valid" in r.text
    assert "set-cookie" not in r.headers


def test_another_host_name_is_refused_even_with_a_session(bob: ConsoleUnderTest) -> None:
    b = bob.login()
    for host in ("evil.example", f"evil.example:{PORT}", f"127.0.0.1:{PORT + 1}", "127.0.0.1"):
        r = b.get("/", headers={"host": host})
        assert r.status_code == 403, host
        assert "loopback" in r.text and "shared" not in r.text
    assert b.get("/", headers={"host": f"localhost:{PORT}"}).status_code == 200


def test_every_answer_carries_the_security_headers(bob: ConsoleUnderTest) -> None:
    b = bob.login()
    for r in (b.get("/"), b.get("/audit"), bob.browser().get("/"), b.get("/static/console.css")):
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-content-type-options"] == "nosniff"


def test_the_sessions_page_lists_what_waits_for_this_party(
    bob: ConsoleUnderTest, world: dict[str, str]
) -> None:
    html = bob.login().get("/").text
    assert "shared" in html and "hostile" in html
    assert "other" not in html  # alice's and carol's: bob is not in it
    assert world["shared"] in html and "your decision is needed" in html
    assert "SIMULATED evidence tolerated" in html  # shared tolerates simulation


def test_the_review_shows_services_code_machines_secrets_and_simulation(
    bob: ConsoleUnderTest, world: dict[str, str]
) -> None:
    html = bob.login().get(f"/review/{world['shared']}").text
    assert "SIMULATED evidence is accepted by this version" in html
    for text in (
        world["shared"],
        GOOD,  # the code measurement
        "python -m train",
        "any machine whose evidence passes",
        "model_key",
        "provided by alice",
        "Read by: train, run",
        "A first version: nothing to compare.",
        "Approve…",
        "Reject…",
        'hx-trigger="every 2s"',
    ):
        assert text in html, text
    assert PROVIDED.decode() not in html


def test_hostile_text_in_a_session_is_escaped(bob: ConsoleUnderTest, world: dict[str, str]) -> None:
    b = bob.login()
    for html in (b.get(f"/review/{world['hostile']}").text, b.get("/").text, b.get("/audit").text):
        assert "<script>alert" not in html and "<img src=x" not in html
    html = b.get(f"/review/{world['hostile']}").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    r = b.get("/review/<script>")
    assert r.status_code == 400 and "<script>" not in r.text


def test_a_decision_needs_a_csrf_token_of_this_session(
    bob: ConsoleUnderTest, cas_client: CasClient, parties: Parties, world: dict[str, str]
) -> None:
    h = world["hostile"]
    b = bob.login()
    confirm = b.get(f"/proposals/{h}/confirm?decision=approve").text
    good = csrf_of(confirm)
    other = bob.login()
    other_csrf = csrf_of(other.get(f"/proposals/{h}/confirm?decision=approve").text)
    form = {"hash": h, "decision": "approve", "confirm": "yes"}
    for csrf in (None, "", "0" * 64, other_csrf):
        data = dict(form) if csrf is None else {**form, "csrf": csrf}
        r = b.post(f"/proposals/{h}/decide", data=data)
        assert r.status_code == 403 and "CSRF" in r.text, csrf
    r = b.post(
        f"/proposals/{h}/decide",
        data={**form, "csrf": good},
        headers={"origin": "http://evil.example"},
    )
    assert r.status_code == 403 and "another site" in r.text
    r = b.post(f"/proposals/{h}/decide", json={**form, "csrf": good})
    assert r.status_code == 403  # not a form: no CSRF token read from it
    status = cas_client.session_status(h, parties.keys["bob"])
    assert [p.approved for p in status.proposals if p.hash == h] == [["alice"]]


def test_a_decision_needs_the_confirmation_and_the_shown_hash(
    bob: ConsoleUnderTest, world: dict[str, str]
) -> None:
    h = world["hostile"]
    b = bob.login()
    csrf = csrf_of(b.get(f"/proposals/{h}/confirm?decision=approve").text)
    r = b.post(f"/proposals/{h}/decide", data={"csrf": csrf, "hash": h, "decision": "approve"})
    assert r.status_code == 400 and "confirmation" in r.text
    r = b.post(
        f"/proposals/{h}/decide",
        data={"csrf": csrf, "hash": world["shared"], "decision": "approve", "confirm": "yes"},
    )
    assert r.status_code == 400 and "not this proposal" in r.text
    r = b.post(
        f"/proposals/{h}/decide",
        data={"csrf": csrf, "hash": h, "decision": "withdraw", "confirm": "yes"},
    )
    assert r.status_code == 400 and "approve, reject" in r.text
    assert "waiting for approvals" in b.get(f"/proposals/{h}/status").text


def test_approving_signs_here_and_the_status_turns_active(
    bob: ConsoleUnderTest, cas_client: CasClient, parties: Parties, world: dict[str, str]
) -> None:
    h = world["shared"]
    b = bob.login()
    confirm = b.get(f"/proposals/{h}/confirm?decision=approve").text
    assert h in confirm and "Sign and approve" in confirm and "bob" in confirm
    r = b.post(
        f"/proposals/{h}/decide",
        data={"csrf": csrf_of(confirm), "hash": h, "decision": "approve", "confirm": "yes"},
    )
    assert r.status_code == 303 and r.headers["location"] == f"/review/{h}?done=approve"
    status = cas_client.session_status(h, parties.keys["bob"])
    view = next(p for p in status.proposals if p.hash == h)
    assert view.state is ProposalState.ACCEPTED and view.version == 1
    assert sorted(view.approved) == ["alice", "bob"]
    fragment = b.get(f"/proposals/{h}/status").text
    assert "ACCEPTED: active as version 1" in fragment
    assert "hx-trigger" not in fragment  # closed: polling stops
    assert "Approve…" not in fragment
    html = b.get(f"/review/{h}?done=approve").text
    assert "Your decision (approve) was signed here" in html
    r = b.post(
        f"/proposals/{h}/decide",
        data={"csrf": csrf_of(confirm), "hash": h, "decision": "approve", "confirm": "yes"},
    )
    assert r.status_code == 403 and "accepted: it takes no decision" in r.text


def test_the_audit_page_shows_this_partys_entries_and_refusals(
    bob: ConsoleUnderTest, cas_client: CasClient, parties: Parties, world: dict[str, str]
) -> None:
    # A forged decision about `shared` (carol signs for bob) is refused and logged. Entries
    # about `hostile`, still only a proposal, are not readable through the audit log (its
    # parties read the proposal itself); `shared` is accepted by now, so bob reads its entries.
    forged = sign_decision(
        world["shared"], "shared", "bob", parties.keys["carol"], Decision.APPROVE
    )
    with pytest.raises(Exception, match="refused"):
        cas_client.decide(forged)
    html = bob.login().get("/audit").text
    assert "Chain verified" in html
    assert "proposal.create" in html and "shared" in html
    assert "other" not in html.split("Entries, newest first")[1]
    assert "decide" in html.split("Refusals")[1].split("Entries")[0]
    assert PROVIDED.decode() not in html


def test_static_files_are_served_only_by_name(bob: ConsoleUnderTest) -> None:
    b = bob.login()
    r = b.get("/static/htmx-2.0.11.min.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert b.get("/static/README.md").status_code == 404
    assert b.get("/static/..%2f_app.py").status_code == 404


def test_the_review_of_an_update_shows_what_changes(
    bob: ConsoleUnderTest, cas_client: CasClient, parties: Parties, world: dict[str, str]
) -> None:
    active = cas_client.session_status("shared", parties.keys["bob"]).active
    assert active is not None  # accepted by the approval test above
    doc = active.document.document()
    doc["predecessor"] = active.hash
    doc["services"][0]["measurements"] = ["ef" * 32]
    doc["security"]["tolerate"] = []
    update = session_of(doc)
    h = _propose(cas_client, update, parties, "alice")
    html = bob.login().get(f"/review/{h}").text
    assert "Compared with" in html and active.hash in html
    assert "ef" * 32 in html and "removed" in html and "added" in html
    assert "SIMULATED evidence is accepted" not in html  # the update no longer tolerates it
    assert "simulation" in html.split("Changes from the predecessor")[1]
    assert "Approve…" in html
