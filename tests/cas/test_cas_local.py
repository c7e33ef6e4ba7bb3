"""`seml.cas.LocalCas`: the one launcher of a local attestation service."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from seml.cas import LocalCas
from seml.errors import NetworkError

pytestmark = pytest.mark.integration


def _alive(cas: LocalCas) -> bool:
    return cas.running  # (a call: a property that changes under us is not narrowed by mypy)


def test_starts_initialises_logs_and_stops(tmp_path: Path) -> None:
    directory = tmp_path / "cas"
    with LocalCas(directory) as cas:
        assert (directory / "master.key").exists()  # initialised on first start
        assert cas.running and cas.url.startswith("https://127.0.0.1:")
        assert cas.env == {"SEML_CAS": cas.url, "SEML_CAS_FINGERPRINT": cas.fingerprint}
        with cas.client() as client:
            assert client.info().identity_key
        ready = f"serving {cas.url} fingerprint {cas.fingerprint}"
        assert ready in cas.output
        assert ready in (directory / "serve.log").read_text()
        pid = cas.pid
    assert not _alive(cas)
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


def test_kill_and_restart_keep_the_identity(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "cas.log"
    with LocalCas(tmp_path / "cas", log=log) as cas:
        fingerprint, first = cas.fingerprint, cas.url
        cas.kill()
        assert not _alive(cas)
        cas.start()  # no second init: the same keys, so the same pin
        assert cas.fingerprint == fingerprint
        cas.restart()
        assert cas.fingerprint == fingerprint and cas.running
        with cas.client() as client:
            assert client.info().fingerprint == fingerprint
    assert log.read_text().count("serving https://") == 3
    assert first in cas.output


def test_given_listen_address(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with LocalCas(tmp_path / "cas", listen=f"127.0.0.1:{port}") as cas:
        assert cas.url == f"https://127.0.0.1:{port}"


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cas = LocalCas(tmp_path / "cas", listen=f"127.0.0.1:{port}")
        with pytest.raises(
            NetworkError,
            match=rf"(?s)exited with status 7 before it was ready.*cannot listen on .*:{port}",
        ):
            cas.start()
    assert not cas.running


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    cas = LocalCas(tmp_path / "cas", stop_timeout=0.5)
    cas.start()
    pid = cas.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a stopped process cannot act on SIGTERM
    cas.stop()
    assert not cas.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
