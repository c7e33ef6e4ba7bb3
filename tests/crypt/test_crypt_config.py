"""rclone.conf reading, obscure/reveal, and how the CLI builds a cipher from its options."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seml.cli._cryptopts import build_cipher
from seml.crypt import CryptOptions, load_rclone_config, obscure, reveal
from seml.errors import UsageError

SECRET = "correct horse battery staple"


def write_conf(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rclone.conf"
    path.write_text(body, encoding="utf-8")
    return path


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_property_obscure_reveal_round_trip(plain: str) -> None:
    hidden = obscure(plain)
    assert "=" not in hidden and "+" not in hidden and "/" not in hidden
    assert reveal(hidden) == plain


@pytest.mark.parametrize("bad", ["", "short", "not base64!", "A"])
def test_reveal_rejects_non_obscured_values_without_echoing_them(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        reveal(bad)
    assert "not an rclone-obscured value" in str(info.value)
    if bad:
        assert bad not in str(info.value)


def test_load_reads_options(tmp_path: Path) -> None:
    conf = write_conf(
        tmp_path,
        f"[other]\ntype = local\n\n[sec]\ntype = crypt\nremote = x\npassword = {obscure(SECRET)}\n"
        f"password2 = {obscure('pepper')}\nfilename_encryption = obfuscate\n"
        "filename_encoding = base64\ndirectory_name_encryption = false\n",
    )
    password, password2, options = load_rclone_config(conf, "sec:")
    assert (password, password2) == (SECRET, "pepper")
    assert options == CryptOptions("obfuscate", "base64", False)


def test_load_defaults(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, f"[sec]\ntype = crypt\npassword = {obscure(SECRET)}\n")
    assert load_rclone_config(conf, "sec") == (SECRET, "", CryptOptions())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[a]\ntype = crypt\n", "no remote \\[sec\\]"),
        ("[sec]\ntype = s3\n", "type 's3', not crypt"),
        ("[sec]\ntype = crypt\n", "has no password"),
        ("[sec]\ntype = crypt\npassword = !!!\n", "not an rclone-obscured value"),
        (
            f"[sec]\ntype = crypt\npassword = {obscure(SECRET)}\nfilename_encoding = base32768\n",
            "base32768 is not supported",
        ),
        (
            f"[sec]\ntype = crypt\npassword = {obscure(SECRET)}\n"
            "directory_name_encryption = maybe\n",
            "true or false",
        ),
        ("RCLONE_ENCRYPT_V0:\nabcdef\n", "is encrypted"),
        ("not an ini file", "not valid"),
    ],
)
def test_load_errors(tmp_path: Path, body: str, message: str) -> None:
    conf = write_conf(tmp_path, body)
    with pytest.raises(UsageError, match=message) as info:
        load_rclone_config(conf, "sec")
    assert SECRET not in str(info.value)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read rclone config"):
        load_rclone_config(tmp_path / "nope.conf", "sec")


def test_build_cipher_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEML_CRYPT_PASSWORD", SECRET)
    monkeypatch.setenv("SEML_CRYPT_PASSWORD2", "pepper")
    env = build_cipher(None, None, None, None, None)
    assert env.options == CryptOptions()
    monkeypatch.delenv("SEML_CRYPT_PASSWORD2")
    nosalt = build_cipher(None, None, None, None, None)
    assert env.encrypt_name("x") != nosalt.encrypt_name("x")


def test_build_cipher_needs_a_password_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEML_CRYPT_PASSWORD", raising=False)
    with pytest.raises(UsageError, match="SEML_CRYPT_PASSWORD"):
        build_cipher(None, None, None, None, None)


def test_build_cipher_config_needs_remote(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--remote"):
        build_cipher(tmp_path / "rclone.conf", None, None, None, None)


def test_explicit_options_override_the_config(tmp_path: Path) -> None:
    conf = write_conf(
        tmp_path,
        f"[sec]\ntype = crypt\npassword = {obscure(SECRET)}\nfilename_encryption = off\n"
        "directory_name_encryption = false\n",
    )
    assert build_cipher(conf, "sec", None, None, None).options == CryptOptions(
        "off", "base32", False
    )
    over = build_cipher(conf, "sec", "standard", "base64", True)
    assert over.options == CryptOptions("standard", "base64", True)


def test_remote_without_config_uses_rclone_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = write_conf(tmp_path, f"[sec]\ntype = crypt\npassword = {obscure(SECRET)}\n")
    monkeypatch.setenv("RCLONE_CONFIG", str(conf))
    assert build_cipher(None, "sec", None, None, None).options == CryptOptions()
