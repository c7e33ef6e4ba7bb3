"""The little HTTP/1.1 `seml run` speaks to the service (`seml.cas._http`), against canned
answers from a real TLS server: each way an answer can end, and each broken answer refused."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from cas._tls_server import TlsServer
from seml.cas import CasClient
from seml.cas._identity import init_state_dir
from seml.errors import NetworkError


class _CannedServer(TlsServer):
    """Answers each request on a connection with the next canned bytes; after the last one (or
    an answer marked to close) it closes the connection."""

    def __init__(self, cert: Path, key: Path, answers: list[bytes]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        super().__init__(cert, key)

    def answer(self, tls: ssl.SSLSocket) -> None:
        self.connections += 1
        data = b""
        while self.answers:
            while b"\r\n\r\n" not in data:
                chunk = tls.recv(4096)
                if not chunk:  # the client closed
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            self.requests.append(head)
            answer = self.answers.pop(0)
            tls.sendall(answer)
            # An answer with neither a length nor chunks ends with the connection; a chunked
            # one keeps it (closing here raced the client's next request on a busy machine).
            ends = b"Content-Length" not in answer and b"chunked" not in answer
            if b"Connection: close" in answer or ends:
                return


@pytest.fixture
def identity(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    ident = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    yield ident.tls_cert, ident.tls_key, ident.fingerprint


def _client(
    identity: tuple[Path, Path, str], answers: list[bytes]
) -> tuple[_CannedServer, CasClient]:
    cert, key, pin = identity
    server = _CannedServer(cert, key, answers)
    return server, CasClient(f"https://127.0.0.1:{server.port}", pin, timeout=5)


def _ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def test_answers_by_length_chunked_and_until_close_on_one_keep_alive_connection(
    identity: tuple[Path, Path, str],
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;ext=1\r\n{"n":\r\n2\r\n 2\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    until_close = b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"n": 3}'
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b'{"n": 4}')
    server, client = _client(identity, [_ok(b'{"n": 1}'), chunked, until_close, interim])
    with client:
        got = [client._call("POST", "/v1/nonce")["n"] for _ in range(4)]
    server.close()
    assert got == [1, 2, 3, 4]
    # The connection the certificate was pinned on carries the first three requests; the
    # fourth needs a new one, after the third answer closed it. No other handshake.
    assert server.connections == 2
    assert server.requests[0].startswith(b"POST /v1/nonce HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}".encode() in server.requests[0]
    assert b"Content-Length: 0" in server.requests[0]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "ended after 2 of 10 bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}", "bad Content-Length"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x answer"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\n", "closed before the answer"),
    ],
)
def test_a_broken_answer_is_a_network_error_saying_what_is_wrong(
    identity: tuple[Path, Path, str], answer: bytes, reason: str
) -> None:
    server, client = _client(identity, [answer])
    with client, pytest.raises(NetworkError, match=reason):
        client._call("POST", "/v1/nonce")
    server.close()


def test_a_header_that_would_end_a_line_is_never_sent(identity: tuple[Path, Path, str]) -> None:
    server, client = _client(identity, [_ok(b"{}")])
    with client, pytest.raises(NetworkError, match="refusing to send the header"):
        client._call("GET", "/v1/info", headers={"X-Seml-Volume-Token": "t\r\nX-Evil: 1"})
    server.close()
    assert server.requests == []
