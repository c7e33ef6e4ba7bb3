"""`seml crypt` through the real entry point, above all on bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seml.cli import main
from seml.crypt import Cipher
from seml.crypt._content import BLOCK_SIZE, HEADER_SIZE

PASSWORD = "cli-test-password"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEML_CRYPT_PASSWORD", PASSWORD)
    monkeypatch.delenv("SEML_CRYPT_PASSWORD2", raising=False)


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "empty": b"",
        "dir/b.bin": bytes(range(256)) * 300,  # two chunks
        "dir/sub/ç.csv": b"x,y\n1,2\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def encrypted(tmp_path: Path) -> Path:
    make_tree(tmp_path / "plain")
    assert main(["crypt", "encrypt", str(tmp_path / "plain"), str(tmp_path / "enc"), "-q"]) == 0
    return tmp_path / "enc"


def test_encrypt_decrypt_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = make_tree(tmp_path / "plain")
    assert main(["crypt", "encrypt", str(tmp_path / "plain"), str(tmp_path / "enc")]) == 0
    assert "encrypted 4 file(s)" in capsys.readouterr().out
    enc = files_under(tmp_path / "enc")
    assert len(enc) == 4 and not any("a.txt" in k or "dir" in k for k in enc)
    assert main(["crypt", "decrypt", str(tmp_path / "enc"), str(tmp_path / "out"), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert files_under(tmp_path / "out") == files
    # a second run is a no-op, like rclone copy; --ignore-times redoes it
    assert main(["crypt", "encrypt", str(tmp_path / "plain"), str(tmp_path / "enc")]) == 0
    assert "encrypted 0 file(s)" in capsys.readouterr().out
    args = ["crypt", "encrypt", str(tmp_path / "plain"), str(tmp_path / "enc"), "--ignore-times"]
    assert main(args) == 0
    assert "encrypted 4 file(s)" in capsys.readouterr().out
    # mtimes are carried over both ways
    src, out = tmp_path / "plain" / "a.txt", tmp_path / "out" / "a.txt"
    assert src.stat().st_mtime_ns == out.stat().st_mtime_ns


def test_single_file_source(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_bytes(b"one")
    assert main(["crypt", "encrypt", str(tmp_path / "one.txt"), str(tmp_path / "enc"), "-q"]) == 0
    (only,) = (tmp_path / "enc").iterdir()
    assert main(["crypt", "decrypt", str(only), str(tmp_path / "out"), "-q"]) == 0
    assert (tmp_path / "out" / "one.txt").read_bytes() == b"one"


def test_names_encode_decode(capsys: pytest.CaptureFixture[str]) -> None:
    c = Cipher(PASSWORD)
    assert main(["crypt", "names", "encode", "a/b.txt", "c"]) == 0
    assert capsys.readouterr().out.split() == [c.encrypt_name("a/b.txt"), c.encrypt_name("c")]
    assert main(["crypt", "names", "decode", c.encrypt_name("a/b.txt")]) == 0
    assert capsys.readouterr().out.strip() == "a/b.txt"
    assert main(["crypt", "names", "encode", "--filename-encryption", "off", "x"]) == 0
    assert capsys.readouterr().out.strip() == "x.bin"
    assert main(["crypt", "names", "encode", "--dir", "--no-directory-name-encryption", "d/e"]) == 0
    assert capsys.readouterr().out.strip() == "d/e"


def test_names_decode_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crypt", "names", "decode", "zz-not-a-name"]) == 3
    assert "'zz-not-a-name' does not decode" in capsys.readouterr().err


def test_obscure_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from seml.crypt import reveal

    monkeypatch.setattr("sys.stdin", io.StringIO("hunter2\n"))
    assert main(["crypt", "obscure"]) == 0
    assert reveal(capsys.readouterr().out.strip()) == "hunter2"


def test_no_password_is_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SEML_CRYPT_PASSWORD")
    make_tree(tmp_path / "plain")
    assert main(["crypt", "encrypt", str(tmp_path / "plain"), str(tmp_path / "enc")]) == 2
    assert "SEML_CRYPT_PASSWORD" in capsys.readouterr().err
    assert not (tmp_path / "enc").exists()


def test_destination_inside_source_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tree(tmp_path / "plain")
    assert main(["crypt", "encrypt", str(tmp_path / "plain"), str(tmp_path / "plain" / "x")]) == 2
    assert "inside" in capsys.readouterr().err


def _target(enc: Path, rel: str) -> Path:
    return enc / Cipher(PASSWORD).encrypt_name(rel)


def _corrupt_flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[HEADER_SIZE + BLOCK_SIZE + 5] ^= 0x01
    p.write_bytes(bytes(data))


def _corrupt_short_header(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:20])


def _corrupt_magic(p: Path) -> None:
    p.write_bytes(b"RCLONF\x00\x00" + p.read_bytes()[8:])


def _corrupt_tag_only_block(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: HEADER_SIZE + BLOCK_SIZE + 10])


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (_corrupt_flip, "authentication failed at block 1"),
        (_corrupt_short_header, "too short to be an rclone-encrypted file"),
        (_corrupt_magic, "bad magic"),
        (_corrupt_tag_only_block, "block 1 is 10 bytes, no longer than its 16-byte tag"),
    ],
)
def test_damaged_file_fails_and_leaves_no_plaintext(
    encrypted: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    corrupt: object,
    reason: str,
) -> None:
    victim = _target(encrypted, "dir/b.bin")
    corrupt(victim)  # type: ignore[operator]
    out = tmp_path / "out"
    assert main(["crypt", "decrypt", str(encrypted), str(out), "-q"]) == 3
    err = capsys.readouterr().err
    assert str(victim) in err and "dir/b.bin" in err and reason in err
    assert not (out / "dir" / "b.bin").exists()
    assert not list(out.rglob(".*.tmp"))  # no temporary file left behind


def test_wrong_password(
    encrypted: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SEML_CRYPT_PASSWORD", "not-the-password")
    out = tmp_path / "out"
    # names fail first under standard encryption; with names off the content check speaks
    assert main(["crypt", "decrypt", str(encrypted), str(out)]) == 3
    assert "does not decode" in capsys.readouterr().err
    assert not out.exists() or not any(out.rglob("*"))
    monkeypatch.setenv("SEML_CRYPT_PASSWORD", PASSWORD)
    names_off = tmp_path / "enc_off"
    assert (
        main(
            [
                "crypt",
                "encrypt",
                str(tmp_path / "plain"),
                str(names_off),
                "-q",
                "--filename-encryption",
                "off",
            ]
        )
        == 0
    )
    monkeypatch.setenv("SEML_CRYPT_PASSWORD", "not-the-password")
    assert main(["crypt", "decrypt", str(names_off), str(out), "--filename-encryption", "off"]) == 3
    err = capsys.readouterr().err
    assert "wrong password likely" in err and "not-the-password" not in err
    assert not [p for p in out.rglob("*") if p.is_file() and p.stat().st_size]


def test_undecodable_name_is_reported_and_nothing_written(
    encrypted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (encrypted / "stray-file.txt").write_bytes(b"junk")
    out = tmp_path / "out"
    assert main(["crypt", "decrypt", str(encrypted), str(out)]) == 3
    assert "'stray-file.txt' does not decode" in capsys.readouterr().err
    assert not out.exists()


def test_password_never_in_output(
    encrypted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-v", "crypt", "decrypt", str(encrypted), str(tmp_path / "o")]) == 0
    _corrupt_flip(_target(encrypted, "dir/b.bin"))
    assert main(["-v", "crypt", "decrypt", str(encrypted), str(tmp_path / "p")]) == 3
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err
    assert os.environ["SEML_CRYPT_PASSWORD"] == PASSWORD


@pytest.mark.integration
def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crypt", "demo", "--workdir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "all 7 files identical" in out
    assert "plaintext left under its name: no" in out
    assert "authentication failed" in out
    assert main(["crypt", "demo", "--workdir", str(tmp_path / "demo")]) == 2
