"""Profiles: the file's model, reading and writing it, choosing a profile, and what a profile
gives (environment defaults, the variables a service gets for storage)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from seml._environ import code_loading
from seml.errors import UsageError
from seml.profiles import (
    ConfigFile,
    Profile,
    StorageSettings,
    config_path,
    dump_config,
    load_config,
    parse_config,
    profile_variables,
    save_config,
    select_profile,
    storage_environment,
)

PIN = "sha256:" + "ab" * 32

ALICE = f"""
version: 1
current: alice
profiles:
  alice:
    role: party
    party: alice
    signing_key: /srv/alice/keys/alice.key
    platform_key: /srv/alice/keys/platform.key
    cas: {{url: "https://cas.example.org:8443", fingerprint: "{PIN}"}}
    volumes: /srv/alice/volumes
    state: /srv/alice/state
    folders: {{data: /srv/alice/data}}
    storage:
      location: s3://iris/consortium
      endpoint: http://10.0.0.2:8333
      credentials: {{env: {{access_key_id: ALICE_KEY, secret_access_key: ALICE_SECRET}}}}
    seml: /opt/seml/bin/seml
  lab:
    role: operator
    service: {{state: /srv/cas}}
"""


def test_a_written_configuration_reads_back_the_same() -> None:
    config = parse_config(ALICE, source="t")
    assert parse_config(dump_config(config), source="again") == config
    alice = config.profiles["alice"]
    assert alice.cas.url == "https://cas.example.org:8443"
    assert alice.folders == {"data": Path("/srv/alice/data")}
    assert config.profiles["lab"].service is not None
    assert config.profiles["lab"].service.listen == "0.0.0.0:8443"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("volumes: /srv/alice/volumes", "volumes: v"), r"volumes: v is not an absolute"),
        (("https://cas.example.org:8443", "http://cas:1"), r"cas.url: 'http://cas:1' is not https"),
        ((PIN, "sha256:ABC"), r"cas.fingerprint: 'sha256:ABC' is not sha256:<64"),
        (("    party: alice\n", ""), r"a party profile names its party"),
        (("s3://iris/consortium", "ftp://x"), r"'ftp://x' is not s3://BUCKET"),
        (("current: alice", "current: bob"), r"current profile 'bob' is not among"),
        (("    seml: /opt", "    password: x\n    seml: /opt"), r"unknown key 'password' in"),
        (
            ("{env: {access_key_id: ALICE_KEY, secret_access_key: ALICE_SECRET}}",
             "{env: {}, aws_profile: p}"),
            r"credentials come from env, or from aws_profile and/or file: not both",
        ),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_its_key(change: tuple[str, str], reason: str) -> None:
    text = ALICE.replace(*change)
    assert text != ALICE
    with pytest.raises(UsageError, match=reason) as e:
        parse_config(text, source="cfg.yaml")
    assert str(e.value).startswith("cfg.yaml: ")


def test_not_yaml_and_not_a_mapping_are_refused() -> None:
    with pytest.raises(UsageError, match="cfg: not valid YAML at line 1"):
        parse_config("profiles: [", source="cfg")
    with pytest.raises(UsageError, match="cfg: a seml configuration is a mapping"):
        parse_config("- a", source="cfg")
    assert parse_config("", source="cfg") == ConfigFile()


def test_the_file_is_written_0600_in_a_0700_folder_and_a_missing_one_is_empty(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cfg" / "config.yaml"
    assert load_config(path) == ConfigFile()
    config = parse_config(ALICE, source="t")
    save_config(path, config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_config(path) == config


def test_where_the_file_is() -> None:
    assert config_path({"SEML_CONFIG_DIR": "/c"}) == Path("/c/config.yaml")
    assert config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/seml/config.yaml")
    assert config_path({"HOME": "/h"}) == Path("/h/.config/seml/config.yaml")


def test_flag_then_environment_then_current_then_none() -> None:
    config = parse_config(ALICE, source="t")
    path = Path("/cfg.yaml")
    chosen = select_profile(config, path, flag="lab", environ={"SEML_PROFILE": "alice"})
    assert (chosen.name, chosen.how) == ("lab", "--profile")
    chosen = select_profile(config, path, flag=None, environ={"SEML_PROFILE": "lab"})
    assert (chosen.name, chosen.how) == ("lab", "SEML_PROFILE")
    chosen = select_profile(config, path, flag=None, environ={})
    assert (chosen.name, chosen.how) == ("alice", "current")
    chosen = select_profile(ConfigFile(), path, flag=None, environ={})
    assert (chosen.name, chosen.profile, chosen.how) == (None, None, "none")


def test_a_profile_asked_for_by_name_must_exist() -> None:
    config = parse_config(ALICE, source="t")
    with pytest.raises(UsageError, match=r"no profile 'bob' in /c.yaml \(given by --profile; "):
        select_profile(config, Path("/c.yaml"), flag="bob", environ={})
    with pytest.raises(UsageError, match=r"given by SEML_PROFILE; profiles: alice, lab"):
        select_profile(config, Path("/c.yaml"), flag=None, environ={"SEML_PROFILE": "bob"})


def test_a_profile_gives_its_values_to_the_variables_seml_reads() -> None:
    alice = parse_config(ALICE, source="t").profiles["alice"]
    assert profile_variables(alice) == {
        "SEML_CAS": "https://cas.example.org:8443",
        "SEML_CAS_FINGERPRINT": PIN,
        "SEML_PLATFORM_KEY": "/srv/alice/keys/platform.key",
        "SEML_SIGNING_KEY": "/srv/alice/keys/alice.key",
        "SEML_VOLUMES_DIR": "/srv/alice/volumes",
        "SEML_STATE_DIR": "/srv/alice/state",
        "SEML_S3_ENDPOINT": "http://10.0.0.2:8333",
        "SEML_STORAGE": "s3://iris/consortium",
        "SEML_EXECUTABLE": "/opt/seml/bin/seml",
    }
    lab = parse_config(ALICE, source="t").profiles["lab"]
    assert profile_variables(lab) == {
        "SEML_CAS_STATE": "/srv/cas",
        "SEML_CAS_LISTEN": "0.0.0.0:8443",
    }


def _storage(credentials: dict[str, object] | None) -> StorageSettings:
    return StorageSettings.model_validate({"credentials": credentials})


def test_storage_credentials_come_from_the_named_variables_under_aws_names() -> None:
    env = {"ALICE_KEY": "id", "ALICE_SECRET": "s3cr3t", "AWS_ACCESS_KEY_ID": "not-this"}
    storage = _storage({"env": {"access_key_id": "ALICE_KEY", "secret_access_key": "ALICE_SECRET"}})
    out, missing = storage_environment(storage, env, endpoint="http://e:1")
    assert out == {
        "SEML_S3_ENDPOINT": "http://e:1",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
    }
    assert missing == []
    out, missing = storage_environment(storage, {"ALICE_KEY": "id"})
    assert out == {"AWS_ACCESS_KEY_ID": "id"}
    assert missing == ["ALICE_SECRET"]


def test_storage_credentials_from_an_aws_profile_or_file_are_read_as_static_keys(
    tmp_path: Path,
) -> None:
    # Never the file itself: a credentials file may name a credential_process, which boto3
    # would run inside the service (seml run refuses AWS_SHARED_CREDENTIALS_FILE).
    creds = tmp_path / "credentials"
    creds.write_text(
        "[default]\naws_access_key_id = d-id\naws_secret_access_key = d-key\n"
        "[p]\naws_access_key_id = p-id\naws_secret_access_key = p-key\n"
        "[proc]\ncredential_process = /bin/evil\n"
    )
    out, missing = storage_environment(
        _storage({"file": str(creds), "aws_profile": "p"}), {"AWS_REGION": "eu-west-1"}
    )
    assert out == {
        "AWS_ACCESS_KEY_ID": "p-id",
        "AWS_SECRET_ACCESS_KEY": "p-key",
        "AWS_REGION": "eu-west-1",
    }
    assert missing == []
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(creds.read_text())
    out, _ = storage_environment(_storage({"aws_profile": "default"}), {"HOME": str(home)})
    assert out == {"AWS_ACCESS_KEY_ID": "d-id", "AWS_SECRET_ACCESS_KEY": "d-key"}
    out, missing = storage_environment(_storage({"file": str(creds), "aws_profile": "proc"}), {})
    assert out == {}
    assert missing == [f"static keys of profile [proc] in {creds}"]
    assert not [k for k in out if code_loading(k)]


def test_without_a_source_the_standard_aws_variables_that_are_set_are_passed() -> None:
    env = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "k", "HOME": "/h", "AWS_X": "y"}
    out, missing = storage_environment(None, env)
    assert out == {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "k"}
    assert missing == []
    assert storage_environment(None, {}) == ({}, [])


def test_profile_model_refuses_a_party_running_a_service() -> None:
    with pytest.raises(ValueError, match="only an operator profile runs an attestation service"):
        Profile.model_validate({"role": "party", "party": "a", "service": {"state": "/srv/cas"}})
