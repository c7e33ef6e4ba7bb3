"""Running the service: HTTPS only, uvicorn with uvloop + httptools, one process per state
folder (an exclusive lock), every client bounded in time and size (`seml.cas._limits`)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import gc
import ipaddress
import os
import re
import resource
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from seml.errors import NetworkError, SemlError, StorageError, UsageError

if TYPE_CHECKING:
    from seml.cas._identity import CasIdentity
    from seml.cas._limits import ConnectionDeadlines
    from seml.cas._state import SyncMode

__all__ = ["client_urls", "interface_addresses", "lock_state", "parse_listen", "serve"]

LOCK_NAME = "serve.lock"
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognising them, not binding


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen wants HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


@contextlib.contextmanager
def lock_state(database: Path) -> Iterator[None]:
    """Hold the state folder's exclusive lock: two services on one database would each keep
    their own audit head, nonces and caches, and contradict each other. The kernel releases
    the lock when the process ends, however it ends."""
    path = database.with_name(LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise StorageError(f"cannot open the service's lock file {path}: {e.strerror}") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise UsageError(
                f"another `seml cas serve` (pid {holder}) is serving the state in "
                f"{database.parent}: one service per state folder; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _more_files() -> None:
    """Raise the open-file limit to its hard maximum: every held connection costs one."""
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def interface_addresses() -> list[str]:
    """This machine's interface addresses (IPv4 and IPv6), in the order the OS lists them."""
    import psutil

    out: list[str] = []
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                out.append(a.address)
    return out


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def client_urls(
    host: str, port: int, interfaces: Iterable[str], *, advertise: str | None = None
) -> list[str]:
    """URLs a client can use for a service listening on `host`:`port`, best first.

    `advertise` (what the operator tells the parties, e.g. behind NAT or a DNS name) comes
    first. A wildcard listen address is no address to connect to: each non-loopback,
    non-link-local interface address is (IPv4 for 0.0.0.0; both families for ::); with none,
    the loopback address, which only this machine can use.
    """
    urls: list[str] = []
    if advertise:
        if not re.fullmatch(r"https://[^\s/]+(:\d{1,5})?/?", advertise):
            raise UsageError(f"--advertise wants https://HOST[:PORT], got {advertise!r}")
        urls.append(advertise.rstrip("/"))
    if host not in _WILDCARDS:
        urls.append(_url(host, port))
        return list(dict.fromkeys(urls))
    loopback = "127.0.0.1" if host != "::" else "::1"
    for raw in interfaces:
        try:
            ip = ipaddress.ip_address(raw.split("%", 1)[0])
        except ValueError:
            continue
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
            continue
        if ip.version == 6 and host != "::":
            continue
        urls.append(_url(str(ip), port))
    if len(urls) == (1 if advertise else 0):
        urls.append(_url(loopback, port))
    return list(dict.fromkeys(urls))


