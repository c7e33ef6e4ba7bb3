"""What `seml run` reads from the service without pydantic or httpx: the service configuration
(a strict dataclass parser) and the pinned keep-alive connection (`http.client`)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cas._tls_server import TlsServer
from seml.cas import CasClient, ServiceConfig, VolumeGrant
from seml.cas._identity import init_state_dir
from seml.errors import NetworkError

GRANT = {"path": "/data", "key": "ab" * 32, "owner": "s", "volume": "data", "token": "T0KEN"}
CONFIG: dict[str, Any] = {
    "session": "s",
    "session_hash": "sha256:" + "0" * 64,
    "service": "train",
    "measurement": "cd" * 32,
    "tee": "simulation",
    "simulated": True,
    "weaknesses": ["simulation"],
    "command": ["python", "train.py"],
    "environment": {"PASSWORD": "hunter2"},
    "files": {"/tls/key.pem": "PRIVATE"},
    "volumes": {"data": GRANT},
    "secrets": ["password"],
    "storage": None,
    "completion": "CAPABILITY",
}


def test_service_config_round_trips_and_hides_secret_values() -> None:
    config = ServiceConfig.from_json(json.dumps(CONFIG))
    assert config.volumes["data"] == VolumeGrant(**GRANT)
    assert ServiceConfig.from_json(config.to_json()) == config
    assert dataclasses.asdict(config) == CONFIG
    shown = repr(config)
    for secret in ("hunter2", "PRIVATE", "T0KEN", "ab" * 32, "CAPABILITY"):
        assert secret not in shown
    # The optional fields may be absent.
    short = {k: v for k, v in CONFIG.items() if k not in ("storage", "completion")}
    assert ServiceConfig.from_json(json.dumps(short)).completion is None


# Values JSON must escape, or may not: quotes, backslashes, controls, line separators, non-ASCII.
AWKWARD = {
    "command": ["python", "-c", 'print("é \\u2028 \\x00")'],
    "environment": {"KEY": 'caf\u00e9 \u2603 "q" \\ \n', "EMPTY": ""},
    "files": {"/etc/x": "line1\nline2\t\u0001"},
    "completion": "cap-\u00fc",
}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"storage": "s3://b/p", "completion": None},
        {"volumes": {}, "command": []},
        {"volumes": {"data": GRANT, "other": {**GRANT, "path": "/o"}}},
    ],
)
def test_service_config_json_is_what_asdict_gives(changes: dict[str, Any]) -> None:
    """The service writes the configuration without `asdict`'s copy: the same bytes."""
    config = ServiceConfig.from_json(json.dumps({**CONFIG, **AWKWARD, **changes}))
    expected = json.dumps(dataclasses.asdict(config), ensure_ascii=False, separators=(",", ":"))
    assert config.to_json() == expected
    assert ServiceConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"extra": 1}, "unknown field 'extra'"),
        ({"tee": None}, "tee must be str, not NoneType"),
        ({"simulated": "true"}, "simulated must be bool, not str"),
        ({"simulated": 1}, "simulated must be bool, not int"),
        ({"weaknesses": "simulation"}, "weaknesses must be list, not str"),
        ({"command": ["python", 3]}, "an item of command must be str, not int"),
        ({"environment": {"A": 1}}, "environment['A'] must be str, not int"),
        ({"files": []}, "files must be dict, not list"),
        ({"volumes": {"data": {**GRANT, "token": 5}}}, "volume grant token must be str"),
        ({"volumes": {"data": {**GRANT, "spare": "x"}}}, "volume grant 'data' has unknown field"),
        ({"volumes": {"data": "grant"}}, "volume grant 'data' is not a JSON object"),
        ({"completion": 7}, "completion must be str, not int"),
    ],
)
def test_service_config_refuses_anything_but_its_exact_shape(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("(", r"\(")):
        ServiceConfig.from_json(json.dumps({**CONFIG, **change}))


@pytest.mark.parametrize("missing", ["session", "volumes", "secrets", "simulated"])
def test_service_config_refuses_a_missing_field(missing: str) -> None:
    document = {k: v for k, v in CONFIG.items() if k != missing}
    with pytest.raises(ValueError, match=f"lacks field '{missing}'"):
        ServiceConfig.from_json(json.dumps(document))


def test_service_config_refuses_what_is_not_an_object() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        ServiceConfig.from_json("[]")
    with pytest.raises(ValueError):
        ServiceConfig.from_json("not json")


class _OneShotServer(TlsServer):
    """An HTTPS server that answers each connection's first request, then closes it without
    saying so (as a service does when an idle keep-alive connection times out)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.requests: list[bytes] = []
        super().__init__(cert, key)

    def answer(self, tls: ssl.SSLSocket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:  # the client closed: no request
                return
            data += chunk
        self.requests.append(data.split(b"\r\n", 1)[0])
        body = json.dumps({"nonce": "AAAA", "n": len(self.requests)}).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        tls.sendall(head.encode() + b"\r\n\r\n" + body)
        tls.settimeout(0.2)  # let the client read the answer, then close without a word
        with contextlib.suppress(OSError):
            tls.recv(1)


@pytest.fixture
def one_shot(tmp_path: Path) -> Iterator[tuple[_OneShotServer, str]]:
    identity = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    server = _OneShotServer(identity.tls_cert, identity.tls_key)
    yield server, identity.fingerprint
    server.close()


def test_a_connection_closed_while_idle_is_replaced_and_no_request_is_sent_twice(
    one_shot: tuple[_OneShotServer, str],
) -> None:
    server, pin = one_shot
    with CasClient(f"https://127.0.0.1:{server.port}", pin) as client:
        first = client._call("POST", "/v1/nonce")
        threading.Event().wait(0.5)  # the server has closed the connection by now
        second = client._call("POST", "/v1/nonce")
    assert (first["n"], second["n"]) == (1, 2)
    assert server.requests == [b"POST /v1/nonce HTTP/1.1"] * 2


class _GoneServer(TlsServer):
    """A service that goes away once a client has pinned its certificate: it closes that
    connection and stops listening."""

    def answer(self, tls: ssl.SSLSocket) -> None:
        return  # closes the connection


def test_no_answer_is_a_network_error_naming_the_service(tmp_path: Path) -> None:
    identity = init_state_dir(tmp_path / "cas", hosts=["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    server = _GoneServer(identity.tls_cert, identity.tls_key)
    client = CasClient(f"https://127.0.0.1:{server.port}", identity.fingerprint)
    server.close()
    with client, pytest.raises(NetworkError, match=rf"127\.0\.0\.1:{server.port}/v1/nonce: "):
        client.nonce()
