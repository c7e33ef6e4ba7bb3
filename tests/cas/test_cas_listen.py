"""`seml cas serve` prints addresses a client can use, never the wildcard it listens on."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from seml.cas import LocalCas
from seml.cas._serve import client_urls, interface_addresses
from seml.errors import UsageError


def _all_output(cas: LocalCas) -> str:
    """What the server printed at start-up (its last start-up line is the parties' hint)."""
    deadline = time.monotonic() + 10
    while "give the parties" not in cas.output and time.monotonic() < deadline:
        time.sleep(0.05)
    return cas.output


ANY = "0.0.0.0"  # noqa: S104 - the address under test, nothing binds to it here
INTERFACES = ["127.0.0.1", "::1", "192.0.2.2", "fd00::2", "fe80::fc:ff:fe00:1%eth0", "169.254.7.7"]


def test_a_wildcard_listen_address_gives_each_usable_interface_address() -> None:
    assert client_urls(ANY, 8443, INTERFACES) == ["https://192.0.2.2:8443"]
    assert client_urls("::", 8443, INTERFACES) == [
        "https://192.0.2.2:8443",
        "https://[fd00::2]:8443",
    ]


def test_only_loopback_gives_loopback_and_a_named_address_is_kept() -> None:
    assert client_urls(ANY, 1, ["127.0.0.1", "::1"]) == ["https://127.0.0.1:1"]
    assert client_urls("::", 1, []) == ["https://[::1]:1"]
    assert client_urls("10.1.2.3", 9, INTERFACES) == ["https://10.1.2.3:9"]
    assert client_urls("::1", 9, INTERFACES) == ["https://[::1]:9"]


def test_an_advertised_url_comes_first() -> None:
    urls = client_urls(ANY, 8443, INTERFACES, advertise="https://cas.example.org:443/")
    assert urls == ["https://cas.example.org:443", "https://192.0.2.2:8443"]
    with pytest.raises(
        UsageError, match=r"--advertise wants https://HOST\[:PORT\], got 'http://x'"
    ):
        client_urls(ANY, 1, INTERFACES, advertise="http://x")


@pytest.mark.integration
def test_serving_on_every_interface_prints_a_url_that_works(tmp_path: Path) -> None:
    with LocalCas(tmp_path / "state", listen="0.0.0.0:0") as cas:
        assert not cas.url.startswith("https://0.0.0.0")
        usable = client_urls(ANY, int(cas.url.rsplit(":", 1)[1]), interface_addresses())
        assert cas.url == usable[0]
        with cas.client() as client:  # the printed URL reaches the service
            assert client.info().fingerprint == cas.fingerprint
        out = _all_output(cas)
    port = cas.url.rsplit(":", 1)[1]
    assert f"seml cas: serving {cas.url} fingerprint {cas.fingerprint}" in out
    assert f"listening on 0.0.0.0:{port}" in out
    assert f"give the parties --cas {cas.url} --cas-fingerprint {cas.fingerprint}" in out


@pytest.mark.integration
def test_an_advertised_url_is_the_one_printed(tmp_path: Path) -> None:
    env = {**os.environ, "SEML_CAS_ADVERTISE": "https://cas.example.org:8443"}
    with LocalCas(tmp_path / "state", listen="127.0.0.1:0", env=env) as cas:
        assert cas.url == "https://cas.example.org:8443"
        out = _all_output(cas)
    assert "clients can use https://cas.example.org:8443, https://127.0.0.1:" in out
