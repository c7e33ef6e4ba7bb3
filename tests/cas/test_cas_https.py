"""The service over real HTTPS (`seml cas serve`): the pin is the identity, and a certificate
swapped behind a running client fails the handshake instead of being trusted."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
from pathlib import Path

import pytest

from seml.cas import CasClient, LocalCas, init_state_dir
from seml.errors import NetworkError, UsageError

pytestmark = pytest.mark.integration


def test_pinning(cas_server: LocalCas) -> None:
    with cas_server.client() as client:
        assert client.info().fingerprint == cas_server.fingerprint
    # A wrong pin is a trust failure of the connection (exit 7), saying what to check.
    with pytest.raises(NetworkError, match=r"not the pinned sha256:0+: check --cas-fingerprint"):
        CasClient(cas_server.url, "sha256:" + "0" * 64)
    with pytest.raises(UsageError, match="must be https"):
        CasClient(cas_server.url.replace("https", "http"), cas_server.fingerprint)
    with pytest.raises(UsageError, match="must be sha256:<64 hex>"):
        CasClient(cas_server.url, "md5:00")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_swapped_certificate_fails_the_handshake(tmp_path: Path) -> None:
    port = _free_port()
    with LocalCas(tmp_path / "cas", listen=f"127.0.0.1:{port}") as cas:
        pin = cas.fingerprint
        client = CasClient(cas.url, pin)
        assert client.info().fingerprint == pin
        # The operator restarts the service with another TLS key and certificate on the same
        # address: the client's connections trust only the pinned certificate.
        cas.kill()
        other = init_state_dir(tmp_path / "other", hosts=["127.0.0.1"], now=dt.datetime.now(dt.UTC))
        for name in ("tls.key", "tls.crt"):
            shutil.copy(other.directory / name, cas.directory / name)
        cas.start()
        assert cas.fingerprint == other.fingerprint != pin
        with client, pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
            client.nonce()
        with pytest.raises(NetworkError, match=f"presents certificate {other.fingerprint}"):
            CasClient(cas.url, pin)


def test_restart_keeps_the_identity(cas_server: LocalCas) -> None:
    with cas_server.client() as client:
        before = client.info()
    cas_server.restart()
    with cas_server.client() as client:
        assert client.info() == before
