"""Every rclone vector decrypts, and re-encrypts byte-identically with the file's own nonce."""

from __future__ import annotations

import configparser
import io

import pytest

from seml.crypt import Cipher, derive_keys, load_rclone_config, reveal
from seml.errors import IntegrityError
from vectors.rclone_crypt import (
    ContentVector,
    content_params,
    content_vectors,
    name_params,
    rclone_conf,
    readme_keys,
    readme_passwords,
)


@pytest.fixture(scope="module")
def vcrypt() -> Cipher:
    password, password2, options = load_rclone_config(rclone_conf(), "vcrypt")
    return Cipher(password, password2, options)


@pytest.mark.parametrize("vec", content_params())
def test_content_vector_decrypts(vcrypt: Cipher, vec: ContentVector) -> None:
    out = io.BytesIO()
    with vec.encrypted.open("rb") as f:
        n = vcrypt.decrypt_stream(f, out, name=vec.encrypted_rel)
    assert out.getvalue() == vec.plain.read_bytes()
    assert n == vec.plain.stat().st_size


@pytest.mark.parametrize("vec", content_params())
def test_content_vector_reencrypts_identically(vcrypt: Cipher, vec: ContentVector) -> None:
    expected = vec.encrypted.read_bytes()
    out = io.BytesIO()
    with vec.plain.open("rb") as f:
        n = vcrypt.encrypt_stream(f, out, nonce=expected[8:32])
    assert out.getvalue() == expected
    assert n == len(expected) == Cipher.encrypted_size(vec.plain.stat().st_size)
    with vec.plain.open("rb") as f:
        assert vcrypt.encrypting_reader(f, nonce=expected[8:32]).read() == expected
    assert Cipher.decrypted_size(len(expected)) == vec.plain.stat().st_size


@pytest.mark.parametrize("vec", content_params())
def test_content_vector_name(vcrypt: Cipher, vec: ContentVector) -> None:
    assert vcrypt.encrypt_name(vec.plain_rel) == vec.encrypted_rel
    assert vcrypt.decrypt_name(vec.encrypted_rel) == vec.plain_rel


_ciphers: dict[str, Cipher] = {}


def _cipher(remote: str) -> Cipher:
    if remote not in _ciphers:
        _ciphers[remote] = Cipher(*load_rclone_config(rclone_conf(), remote))
    return _ciphers[remote]


@pytest.mark.parametrize("case", name_params())
def test_name_vector_encodes(case: tuple[str, str, str]) -> None:
    remote, plain, encoded = case
    assert _cipher(remote).encrypt_name(plain) == encoded


@pytest.mark.parametrize("case", name_params())
def test_name_vector_decodes(case: tuple[str, str, str]) -> None:
    remote, plain, encoded = case
    assert _cipher(remote).decrypt_name(encoded) == plain


def test_name_vectors_cover_all_five_configurations() -> None:
    remotes = {p.values[0][0] for p in name_params()}
    assert remotes == {"vcrypt", "vcrypt_b64", "vcrypt_obf", "vcrypt_off", "vcrypt_nosalt"}
    modes = {_cipher(r).options.filename_encryption for r in remotes}
    assert modes == {"standard", "obfuscate", "off"}
    assert _cipher("vcrypt_b64").options.filename_encoding == "base64"


def test_obscured_passwords_reveal() -> None:
    parser = configparser.RawConfigParser()
    parser.read(rclone_conf(), encoding="utf-8")
    plain = readme_passwords()
    assert set(plain) == {"password", "password2"}
    for section in parser.sections():
        assert reveal(parser[section]["password"]) == plain["password"]
        if "password2" in parser[section]:
            assert reveal(parser[section]["password2"]) == plain["password2"]


def test_key_derivation_matches_readme() -> None:
    keys = readme_keys()
    assert set(keys) == {"data key", "name key", "name tweak"}
    passwords = readme_passwords()
    data, name, tweak = derive_keys(passwords["password"], passwords["password2"])
    assert (data.hex(), name.hex(), tweak.hex()) == (
        keys["data key"],
        keys["name key"],
        keys["name tweak"],
    )
    # from_keys with the README's keys reads rclone's files too
    cipher = Cipher.from_keys(data, name, tweak)
    assert cipher.encrypt_name("ten.txt") == "fgtn3j8npn6las3bht89qum84g"


def test_nosalt_uses_rclone_default_salt() -> None:
    password, password2, _ = load_rclone_config(rclone_conf(), "vcrypt_nosalt")
    assert password2 == ""
    assert derive_keys(password) != derive_keys(password, "rclone-test-salt")


# -- negative cases, derived from rclone's own files (see tests/vectors/rclone/README.md) --------


def _encrypted(plain_rel: str) -> tuple[str, bytes]:
    vec = next(v for v in content_vectors() if v.plain_rel == plain_rel)
    return vec.encrypted_rel, vec.encrypted.read_bytes()


def _decrypt(cipher: Cipher, name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    cipher.decrypt_stream(io.BytesIO(data), out, name=name)
    return out.getvalue()


@pytest.mark.parametrize("position", [32, 40, 57])
def test_flipped_bit_in_rclone_file_is_refused(vcrypt: Cipher, position: int) -> None:
    name, data = _encrypted("ten.txt")
    tampered = bytearray(data)
    tampered[position] ^= 0x01
    with pytest.raises(IntegrityError, match=rf"{name}: authentication failed at block 0 "):
        _decrypt(vcrypt, name, bytes(tampered))


def test_flipped_bit_in_second_block_names_the_block(vcrypt: Cipher) -> None:
    name, data = _encrypted("big.bin")
    tampered = bytearray(data)
    tampered[32 + 65536 + 16 + 100] ^= 0x80
    with pytest.raises(IntegrityError, match=rf"{name}: authentication failed at block 1 "):
        _decrypt(vcrypt, name, bytes(tampered))


def test_rclone_file_under_another_password_is_refused() -> None:
    name, data = _encrypted("ten.txt")
    with pytest.raises(IntegrityError, match=r"block 0 .*wrong password likely"):
        _decrypt(Cipher("not-the-password", "rclone-test-salt"), name, data)


def test_cut_header_and_bad_magic_are_refused(vcrypt: Cipher) -> None:
    name, data = _encrypted("big.bin")
    with pytest.raises(IntegrityError, match=r"too short to be an rclone-encrypted file \(20 b"):
        _decrypt(vcrypt, name, data[:20])
    with pytest.raises(IntegrityError, match="bad magic"):
        _decrypt(vcrypt, name, b"RCLONF" + data[6:])


def test_changed_encrypted_name_does_not_decode(vcrypt: Cipher) -> None:
    name, _ = _encrypted("ten.txt")
    changed = ("a" if name[0] != "a" else "b") + name[1:]
    with pytest.raises(IntegrityError, match="does not decode"):
        vcrypt.decrypt_name(changed)
