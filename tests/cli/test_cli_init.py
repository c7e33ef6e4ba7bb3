"""`seml init` for both roles, `seml profile`, and the precedence of a profile's values, through
the real `seml` entry point: as a program where a new process matters (`seml_as`), else in this
process (`seml_in`: `seml.cli.main`, the same environment and output, no interpreter start)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from _machine import seml_as
from _machine import seml_in as seml
from seml.cli import seml_command
from seml.errors import UsageError

pytestmark = pytest.mark.integration


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _value(out: str, label: str) -> str:
    line = next(x for x in out.splitlines() if x.strip().startswith(label))
    return line.split(label, 1)[1].split()[0]


def test_party_init_creates_its_folders_and_keys_and_says_what_to_exchange(
    tmp_path: Path,
) -> None:
    cfg, root = tmp_path / "cfg", tmp_path / "srv" / "alice"
    r = seml_as(cfg, "init", "--role", "party", "--name", "alice", "--root", str(root),
             "--storage", "s3://iris/consortium", "--s3-endpoint", "http://10.0.0.2:8333",
             "--access-key-env", "ALICE_KEY", "--secret-key-env", "ALICE_SECRET")  # fmt: skip
    assert r.returncode == 0, r.stderr
    for folder in ("volumes", "state", "data", "input", "output", "keys"):
        assert (root / folder).is_dir(), folder
    assert _mode(root / "keys") == 0o700 and _mode(root / "state") == 0o700
    assert _mode(root / "keys" / "alice.key") == 0o600
    assert _mode(root / "keys" / "platform.key") == 0o600
    config = cfg / "config.yaml"
    assert _mode(config) == 0o600 and _mode(cfg) == 0o700
    # What alice sends: exactly the public key and platform id of the files just made.
    public = (root / "keys" / "alice.pub").read_text().strip()
    assert _value(r.stdout, "public key:") == public
    platform = seml_as(cfg, "platform", "id").stdout.strip()  # the profile's platform key
    assert platform.startswith("sha256:")
    assert _value(r.stdout, "platform id:") == platform
    # ... and what she needs: the service's URL and pin (not given yet), the others' keys.
    assert "the operator: the attestation service's URL and pin" in r.stdout
    assert "--cas URL --cas-fingerprint PIN" in r.stdout
    assert "each other party: its name, public key and platform id" in r.stdout
    # The profile names the credentials' source, never a value; paths are absolute.
    doc = yaml.safe_load(config.read_text())
    assert doc["current"] == "alice"
    alice = doc["profiles"]["alice"]
    assert alice["storage"]["credentials"] == {
        "env": {"access_key_id": "ALICE_KEY", "secret_access_key": "ALICE_SECRET"}
    }
    assert alice["folders"] == {n: str(root / n) for n in ("data", "input", "output")}
    assert alice["seml"] == seml_command()[0]


def test_init_again_keeps_the_keys_and_fills_in_the_service(tmp_path: Path) -> None:
    cfg, root = tmp_path / "cfg", tmp_path / "alice"
    first = seml(cfg, "init", "--role", "party", "--name", "alice", "--root", str(root))
    assert first.returncode == 0, first.stderr
    key = (root / "keys" / "alice.key").read_bytes()
    pin = "sha256:" + "ab" * 32
    again = seml(cfg, "init", "--role", "party", "--name", "alice",
                 "--cas", "https://cas.example.org:8443", "--cas-fingerprint", pin)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "profile alice (party alice) updated" in again.stdout
    assert "(created)" not in again.stdout
    assert (root / "keys" / "alice.key").read_bytes() == key
    assert _value(again.stdout, "public key:") == _value(first.stdout, "public key:")
    assert f"https://cas.example.org:8443 pinned {pin}" in again.stdout
    assert "the attestation service's URL and pin" not in again.stdout


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--role", "party"], "a party's profile needs --name PARTY"),
        (["--role", "admin", "--name", "a"], "--role is party or operator, not 'admin'"),
        (["--role", "party", "--name", "a", "--cas", "http://x:1"], "is not https://HOST:PORT"),
        (["--role", "party", "--name", "a", "--cas-fingerprint", "sha1:x"], "is not sha256:"),
        (["--role", "party", "--name", "a", "--listen", "0.0.0.0:1"], "are for --role operator"),
        (["--role", "operator", "--listen", "127.0.0.1:0"], "needs a fixed port"),
        (["--role", "party", "--name", "a", "--seml", "/nonexistent"], "not an executable file"),
        (["--role", "party", "--name", "a b"], "profile name 'a b'"),
        (["--role", "party", "--name", "a", "--folder", "x/y=/tmp"], "--folder 'x/y'"),
        (["--role", "party", "--name", "a", "--storage", "gs://b"], "is not s3://BUCKET"),
    ],
)
def test_bad_init_is_refused_before_anything_is_created(
    tmp_path: Path, args: list[str], reason: str
) -> None:
    r = seml(tmp_path / "cfg", "init", *args, "--root", str(tmp_path / "root"))
    assert r.returncode == UsageError.exit_code, r.stderr
    assert reason in r.stderr and r.stderr.startswith("seml: error: ")
    assert not (tmp_path / "root").exists() and not (tmp_path / "cfg").exists()


def test_a_profile_keeps_its_role(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    assert (
        seml(
            cfg, "init", "--role", "party", "--name", "x", "--root", str(tmp_path / "x")
        ).returncode
        == 0
    )
    r = seml(cfg, "init", "--role", "operator", "--profile", "x", "--listen", "127.0.0.1:9")
    assert r.returncode == UsageError.exit_code
    assert "profile x is a party profile, not operator" in r.stderr


def test_operator_init_makes_the_service_and_prints_what_the_parties_need(
    tmp_path: Path,
) -> None:
    cfg, root = tmp_path / "cfg", tmp_path / "cloud"
    r = seml(cfg, "init", "--role", "operator", "--root", str(root),
             "--listen", "0.0.0.0:8443", "--advertise", "https://cas.example.org:8443")  # fmt: skip
    assert r.returncode == 0, r.stderr
    for name in ("master.key", "identity.key", "tls.key"):
        assert _mode(root / "cas" / name) == 0o600
    info = seml(cfg, "cas", "info", str(root / "cas"))
    pin = _value(info.stdout, "fingerprint:")
    assert _value(r.stdout, "service URL:") == "https://cas.example.org:8443"
    assert _value(r.stdout, "pin:") == pin
    assert (
        f"seml init --role party --name NAME --cas https://cas.example.org:8443 "
        f"--cas-fingerprint {pin}" in r.stdout
    )
    assert _value(r.stdout, "cloud platform id:") == seml(cfg, "platform", "id").stdout.strip()
    assert "You need from each party: its name, public key and platform id." in r.stdout
    assert "seml cas serve" in r.stdout
    doc = yaml.safe_load((cfg / "config.yaml").read_text())["profiles"]["operator"]
    assert doc["service"] == {
        "state": str(root / "cas"),
        "listen": "0.0.0.0:8443",
        "advertise": "https://cas.example.org:8443",
    }
    assert doc["cas"] == {"url": "https://cas.example.org:8443", "fingerprint": pin}


def test_profile_list_use_and_show(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    for name in ("alice", "bob"):
        assert seml(cfg, "init", "--role", "party", "--name", name,
                    "--root", str(tmp_path / name)).returncode == 0  # fmt: skip
    listing = seml(cfg, "profile", "list").stdout
    assert "* bob" in listing and "  alice" in listing
    assert seml(cfg, "profile", "use", "alice").stdout.strip() == "current profile: alice"
    assert "* alice" in seml(cfg, "profile", "list").stdout
    shown = seml(cfg, "profile", "show", env={"SEML_PROFILE": "bob"})
    assert "# profile bob (selected by SEML_PROFILE)" in shown.stdout
    assert "party: bob" in shown.stdout
    r = seml(cfg, "profile", "use", "carol")
    assert r.returncode == UsageError.exit_code and "no profile 'carol'" in r.stderr


def test_flag_over_environment_over_profile_over_default(tmp_path: Path) -> None:
    # `seml platform id` prints the id of the platform key each level names.
    cfg = tmp_path / "cfg"
    assert seml(cfg, "init", "--role", "party", "--name", "alice",
                "--root", str(tmp_path / "alice")).returncode == 0  # fmt: skip
    keys = {}
    for level in ("flag", "env"):
        out = seml(cfg, "platform", "init", "--platform-key", str(tmp_path / f"{level}.key"))
        keys[level] = out.stdout.strip()
    profile_id = seml(cfg, "platform", "id").stdout.strip()
    assert profile_id not in keys.values()
    env = {"SEML_PLATFORM_KEY": str(tmp_path / "env.key")}
    assert seml(cfg, "platform", "id", env=env).stdout.strip() == keys["env"]
    flag = ["--platform-key", str(tmp_path / "flag.key")]
    assert seml(cfg, "platform", "id", *flag, env=env).stdout.strip() == keys["flag"]
    # --profile and SEML_PROFILE choose among profiles; a missing one is an error.
    r = seml(cfg, "--profile", "nobody", "platform", "id")
    assert r.returncode == UsageError.exit_code
    assert "no profile 'nobody'" in r.stderr and "given by --profile" in r.stderr
    r = seml(cfg, "platform", "id", env={"SEML_PROFILE": "nobody"})
    assert "given by SEML_PROFILE" in r.stderr
    # No profile at all: the built-in default (here: a missing file, named).
    r = seml(tmp_path / "empty", "platform", "id", env={"XDG_DATA_HOME": str(tmp_path / "d")})
    assert r.returncode == UsageError.exit_code
    assert f"no platform key at {tmp_path / 'd' / 'seml' / 'platform.key'}" in r.stderr


def test_keys_new_creates_a_missing_folder(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    r = seml(tmp_path / "cfg", "keys", "new", "alice", "--dir", str(target))
    assert r.returncode == 0, r.stderr
    assert _mode(target) == 0o700 and _mode(target / "alice.key") == 0o600
    assert (target / "alice.pub").read_text().strip() in r.stdout


def test_the_global_profile_option_names_the_profile_init_writes(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    # A new process: `seml --profile lab` names a profile that does not exist yet.
    r = seml_as(cfg, "--profile", "lab", "init", "--role", "party", "--name", "alice",
                "--root", str(tmp_path / "a"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("profile lab (party alice) written")
    r = seml(cfg, "--profile", "lab", "profile", "show")
    assert "# profile lab (selected by --profile)" in r.stdout


def test_seml_as_a_service_reads_no_profile(tmp_path: Path) -> None:
    from seml.cli import _machine

    cfg = tmp_path / "cfg"
    assert (
        seml(
            cfg, "init", "--role", "party", "--name", "a", "--root", str(tmp_path / "a")
        ).returncode
        == 0
    )
    env = {"SEML_CONFIG_DIR": str(cfg)}
    assert _machine.selected(env).name == "a"
    chosen = _machine.selected({**env, "SEML_SERVICE": "upload"})
    assert chosen.profile is None and chosen.how == "none (running as a service)"


def test_profile_is_seml_s_own_option_before_the_command() -> None:
    from seml.cli import _profile_option, _split_command

    own, command, rest = _split_command(["--profile", "alice", "run", "--session", "s"])
    assert (own, command, rest) == (["--profile", "alice"], "run", ["--session", "s"])
    assert _profile_option(own) == "alice"
    assert _profile_option(["--profile=bob", "-v"]) == "bob"
    with pytest.raises(UsageError, match="--profile needs a profile name"):
        _profile_option(["--profile"])
    # After the command, --profile is the command's (seml init --profile NAME).
    assert _split_command(["init", "--profile", "x"])[0] == []
