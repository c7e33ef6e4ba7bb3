"""examples/iris/README.md, followed literally by three people on three machines.

Every fenced block tagged ``sh role=NAME`` is run, in the order of the page, by that person: on
a machine of their own (own HOME and working folder, own profile, an environment holding only
what the README tells them to set), with `seml` on PATH. Blocks tagged ``agreed`` and
``receives`` list the values a person sets by hand; the test checks their names and gives them
the real values: the storage location, endpoint and credentials agreed beforehand (a real
SeaweedFS here), and what the others print and send (service URL and pin, platform ids, public
key files). The only other change to the page's text: the operator's port 8443 becomes a free
one. So the README cannot drift from what works.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "examples" / "iris" / "README.md"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.long,
    pytest.mark.timeout(1800),
]

BLOCK = re.compile(r"^```sh role=(\w+)([^\n]*)\n(.*?)^```", re.M | re.S)
ROLES = ("operator", "alice", "bob")
AGREED = {"STORAGE", "S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
# What each person's commands print that the others receive: name -> (sender, pattern).
SENT = {
    "CAS_URL": ("operator", r"service URL:\s+(https://\S+)"),
    "CAS_PIN": ("operator", r"\bpin:\s+(sha256:[0-9a-f]{64})"),
    "CLOUD_ID": ("operator", r"cloud platform id:\s+(sha256:[0-9a-f]{64})"),
    "ALICE_ID": ("alice", r"platform id:\s+(sha256:[0-9a-f]{64})"),
    "BOB_ID": ("bob", r"platform id:\s+(sha256:[0-9a-f]{64})"),
}


@dataclass
class Block:
    role: str
    flags: set[str]
    body: str


def blocks() -> list[Block]:
    found = [
        Block(m.group(1), set(m.group(2).split()), m.group(3))
        for m in BLOCK.finditer(README.read_text())
    ]
    assert found, "no tagged blocks in the README"
    return found


def _names(body: str) -> set[str]:
    return set(re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", body, re.M))


@dataclass
class Machine:
    """One person's machine: its own home (working folder), variables and transcript."""

    role: str
    home: Path
    variables: dict[str, str] = field(default_factory=dict)
    transcript: str = ""

    def env(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        env = {
            "HOME": str(self.home),
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
            "COLUMNS": "120",
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        }
        env.update(self.variables)
        return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))  # noqa: S104 - the README's operator listens on every interface
        return int(s.getsockname()[1])


def test_iris_readme_as_three_people(tmp_path: Path, seaweedfs: Any) -> None:
    port = _free_port()
    bucket = seaweedfs.create_bucket("iris-readme")
    machines = {r: Machine(r, tmp_path / r / "home" / r) for r in ROLES}
    for m in machines.values():
        m.home.mkdir(parents=True)
    agreed = {
        "STORAGE": f"s3://{bucket}/run1",
        "S3_ENDPOINT": seaweedfs.endpoint,
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
    }
    server: subprocess.Popen[bytes] | None = None
    started = time.monotonic()
    try:
        for block in blocks():
            if "agreed" in block.flags:
                assert block.role == "all" and _names(block.body) == AGREED, block.body
                for m in machines.values():
                    m.variables.update(agreed, AWS_DEFAULT_REGION="us-east-1")
                continue
            m = machines[block.role]
            if "receives" in block.flags:
                for name in _names(block.body):
                    assert name in SENT, f"{block.role} receives {name}, which nobody sends"
                    sender, pattern = SENT[name]
                    values = re.findall(pattern, machines[sender].transcript)
                    assert values, f"{sender}'s commands did not print {name} before now"
                    m.variables[name] = values[0]
                for party in re.findall(r"\b(\w+)\.pub\b", block.body):
                    (key,) = machines[party].home.glob(f"**/keys/{party}.pub")
                    shutil.copy(key, m.home / f"{party}.pub")
                continue
            body = block.body.replace(":8443", f":{port}") if m.role == "operator" else block.body
            if "background" in block.flags:
                out = tmp_path / f"{m.role}-background.out"
                with out.open("wb") as sink:
                    server = subprocess.Popen(
                        ["bash", "-euo", "pipefail", "-c", body],
                        cwd=m.home,
                        env=m.env(),
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                for _ in range(600):
                    if "serving" in out.read_text() or server.poll() is not None:
                        break
                    time.sleep(0.1)
                assert "serving" in out.read_text(), out.read_text()
                m.transcript += out.read_text()
                continue
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body],
                cwd=m.home,
                env=m.env(),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            m.transcript += result.stdout + result.stderr
            assert result.returncode == 0, (
                f"{m.role}$ {body}\n{(result.stdout + result.stderr)[-4000:]}"
            )
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    print(f"the README's flow took {time.monotonic() - started:.0f} s")

    alice, bob, operator = machines["alice"], machines["bob"], machines["operator"]
    # The operator's service announced an address a party can use, never 0.0.0.0.
    assert "0.0.0.0" not in alice.variables["CAS_URL"]  # noqa: S104 - not a bind
    # Each party chose its own root; predictions after the update, for every held-out row.
    for m, root in ((alice, alice.home / "iris-alice"), (bob, bob.home / "seml" / "bob")):
        lines = (root / "output" / "classification.csv").read_text().splitlines()
        assert lines[0].startswith("row,prediction") and len(lines) == 11, lines
        for session in (m.home / "sessions").glob("*.yaml"):
            text = session.read_text()
            assert str(tmp_path) not in text and seaweedfs.endpoint not in text, session
    # The update became version 2 of iris when bob approved it, and the models were retrained.
    assert "accepted iris version 2" in bob.transcript, bob.transcript[-3000:]
    assert "audit log verified" in bob.transcript
    # Every service run got storage settings from its machine's profile: names, never values.
    passing = [
        line
        for m in machines.values()
        for line in m.transcript.splitlines()
        if line.startswith("seml run: passing ")
    ]
    assert len(passing) == 16, passing  # 2 uploads, then 7 runs per round, 2 rounds
    for line in passing:
        assert "SEML_S3_ENDPOINT" in line and "AWS_SECRET_ACCESS_KEY" in line, line
        assert seaweedfs.secret_key not in line
    # No party's rows on the operator's machine; storage holds nothing readable.
    alice_rows = (alice.home / "iris-alice" / "data" / "alice.csv").read_bytes().splitlines()[1:]
    bob_rows = (bob.home / "seml" / "bob" / "data" / "bob.csv").read_bytes().splitlines()[1:]
    unique = (set(alice_rows) ^ set(bob_rows)) - {b""}
    for path in operator.home.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert not any(r in blob for r in unique), path
    client = seaweedfs.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("run1/datasets/alice/") for k in keys)
    assert any(k.startswith("run1/model/") for k in keys)
    for key in keys:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for marker in (b"sepal_length", b"species", b"schema.json"):
            assert marker not in body and marker.decode() not in key
