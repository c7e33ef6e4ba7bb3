"""Running the service: HTTPS only, uvicorn with uvloop + httptools, one process."""

from __future__ import annotations

import gc
import ipaddress
import re
import socket
import sys
from collections.abc import Iterable
from pathlib import Path

from seml.errors import NetworkError, UsageError

__all__ = ["client_urls", "interface_addresses", "parse_listen", "serve"]

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognising them, not binding


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen wants HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


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
) -> None:
    """Serve until SIGINT/SIGTERM. Prints one ready line with a URL a client can use and the
    certificate pin, then every other usable URL and what the parties need.

    `keys` and `tls` are folders holding the key material when it does not live in
    `directory` (Secrets mounted in a pod); `directory` then holds the database only.
    `advertise` is the URL the parties use when the listen address is not it (a DNS name,
    a forwarded port); it is printed first.
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

    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()
        store.close()
    sys.stdout.flush()
