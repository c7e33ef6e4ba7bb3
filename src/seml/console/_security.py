"""What keeps a local web console safe from other users of the machine and from other sites.

Pure parts (no I/O): the per-start access token, the browser sessions it opens, the CSRF token
bound to each, the Host check against DNS rebinding and the response headers. The app
(`seml.console._app`) applies them to every request in one middleware, before any route runs.

- **Access token.** `seml console` prints a URL carrying a random token (256 bits), new at each
  start. Opening it exchanges the token for a browser session: an HttpOnly, SameSite=Strict
  cookie holding another random value, and a redirect to the same page without the token (so
  the token is not left in the address bar). Every other request without a known session
  cookie is refused (401), static files included. Another local user can reach the port but
  not the token, which is printed only to the terminal of the user who started the console.
- **CSRF.** Every state-changing request is a POST that must carry, in its form, the token
  `HMAC-SHA256(secret, session id)` (a synchronizer token bound to the session cookie; the
  secret is new at each start). A missing or forged token is refused (403), and so is a POST
  whose `Origin` (when the browser sends one) is not this console. GET never changes state.
- **DNS rebinding.** A page of another site whose name resolves to 127.0.0.1 reaches the port
  with its own name in `Host`; only `127.0.0.1:PORT`, `localhost:PORT` and `[::1]:PORT` are
  served (403 otherwise). The cookie is never sent to another name anyway.
- **Headers.** A strict Content-Security-Policy (only this origin's scripts and styles, no
  inline script, no eval, no framing, forms post only here), X-Frame-Options DENY, no
  Referer to any other site (`same-origin`: the first URL carries the token; `no-referrer`
  would make the browser send `Origin: null` on the console's own forms), `no-store`
  caching, nosniff.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

__all__ = [
    "COOKIE",
    "CSP",
    "ConsoleGuard",
    "allowed_hosts",
    "security_headers",
]

COOKIE = "seml_console"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


def security_headers() -> dict[str, str]:
    """Headers every response of the console carries, refusals included."""
    return {
        "Content-Security-Policy": CSP,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }


def allowed_hosts(port: int) -> frozenset[str]:
    """The Host header values the console answers (loopback names with its port)."""
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})


@dataclass
class ConsoleGuard:
    """The access token of one start of the console and the browser sessions it opened."""

    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    _sessions: set[str] = field(default_factory=set, repr=False)

    def __repr__(self) -> str:  # never the token
        return f"ConsoleGuard(port={self.port}, sessions={len(self._sessions)})"

    def host_ok(self, host: str | None) -> bool:
        return host is not None and host.lower() in allowed_hosts(self.port)

    def origin_ok(self, origin: str | None) -> bool:
        """An Origin header (absent: not a cross-site browser request) names this console."""
        if origin is None:
            return True
        return origin.lower() in {f"http://{h}" for h in allowed_hosts(self.port)}

    def token_ok(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.token.encode())

    def open_session(self) -> str:
        """A new browser session (the cookie's value), after the token was shown."""
        sid = secrets.token_urlsafe(32)
        self._sessions.add(sid)
        return sid

    def session_ok(self, sid: str | None) -> bool:
        if not sid:
            return False
        return any(hmac.compare_digest(sid.encode(), s.encode()) for s in self._sessions)

    def csrf_token(self, sid: str) -> str:
        return hmac.new(self._secret, b"csrf\n" + sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, sid: str | None, token: str | None) -> bool:
        if not sid or not token or not self.session_ok(sid):
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(sid).encode())
