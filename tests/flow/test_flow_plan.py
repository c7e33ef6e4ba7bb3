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
        storage="s3://bucket/iris",
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
        storage="s3://bucket/iris",
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


def test_sessions_name_no_machine_local_path_endpoint_or_executable(
    parties: dict[str, str],
) -> None:
    # Each machine chooses its folders, storage endpoint and seml: a session names none of
    # them, so alice's and bob's machines can differ and every machine measures one command.
    shared = _collaboration(parties)
    private = private_session(
        collaboration="iris",
        collaboration_hash=session_hash(shared),
        party="alice",
        public_key=parties["alice"],
        measurement=M,
        storage="s3://bucket/iris",
    )
    services = [*shared.services, *private.services]
    assert len(services) == 8
    for service in services:
        assert service.command[0] == "seml", service.name
        for arg in service.command:
            assert not arg.startswith("/"), (service.name, arg)
            assert "endpoint" not in arg and "http" not in arg, (service.name, arg)
    upload = private.service("upload")
    run = shared.service("run-alice")
    assert upload is not None and run is not None
    assert upload.command[:3] == ["seml", "push", "data"]
    assert "--state-dir" not in upload.command  # the machine's SEML_STATE_DIR, passed by run
    assert run.command[-4:] == ["--input", "input/holdout.csv", "--out", "output"]


def test_layout_folders_are_what_each_machine_links_by_the_sessions_names() -> None:
    layout = FlowLayout(Path("/w"), ("alice", "bob"))
    assert layout.folders("alice") == {
        "data": Path("/w/parties/alice/data"),
        "input": Path("/w/parties/alice/input"),
        "output": Path("/w/parties/alice/predictions"),
    }
    assert layout.holdout("bob") == Path("/w/parties/bob/input/holdout.csv")
    assert layout.folders("cloud") == {}


def test_flow_sessions_are_the_same_whichever_order_the_parties_are_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each party writes the sessions itself and approves exactly the file it wrote: the same
    keys, platform ids and storage must give the same bytes, in any order of the flags."""
    from seml.cli import main

    for name in ("alice", "bob"):
        assert main(["keys", "new", name, "--dir", str(tmp_path)]) == 0
    ids = {m: "sha256:" + c * 64 for m, c in (("alice", "a"), ("bob", "b"), ("cloud", "c"))}
    orders = {"a": ["alice", "bob"], "b": ["bob", "alice"]}
    for out, order in orders.items():
        argv = ["flow", "sessions", str(tmp_path / out), "--storage", "s3://x/iris"]
        argv += ["--measurement", "ab" * 32]
        for p in order:
            argv += ["--party", f"{p}={tmp_path / p}.pub", "--platform", f"{p}={ids[p]}"]
        assert main([*argv, "--platform", f"cloud={ids['cloud']}"]) == 0
    capsys.readouterr()
    for name in ("iris", "iris-alice", "iris-bob"):
        assert (tmp_path / "a" / f"{name}.yaml").read_bytes() == (
            tmp_path / "b" / f"{name}.yaml"
        ).read_bytes()
