"""The console's pure parts: the guard (token, sessions, CSRF, Host, Origin), the view models,
the loopback-only listener, the vendored htmx, the CLI's refusals."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from seml.cas import AuditEntry
from seml.cli import main
from seml.console import ConsoleGuard, bind_loopback
from seml.console._app import STATIC
from seml.console._party import check_subject
from seml.console._views import audit_view
from seml.errors import UsageError


def test_the_guard_knows_only_its_own_token_sessions_and_csrf_tokens() -> None:
    g, other = ConsoleGuard(8080), ConsoleGuard(8080)
    assert g.token != other.token and len(g.token) >= 43
    assert g.token not in repr(g)
    assert g.token_ok(g.token) and not g.token_ok(other.token) and not g.token_ok("")
    sid = g.open_session()
    assert g.session_ok(sid) and not g.session_ok(other.open_session()) and not g.session_ok(None)
    csrf = g.csrf_token(sid)
    assert g.csrf_ok(sid, csrf)
    assert not g.csrf_ok(sid, other.csrf_token(sid))  # another start's secret
    assert not g.csrf_ok(g.open_session(), csrf)  # another session of this start
    assert not g.csrf_ok("unknown", g.csrf_token("unknown"))  # a session never opened
    assert not g.csrf_ok(sid, None) and not g.csrf_ok(sid, "")


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8080", True),
        ("localhost:8080", True),
        ("LOCALHOST:8080", True),
        ("[::1]:8080", True),
        ("127.0.0.1", False),
        ("127.0.0.1:8081", False),
        ("attacker.example:8080", False),
        ("127.0.0.1.nip.io:8080", False),
        (None, False),
    ],
)
def test_only_loopback_names_with_the_port_pass_the_host_check(host: str | None, ok: bool) -> None:
    assert ConsoleGuard(8080).host_ok(host) is ok


def test_a_cross_site_origin_is_refused() -> None:
    g = ConsoleGuard(8080)
    assert g.origin_ok(None) and g.origin_ok("http://127.0.0.1:8080")
    for origin in ("null", "http://evil.example", "https://127.0.0.1:8080", "http://127.0.0.1:1"):
        assert not g.origin_ok(origin), origin


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "10.1.2.3:0", "example.org:0"])
def test_the_console_listens_only_on_loopback(listen: str) -> None:
    with pytest.raises(UsageError, match="loopback"):
        bind_loopback(listen)


def test_a_malformed_listen_address_is_refused() -> None:
    with pytest.raises(UsageError, match="HOST:PORT"):
        bind_loopback("127.0.0.1")


def test_a_loopback_listener_gets_a_free_port() -> None:
    sock, host = bind_loopback("localhost:0")
    try:
        assert host == "127.0.0.1" and sock.getsockname()[1] > 0
    finally:
        sock.close()


@pytest.mark.parametrize("subject", ["../audit", "a b", "<script>", "sha256:zz", ""])
def test_only_names_and_hashes_reach_the_service(subject: str) -> None:
    with pytest.raises(UsageError, match="not a session name"):
        check_subject(subject)


def _entry(seq: int, event: str, **details: object) -> AuditEntry:
    return AuditEntry.model_validate(
        {
            "seq": seq,
            "time": 1_700_000_000.0 + seq,
            "event": event,
            "details": details,
            "prev": "sha256:" + "0" * 64,
            "body": "sha256:" + f"{seq:064x}",
            "salt": "00" * 16,
            "hash": "sha256:" + f"{seq:064x}",
            "signature": "AA==",
        }
    )


def test_the_audit_view_keeps_this_partys_sessions_newest_first_and_counts_refusals() -> None:
    entries = [
        _entry(1, "session.create", session="mine", hash="h1"),
        _entry(2, "session.create", session="theirs"),
        _entry(3, "refused", session="mine", request="decide", reason="bad signature"),
        _entry(4, "refused", session="mine", request="decide", reason="bad signature"),
        _entry(5, "refused", session="theirs", request="attest", reason="wrong measurement"),
        _entry(6, "refused", request="propose", reason="malformed"),
        _entry(7, "attest.release", session="mine", service="train"),
        # three more of one kind within a minute, counted into one entry
        _entry(8, "refused.repeated", session="mine", request="decide", reason="bad signature",
               count=3),
    ]  # fmt: skip
    view = audit_view(entries, ["mine"])
    assert view.total == 8
    assert [r.seq for r in view.rows] == [8, 7, 4, 3, 1]
    assert view.refusals == [("decide", "bad signature", 5)]
    assert view.rows[1].details == [("service", "train")]
    assert [r.refused for r in view.rows] == [True, False, True, True, False]
    assert audit_view(entries, []).rows == []


def test_the_vendored_htmx_is_the_pinned_release() -> None:
    readme = (STATIC / "README.md").read_text()
    digest = re.search(r"htmx.min.js`, sha256\s+`([0-9a-f]{64})`", readme)
    assert digest is not None
    data = (STATIC / "htmx-2.0.11.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest.group(1)
    assert digest.group(1) == "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
    assert "Zero-Clause BSD" in (STATIC / "LICENSE-htmx-0BSD.txt").read_text()
    templates = Path(STATIC.parent / "templates")
    assert "/static/htmx-2.0.11.min.js" in (templates / "base.html").read_text()
    # No template loads anything from elsewhere or runs inline script.
    for t in templates.iterdir():
        text = t.read_text()
        assert "http://" not in text and "https://" not in text, t.name
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), t.name
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", text), t.name  # no inline handler


def test_the_console_command_without_a_key_says_what_it_needs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEML_SIGNING_KEY", raising=False)
    assert main(["console"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seml: error: the console needs your party's signing key")
    assert "Traceback" not in err


def test_the_console_command_refuses_a_network_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "new", "bob", "--dir", str(tmp_path)]) == 0
    capsys.readouterr()
    code = main(
        [
            "console",
            "--key",
            str(tmp_path / "bob.key"),
            "--listen",
            "0.0.0.0:0",
            "--cas",
            "https://127.0.0.1:1",
            "--cas-fingerprint",
            "sha256:" + "a" * 64,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "loopback" in err, err
