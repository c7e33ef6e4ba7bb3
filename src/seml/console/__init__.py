"""A local web console for one party: its sessions and proposals, the review of each, approving
or rejecting with a confirmation step, the audit entries it may read (`seml console`).

The console runs on the party's machine, on a loopback port, with the party's signing key;
signing happens in its process, never in the browser and never at the attestation service.
Server-rendered HTML (Jinja2, autoescaped) with htmx, served from the package; no asset comes
from the internet. Access token, CSRF, Host and header rules: `seml.console._security`.
"""

from seml.console._app import create_console_app
from seml.console._party import PartyDesk
from seml.console._security import ConsoleGuard
from seml.console._serve import bind_loopback, serve_console

__all__ = ["ConsoleGuard", "PartyDesk", "bind_loopback", "create_console_app", "serve_console"]
