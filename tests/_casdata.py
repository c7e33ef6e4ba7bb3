"""Session documents and signing helpers shared by the attestation service tests."""

from __future__ import annotations

from typing import Any

import yaml

from seml.cas import CasClient
from seml.policy import (
    PartyKey,
    Session,
    SessionSignature,
    new_key_pair,
    public_key_text,
    session_from_document,
    session_hash,
    sign_session,
)

GOOD = "ab" * 32
OTHER = "cd" * 32


class Parties:
    def __init__(self, *names: str) -> None:
        self.keys: dict[str, PartyKey] = {n: new_key_pair() for n in names}

    def public(self) -> dict[str, str]:
        return {n: public_key_text(k.public) for n, k in self.keys.items()}

    def sign(self, session: Session, *names: str) -> list[SessionSignature]:
        return [sign_session(session, n, self.keys[n]) for n in names or tuple(self.keys)]

    def provide(self, client: CasClient, session: Session, value: bytes) -> dict[str, str]:
        """The sealed value of the session's provided secret `pw`, signed by its provider."""
        spec = session.secret("pw")
        assert spec is not None and spec.provided_by is not None
        return {"pw": client.seal_provided(session, "pw", value, self.keys[spec.provided_by])}


def shared_document(
    name: str, parties: Parties, *, tolerate: tuple[str, ...] = ("simulation",)
) -> dict[str, Any]:
    """A two-party collaboration session with a trainer and a model runner."""
    names = list(parties.keys)
    return {
        "version": 1,
        "name": name,
        "predecessor": None,
        "parties": parties.public(),
        "approval": {"create": names, "update": names},
        "security": {"tolerate": list(tolerate)},
        "secrets": [
            {"name": "model_key", "kind": "key", "readers": ["train", "run"]},
            {"name": "api_token", "kind": "ascii", "size": 24, "readers": ["train"]},
            {"name": "tls", "kind": "x509", "common_name": "train.seml", "readers": ["train"]},
            {"name": "sig", "kind": "ed25519", "readers": ["train"]},
            {"name": "pw", "kind": "provided", "provided_by": names[0], "readers": ["run"]},
        ],
        "volumes": [{"name": "model"}],
        "services": [
            {
                "name": "train",
                "measurements": [GOOD],
                "command": ["python", "-m", "train"],
                "environment": {
                    "MODEL_KEY": "$$SEML::model_key$$",
                    "SIG": "$$SEML::sig.pub$$",
                    "TOKEN": "$$SEML::api_token$$",
                },
                "files": {"/tls/key.pem": "$$SEML::tls.key$$", "/tls/crt.pem": "$$SEML::tls.crt$$"},
                "volumes": {"model": "/model"},
            },
            {
                "name": "run",
                "measurements": [GOOD, OTHER],
                "environment": {
                    "MODEL_KEY": "$$SEML::model_key:base64$$",
                    "PW": "$$SEML::pw$$",
                },
                "volumes": {"model": "/model"},
            },
        ],
        "storage": {"location": "file:///tmp/seml-test-store"},
    }


def session_of(document: dict[str, Any]) -> Session:
    return session_from_document(document)


def update_of(previous: Session, **changes: Any) -> Session:
    doc = previous.document()
    doc.update(changes)
    doc["predecessor"] = session_hash(previous)
    return session_from_document(doc)


def as_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False)
