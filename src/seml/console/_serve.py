"""`seml console`'s server: bind a loopback port, print the URL with the access token, serve."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from seml.console._app import create_console_app
from seml.console._party import PartyDesk
from seml.console._security import ConsoleGuard
from seml.errors import NetworkError, UsageError

__all__ = ["bind_loopback", "serve_console"]


def bind_loopback(listen: str) -> tuple[socket.socket, str]:
    """A listening socket on `listen` (HOST:PORT, port 0 for any free one) and the URL host.

    Only loopback addresses: the console's cookie travels in plain HTTP and its pages are
    the party's, so it is never offered to the network."""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen must be HOST:PORT (e.g. 127.0.0.1:0), got {listen!r}")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--listen host must be a loopback address, got {host!r}") from None
    if not address.is_loopback:
        raise UsageError(
            f"--listen {listen}: the console serves only a loopback address (127.0.0.1 or ::1); "
            "reach it from another machine through an SSH tunnel"
        )
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port_text)))
        sock.listen(64)
    except OSError as e:
        sock.close()
        raise NetworkError(f"cannot listen on {listen}: {e}") from e
    url_host = f"[{host}]" if address.version == 6 else host
    return sock, url_host


def serve_console(
    desk: PartyDesk,
    sock: socket.socket,
    url_host: str,
    *,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the console on `sock` (from `bind_loopback`) until interrupted, then close it;
    `announce` gets the lines to show the user."""
    import uvicorn

    port = sock.getsockname()[1]
    guard = ConsoleGuard(port)
    app = create_console_app(desk, guard)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    announce(f"SEML console for {desk.label} (key {desk.key.fingerprint})")
    announce(f"  open: http://{url_host}:{port}/?token={guard.token}")
    announce(
        "  the link carries this start's access token: whoever has it acts as your party; "
        "Ctrl-C stops the console"
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
