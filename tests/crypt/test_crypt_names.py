"""Name encryption beyond the vectors: round trips, rclone's version stamps, bad names."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seml.crypt import Cipher, CryptOptions
from seml.crypt._tree import plan_decrypt
from seml.errors import IntegrityError, UsageError

KEYS = (bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 80)))


def cipher(mode: str = "standard", encoding: str = "base32", dirs: bool = True) -> Cipher:
    opts = CryptOptions(mode, encoding, dirs)  # type: ignore[arg-type]
    return Cipher.from_keys(*KEYS, opts)


ALL = [("standard", "base32"), ("standard", "base64"), ("obfuscate", "base32"), ("off", "base32")]
segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\0"),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60)
@given(
    segments=st.lists(segment, min_size=1, max_size=4),
    which=st.sampled_from(ALL),
    dirs=st.booleans(),
)
def test_property_names_round_trip(segments: list[str], which: tuple[str, str], dirs: bool) -> None:
    c = cipher(*which, dirs=dirs)
    path = "/".join(segments)
    enc = c.encrypt_name(path)
    assert c.decrypt_name(enc) == path
    assert c.decrypt_dir_name(c.encrypt_dir_name(path)) == path
    if which[0] == "standard":
        assert enc.split("/")[-1] != segments[-1]


def test_directory_name_encryption_switch() -> None:
    on, off = cipher(dirs=True), cipher(dirs=False)
    assert on.encrypt_name("a/b/c.txt").count("/") == 2
    assert off.encrypt_name("a/b/c.txt").startswith("a/b/")
    assert off.encrypt_name("a/b/c.txt").split("/")[2] == on.encrypt_name("c.txt")
    assert off.encrypt_dir_name("a/b") == "a/b"
    assert on.encrypt_dir_name("a/b") == on.encrypt_name("a/b")


def test_off_mode_appends_bin_only_to_files() -> None:
    c = cipher("off")
    assert c.encrypt_name("d/x.txt") == "d/x.txt.bin"
    assert c.encrypt_dir_name("d") == "d"
    with pytest.raises(IntegrityError, match=r"'x\.txt' does not decode: no '\.bin' suffix"):
        c.decrypt_name("x.txt")
    with pytest.raises(IntegrityError, match="does not decode"):
        c.decrypt_name(".bin")


def test_base32_is_case_insensitive_like_rclone() -> None:
    c = cipher()
    enc = c.encrypt_name("hello.txt")
    assert c.decrypt_name(enc.upper()) == "hello.txt"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("zzzz", "not base32hex"),
        ("0", "bad base32 length"),
        ("00000000", "not a multiple of the block size"),
        ("0" * 26, "bad padding"),
        ("a=", "not base32hex"),
    ],
)
def test_undecodable_standard_names(name: str, reason: str) -> None:
    with pytest.raises(IntegrityError, match=f"file name '{name}' does not decode: {reason}"):
        cipher().decrypt_name(name)


def test_undecodable_name_in_a_path_names_the_path() -> None:
    c = cipher()
    good = c.encrypt_name("dir/file")
    bad = good.split("/")[0] + "/" + "notavalidname"
    with pytest.raises(IntegrityError, match=f"file name '{bad}' does not decode"):
        c.decrypt_name(bad)


def test_wrong_key_names_do_not_decode() -> None:
    enc = cipher().encrypt_name("some file name.csv")
    other = Cipher.from_keys(KEYS[0], bytes(32), KEYS[2])
    with pytest.raises(IntegrityError, match="does not decode"):
        other.decrypt_name(enc)


@pytest.mark.parametrize("name", ["no-dot", "x1.abc", "1.2\ud800"])
def test_undecodable_obfuscated_names(name: str) -> None:
    with pytest.raises(IntegrityError, match="does not decode"):
        cipher("obfuscate").decrypt_name(name)


def test_base64_rejects_foreign_characters() -> None:
    with pytest.raises(IntegrityError, match="not base64url"):
        cipher("standard", "base64").decrypt_name("ab+/cd")


def test_version_stamp_stays_clear() -> None:
    c = cipher()
    enc = c.encrypt_name("data-v2020-02-29-235959-999.csv")
    assert enc.endswith("-v2020-02-29-235959-999")
    assert enc.removesuffix("-v2020-02-29-235959-999") == c.encrypt_name("data.csv")
    assert c.decrypt_name(enc) == "data-v2020-02-29-235959-999.csv"


@pytest.mark.parametrize(
    "stamp", ["-v2021-02-29-000000-000", "-v2021-13-01-000000-000", "-v2021-01-01-240000-000"]
)
def test_invalid_version_dates_are_encrypted_with_the_name(stamp: str) -> None:
    c = cipher()
    enc = c.encrypt_name(f"x{stamp}.txt")
    assert stamp not in enc
    assert c.decrypt_name(enc) == f"x{stamp}.txt"


def test_long_segment_limit() -> None:
    c = cipher()
    ok = "a" * 2047
    assert c.decrypt_name(c.encrypt_name(ok)) == ok
    with pytest.raises(UsageError, match="too long"):
        c.encrypt_name("a" * 2048)


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="filename_encryption"):
        CryptOptions("rot13")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="base32768"):
        CryptOptions(filename_encoding="base32768")  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode", "forged"), [("obfuscate", "0..."), ("off", "..bin")])
def test_forged_names_cannot_escape_the_destination(tmp_path: Path, mode: str, forged: str) -> None:
    (tmp_path / forged).write_bytes(b"")
    with pytest.raises(IntegrityError, match="unsafe path"):
        plan_decrypt(tmp_path, cipher(mode))


def test_two_names_decrypting_to_one_path_are_refused(tmp_path: Path) -> None:
    c = cipher()
    enc = c.encrypt_name("a.txt")
    (tmp_path / enc).write_bytes(b"")
    (tmp_path / enc.upper()).write_bytes(b"")
    with pytest.raises(IntegrityError, match=r"both decrypt to 'a\.txt'"):
        plan_decrypt(tmp_path, c)


def test_folder_segments_mapped_from_memory_match_a_fresh_cipher() -> None:
    """Folder segments are remembered per cipher; the answers stay those of a fresh cipher,
    from any thread, in both directions, and a wrong key still refuses."""
    from concurrent.futures import ThreadPoolExecutor

    c = cipher()
    paths = [f"data/{i % 3:02d}/f{i}.bin" for i in range(60)]
    with ThreadPoolExecutor(4) as pool:
        enc = list(pool.map(c.encrypt_name, paths))
    assert enc == [cipher().encrypt_name(p) for p in paths]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(c.decrypt_name, enc)) == paths
    wrong = Cipher.from_keys(KEYS[0], bytes(32), KEYS[2])
    with pytest.raises(IntegrityError, match="does not decode"):
        wrong.decrypt_name(enc[0])
