"""The console's web app (FastAPI, Jinja2): thin routes over `PartyDesk` and `seml.console._views`.

Every request first passes `_guard` (Host, access token or session cookie, CSRF for POST) and
every response, refusals included, carries `security_headers()`. Templates autoescape
everything; no route renders a secret value (the service never sends one to a party).
Handlers are plain `def`: they run in the server's thread pool and call the party's pinned
client synchronously.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader

from seml.console._party import DECISIONS, PartyDesk
from seml.console._security import COOKIE, ConsoleGuard, security_headers
from seml.console._views import (
    ReceiptView,
    audit_view,
    proposal_status,
    receipt_view,
    review_view,
    session_rows,
)
from seml.errors import IntegrityError, NetworkError, PolicyError, SemlError, UsageError

if TYPE_CHECKING:
    from seml.cas._receipt_models import ReceiptEntry

__all__ = ["STATIC", "create_console_app"]

STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
_MAX_FORM = 1024 * 1024  # a pasted receipt; only a signed-in browser gets this far

_STATUS: list[tuple[type[SemlError], int]] = [
    (UsageError, 400),
    (PolicyError, 403),
    (IntegrityError, 502),
    (NetworkError, 502),
]


def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("seml.console", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def create_console_app(desk: PartyDesk, guard: ConsoleGuard) -> FastAPI:
    """The console for `desk`'s party, answering only requests `guard` lets through."""
    app = FastAPI(title="SEML console", docs_url=None, redoc_url=None, openapi_url=None)
    env = _templates()
    statics = {p.name for p in STATIC.iterdir() if p.suffix in _STATIC_TYPES}

    def page(
        request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        sid = request.cookies.get(COOKIE)
        html = env.get_template(template).render(
            party=desk.label,
            fingerprint=desk.key.fingerprint,
            csrf=guard.csrf_token(sid) if sid and guard.session_ok(sid) else "",
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def refused(status_code: int, title: str, message: str) -> HTMLResponse:
        # Rendered without any party data: the request was not let in.
        html = env.get_template("refused.html").render(title=title, message=message)
        return HTMLResponse(html, status_code=status_code, headers=security_headers())

    def failed(request: Request, e: SemlError) -> HTMLResponse:
        code = next((c for cls, c in _STATUS if isinstance(e, cls)), 500)
        return page(request, "error.html", code, message=str(e))

    @app.middleware("http")
    async def _guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not guard.host_ok(request.headers.get("host")):
            return refused(403, "Refused", "This console answers only on its loopback address.")
        token = request.query_params.get("token")
        if token is not None:
            if not guard.token_ok(token):
                return refused(401, "Not signed in", "This link's access token is not valid.")
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response: Response = RedirectResponse(target, status_code=303)
            response.set_cookie(
                COOKIE, guard.open_session(), httponly=True, samesite="strict", path="/"
            )
            response.headers.update(security_headers())
            return response
        sid = request.cookies.get(COOKIE)
        if not guard.session_ok(sid):
            return refused(
                401,
                "Not signed in",
                "Open the console with the link `seml console` printed (it carries this start's "
                "access token).",
            )
        if request.method not in ("GET", "HEAD", "POST"):
            return refused(405, "Refused", "Method not allowed.")
        if request.method == "POST":
            if not guard.origin_ok(request.headers.get("origin")):
                return refused(403, "Refused", "This request comes from another site.")
            form = await _form(request)
            if form is None or not guard.csrf_ok(sid, form.get("csrf")):
                return refused(403, "Refused", "Missing or invalid CSRF token.")
            request.state.form = form
        response = await call_next(request)
        response.headers.update(security_headers())
        return response

    @app.get("/", response_model=None)
    def sessions(request: Request) -> Response:
        try:
            rows = session_rows(desk.statuses(), desk.key.public)
        except SemlError as e:
            return failed(request, e)
        return page(request, "sessions.html", rows=rows, nav="sessions")

    @app.get("/open", response_model=None)
    def open_subject(request: Request, subject: str = "") -> Response:
        if not subject.strip():
            return RedirectResponse("/", status_code=303)
        return RedirectResponse(f"/review/{quote(subject.strip(), safe=':')}", status_code=303)

    @app.get("/review/{subject}", response_model=None)
    def review(request: Request, subject: str, done: str = "") -> Response:
        try:
            status, result = desk.review(subject)
        except SemlError as e:
            return failed(request, e)
        view = review_view(status, result, desk.key.public)
        return page(
            request,
            "review.html",
            view=view,
            r=result,
            done=done if done in DECISIONS else "",
            nav="sessions",
        )

    @app.get("/proposals/{hash_}/status", response_model=None)
    def status_fragment(request: Request, hash_: str) -> Response:
        try:
            st = proposal_status(*desk.proposal(hash_), desk.key.public)
        except SemlError as e:
            return failed(request, e)
        return page(request, "_status.html", st=st)

    @app.get("/proposals/{hash_}/confirm", response_model=None)
    def confirm(request: Request, hash_: str, decision: str = "") -> Response:
        if decision not in DECISIONS:
            return failed(request, UsageError("decision must be approve or reject"))
        try:
            st = proposal_status(*desk.proposal(hash_), desk.key.public)
        except SemlError as e:
            return failed(request, e)
        return page(request, "confirm.html", st=st, decision=decision, nav="sessions")

    @app.post("/proposals/{hash_}/decide", response_model=None)
    def decide(request: Request, hash_: str) -> Response:
        form: dict[str, str] = request.state.form
        decision = form.get("decision", "")
        if form.get("hash") != hash_:
            return failed(request, UsageError("the confirmed hash is not this proposal's"))
        if form.get("confirm") != "yes":
            return failed(request, UsageError("tick the confirmation box to sign the decision"))
        try:
            desk.decide(hash_, decision)
        except SemlError as e:
            return failed(request, e)
        return RedirectResponse(f"/review/{hash_}?done={decision}", status_code=303)

    @app.get("/audit", response_model=None)
    def audit(request: Request) -> Response:
        try:
            names = desk.session_names()
            view = audit_view(desk.audit(), names)
        except SemlError as e:
            return failed(request, e)
        return page(request, "audit.html", view=view, nav="audit")

    @app.get("/runs", response_model=None)
    def runs(request: Request) -> Response:
        try:
            names = desk.session_names()
            _, source = desk.identity_key()
        except SemlError as e:
            return failed(request, e)
        sessions: list[tuple[str, list[ReceiptView], str]] = []
        for name in names:
            try:
                listed = desk.receipts(name)
            except PolicyError:
                continue  # not a party of its latest version: no receipts to read
            except SemlError as e:
                sessions.append((name, [], str(e)))
                continue
            views = []
            for entry in reversed(listed.receipts):
                check, _ = desk.verify(entry.receipt.to_json().encode())
                views.append(receipt_view(entry, check, source, desk.key.fingerprint))
            sessions.append((name, views, ""))
        return page(request, "runs.html", sessions=sessions, key_source=source, nav="runs")

    def _receipt(session: str, receipt_id: str) -> tuple[ReceiptEntry, ReceiptView]:
        entry = desk.receipt(session, receipt_id)
        check, source = desk.verify(entry.receipt.to_json().encode())
        return entry, receipt_view(entry, check, source, desk.key.fingerprint)

    @app.get("/receipts/{session}/{receipt_id}", response_model=None)
    def receipt(request: Request, session: str, receipt_id: str, done: str = "") -> Response:
        try:
            _, view = _receipt(session, receipt_id)
        except SemlError as e:
            return failed(request, e)
        done = done if done in DECISIONS else ""
        return page(request, "receipt.html", rv=view, done=done, nav="runs")

    @app.get("/receipts/{session}/{receipt_id}/confirm", response_model=None)
    def receipt_confirm(
        request: Request, session: str, receipt_id: str, decision: str = ""
    ) -> Response:
        if decision not in DECISIONS:
            return failed(request, UsageError("decision must be approve or reject"))
        try:
            _, view = _receipt(session, receipt_id)
        except SemlError as e:
            return failed(request, e)
        return page(request, "receipt_confirm.html", rv=view, decision=decision, nav="runs")

    @app.post("/receipts/{session}/{receipt_id}/decide", response_model=None)
    def receipt_decide(request: Request, session: str, receipt_id: str) -> Response:
        form: dict[str, str] = request.state.form
        decision = form.get("decision", "")
        if form.get("confirm") != "yes":
            return failed(request, UsageError("tick the confirmation box to sign the decision"))
        try:
            entry = desk.receipt(session, receipt_id)
            if form.get("model") != entry.receipt.receipt.model.digest:
                raise UsageError("the confirmed model digest is not this receipt's model")
            desk.decide_model(session, receipt_id, decision)
        except SemlError as e:
            return failed(request, e)
        target = f"/receipts/{quote(session)}/{quote(receipt_id, safe=':')}?done={decision}"
        return RedirectResponse(target, status_code=303)

    @app.get("/verify", response_model=None)
    def verify_form(request: Request) -> Response:
        return page(request, "verify.html", rv=None, nav="runs")

    @app.post("/verify", response_model=None)
    def verify(request: Request) -> Response:
        form: dict[str, str] = request.state.form
        text = form.get("receipt", "").strip()
        if not text:
            return failed(request, UsageError("paste a receipt (the JSON of seml receipt get)"))
        try:
            check, source = desk.verify(text.encode())
        except SemlError as e:
            return failed(request, e)
        view = receipt_view(None, check, source, desk.key.fingerprint)
        return page(request, "verify.html", rv=view, nav="runs")

    @app.get("/static/{name}", response_model=None)
    def static(name: str) -> Response:
        if name not in statics:
            return Response(b"not found", status_code=404, media_type="text/plain")
        path = STATIC / name
        return Response(path.read_bytes(), media_type=_STATIC_TYPES[path.suffix])

    return app


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form (one value per field), None if it is anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    if any(len(v) != 1 for v in fields.values()):
        return None
    return {k: v[0] for k, v in fields.items()}
