"""A party, and helpers to submit sessions to the attestation service and call `seml run`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seml.cas import LocalCas
from seml.cli import seml_command
from seml.policy import (
    PartyKey,
    new_key_pair,
    public_key_text,
    session_from_document,
    sign_session,
)
from seml.runtime import measure


@dataclass
class Party:
    name: str
    key: PartyKey


@pytest.fixture(scope="module")
def alice() -> Party:
    return Party("alice", new_key_pair())


def session_document(
    name: str,
    party: Party,
    services: list[dict[str, Any]],
    *,
    secrets: Sequence[dict[str, Any]] = (),
    volumes: Sequence[str] = (),
    tolerate: Sequence[str] = ("simulation",),
) -> dict[str, Any]:
    return {
        "version": 1,
        "name": name,
        "parties": {party.name: public_key_text(party.key.public)},
        "approval": {"create": [party.name], "update": [party.name]},
        "security": {"tolerate": list(tolerate)},
        "secrets": list(secrets),
        "volumes": [{"name": v} for v in volumes],
        "services": services,
    }


def submit(cas: LocalCas, document: dict[str, Any], party: Party) -> str:
    session = session_from_document(document)
    with cas.client() as client:
        answer = client.submit_session(session, [sign_session(session, party.name, party.key)])
    return answer.hash


def submit_secret_service(
    cas: LocalCas, party: Party, session: str, code: Path, command: list[str]
) -> None:
    """Submit `session`: one service `app` that runs `command` with the files of `code`
    (measured), and gets the secret `s` as APP_SECRET."""
    doc = session_document(
        session,
        party,
        [
            {
                "name": "app",
                "measurements": [measure([code], command)],
                "environment": {"APP_SECRET": "$$SEML::s$$"},
            }
        ],
        secrets=[{"name": "s", "kind": "ascii", "readers": ["app"]}],
    )
    submit(cas, doc, party)


def seml_run(
    cas: LocalCas,
    session: str,
    service: str,
    *args: str,
    volumes: Path,
    cwd: Path | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`seml run` as a child process; `env` adds to (or overrides) this process's environment."""
    env = {**os.environ, **cas.env, **(env or {})}
    return subprocess.run(
        [
            *seml_command(),
            "run",
            "--session",
            session,
            "--service",
            service,
            "--volumes-dir",
            str(volumes),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
