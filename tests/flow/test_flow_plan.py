"""The flow's sessions are built through the policy model: what is written parses back to the
same session (same hash), and a value the schema refuses is a usage error naming the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from seml.errors import UsageError
from seml.flow import FlowLayout, collaboration_session, private_session
from seml.flow._plan import dump_session, training_specs
from seml.policy import Session, new_key_pair, parse_session, public_key_text, session_hash

M = "ab" * 32
PLATFORM = "sha256:" + "cd" * 32


def _collaboration(parties: dict[str, str], platform: str = PLATFORM) -> Session:
    return collaboration_session(
        name="iris",
        parties=parties,
        measurement=M,
        storage="file:///srv/store",
        layout=FlowLayout(Path("/work"), tuple(parties)),
        specs=training_specs(["classification"]),
        platforms={"cloud": platform},
    )


@pytest.fixture(scope="module")
def parties() -> dict[str, str]:
    return {p: public_key_text(new_key_pair().public) for p in ("alice", "bob")}


def test_written_sessions_parse_back_to_the_same_session(parties: dict[str, str]) -> None:
    shared = _collaboration(parties)
    assert parse_session(dump_session(shared)) == shared
    private = private_session(
        collaboration="iris",
        collaboration_hash=session_hash(shared),
        party="alice",
        public_key=parties["alice"],
        measurement=M,
        storage="file:///srv/store",
        layout=FlowLayout(Path("/work"), ("alice", "bob")),
    )
    assert parse_session(dump_session(private)) == private
    data_key = private.secret("data_key")
    assert data_key is not None and data_key.export[0].session_hash == session_hash(shared)
    fetch = shared.service("fetch")
    assert fetch is not None and fetch.platforms == [PLATFORM]
    assert [s.import_.session for s in shared.secrets if s.import_] == ["iris-alice", "iris-bob"]
    # Only what the flow set is written: no null defaults for people to read past.
    assert "null" not in dump_session(shared).replace("predecessor: null", "")


def test_a_refused_value_names_the_session_and_the_key(parties: dict[str, str]) -> None:
    with pytest.raises(UsageError, match=r"collaboration session iris: parties: party bob"):
        _collaboration({**parties, "bob": "not a key"})
    with pytest.raises(UsageError, match=r"collaboration session iris: platforms"):
        _collaboration(parties, platform="not-a-platform-id")