def serve(
    directory: Path,
    listen: str,
    *,
    keys: Path | None = None,
    tls: Path | None = None,
    advertise: str | None = None,
    deadlines: ConnectionDeadlines | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. Prints one ready line with a URL a client can use and the
    certificate pin, then every other usable URL and what the parties need.

    `keys` and `tls` are folders holding the key material when it does not live in
    `directory` (Secrets mounted in a pod); `directory` then holds the database only.
    `advertise` is the URL the parties use when the listen address is not it (a DNS name,
    a forwarded port); it is printed first. `deadlines`: how long a connection may take to
    shake hands, send a request's head and close after a refusal (default: `seml.cas._limits`).
    """
    from seml.cas._identity import load_identity

    identity = load_identity(directory, keys=keys, tls=tls)
    host, port = parse_listen(listen)
    with lock_state(identity.database):
        _serve(identity, host, port, advertise, deadlines=deadlines)


def _serve(
    identity: CasIdentity,
    host: str,
    port: int,
    advertise: str | None,
    *,
    sync: SyncMode = "group",
    deadlines: ConnectionDeadlines | None = None,
) -> None:
    """`sync` other than "group" is for benchmarks/cas_bench.py's comparison only (no command
    line option sets it)."""
    import uvicorn

    from seml.attest import default_verifier
    from seml.cas._app import create_app
    from seml.cas._limits import KEEP_ALIVE, ConnectionDeadlines, bounded_protocol
    from seml.cas._service import CasService
    from seml.cas._state import StateStore

    _more_files()
    bounds = deadlines or ConnectionDeadlines()
    listen = f"{host}:{port}"
    store = StateStore(identity.database, identity.sign, sync=sync)
    if sync != "group":
        print(f"seml cas: BENCHMARK ONLY: commits synced {sync!r}, not grouped", flush=True)
    service = CasService(identity, store, default_verifier())
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
    wildcard = host in _WILDCARDS
    try:
        urls = client_urls(
            host, bound, interface_addresses() if wildcard else (), advertise=advertise
        )
    except UsageError:
        sock.close()
        store.close()
        raise
    url = urls[0]
    config = uvicorn.Config(
        create_app(service),
        loop="uvloop",
        http=bounded_protocol(header_timeout=bounds.header),
        ssl_keyfile=str(identity.tls_key),
        ssl_certfile=str(identity.tls_cert),
        access_log=False,  # requests carry evidence and sealed secrets: never log them
        log_level="warning",
        backlog=2048,
        lifespan="off",
        server_header=False,
        proxy_headers=False,  # no answer depends on the client's address: no header rewrites it
        timeout_keep_alive=int(KEEP_ALIVE),
    )
    window = service.refusals.window

    def flush_refusals() -> None:
        with contextlib.suppress(SemlError):  # a full disk must not stop the timer
            service.flush_refusals(time.time())
        asyncio.get_running_loop().call_later(window, flush_refusals)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            loop = asyncio.get_running_loop()
            # uvicorn passes no TLS timeouts (asyncio's defaults: 60 s to shake hands, 30 s to
            # close): a client that never completes the handshake goes after TLS_HANDSHAKE,
            # and one that keeps sending to a closing connection after TLS_SHUTDOWN.
            loop.create_server = functools.partial(  # type: ignore[method-assign]
                loop.create_server,
                ssl_handshake_timeout=bounds.tls_handshake,
                ssl_shutdown_timeout=bounds.tls_shutdown,
            )
            await super().startup(sockets)
            loop.call_later(window, flush_refusals)
            # Everything loaded so far lives as long as the process: keep the collector from
            # walking it again and again under load (long pauses show up as p99 latency).
            gc.collect()
            gc.freeze()
            if bounds != ConnectionDeadlines():
                print(
                    f"seml cas: connection deadlines lowered: TLS handshake "
                    f"{bounds.tls_handshake:g} s, request head {bounds.header:g} s, "
                    f"closing after a refusal {bounds.tls_shutdown:g} s",
                    flush=True,
                )
            print(f"seml cas: serving {url} fingerprint {identity.fingerprint}", flush=True)
            where = f"listening on {_url(host, bound).removeprefix('https://')}"
            if len(urls) > 1:
                print(f"seml cas: {where}; clients can use {', '.join(urls)}", flush=True)
            elif wildcard or advertise:
                print(f"seml cas: {where}", flush=True)
            if (
                wildcard
                and not advertise
                and urls[-1].startswith(("https://127.", "https://[::1]"))
            ):
                print(
                    "seml cas: no interface but loopback: only this machine can reach it",
                    flush=True,
                )
            print(
                f"seml cas: give the parties --cas {url} --cas-fingerprint "
                f"{identity.fingerprint} (seml init --role party takes both)",
                flush=True,
            )

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            # Here, not after run(): uvicorn re-raises SIGTERM once serving ends, and the
            # process is gone before run() would return.
            with contextlib.suppress(SemlError):
                service.flush_refusals(time.time(), force=True)
                await store.durable()  # the store is not closed on this path

    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()
        with contextlib.suppress(SemlError):
            service.flush_refusals(time.time(), force=True)
        store.close()
    sys.stdout.flush()
