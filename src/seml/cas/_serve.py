"""Running the service: HTTPS only, uvicorn with uvloop + httptools, one process."""

from __future__ import annotations

import gc
import socket
import sys
from pathlib import Path

from seml.errors import NetworkError, UsageError

__all__ = ["parse_listen", "serve"]


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen wants HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def serve(
    directory: Path, listen: str, *, keys: Path | None = None, tls: Path | None = None
) -> None:
    """Serve until SIGINT/SIGTERM. Prints one ready line with the URL and certificate pin.

    `keys` and `tls` are folders holding the key material when it does not live in
    `directory` (Secrets mounted in a pod); `directory` then holds the database only.
    """
    import uvicorn

    from seml.attest import default_verifier
    from seml.cas._app import create_app
    from seml.cas._identity import load_identity
    from seml.cas._service import CasService
    from seml.cas._state import StateStore

    identity = load_identity(directory, keys=keys, tls=tls)
    store = StateStore(identity.database, identity.sign)
    service = CasService(identity, store, default_verifier())
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise NetworkError(f"cannot listen on {listen}: {e.strerror}") from e
    bound = sock.getsockname()[1]
    url_host = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"https://{url_host}:{bound}"
    config = uvicorn.Config(
        create_app(service),
        loop="uvloop",
        http="httptools",
        ssl_keyfile=str(identity.tls_key),
        ssl_certfile=str(identity.tls_cert),
        access_log=False,  # requests carry evidence and sealed secrets: never log them
        log_level="warning",
        backlog=2048,
        lifespan="off",
        server_header=False,
        timeout_keep_alive=30,
    )

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            # Everything loaded so far lives as long as the process: keep the collector from
            # walking it again and again under load (long pauses show up as p99 latency).
            gc.collect()
            gc.freeze()
            print(f"seml cas: serving {url} fingerprint {identity.fingerprint}", flush=True)

    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()
        store.close()
    sys.stdout.flush()
