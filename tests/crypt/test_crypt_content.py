"""Content format: round trips, sizes, and every way a file can be broken."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seml.crypt import Cipher, _files
from seml.crypt._content import BLOCK_DATA_SIZE, BLOCK_SIZE, HEADER_SIZE
from seml.errors import IntegrityError, UsageError

KEYS = (bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 80)))
CIPHER = Cipher.from_keys(*KEYS)
NONCE = bytes(range(100, 124))


def encrypt(data: bytes, nonce: bytes | None = NONCE, cipher: Cipher = CIPHER) -> bytes:
    out = io.BytesIO()
    n = cipher.encrypt_stream(io.BytesIO(data), out, nonce=nonce)
    assert n == len(out.getvalue())
    return out.getvalue()


def decrypt(data: bytes, cipher: Cipher = CIPHER) -> bytes:
    out = io.BytesIO()
    n = cipher.decrypt_stream(io.BytesIO(data), out, name="obj")
    assert n == len(out.getvalue())
    return out.getvalue()


SIZES = [0, 1, BLOCK_DATA_SIZE - 1, BLOCK_DATA_SIZE, BLOCK_DATA_SIZE + 1, 3 * BLOCK_DATA_SIZE]
# past one pipeline batch (16 chunks) and past the pipeline depth (4 batches)
SIZES += [16 * BLOCK_DATA_SIZE, 16 * BLOCK_DATA_SIZE + 7, 70 * BLOCK_DATA_SIZE + 3]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_and_sizes(size: int) -> None:
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    enc = encrypt(data)
    assert len(enc) == Cipher.encrypted_size(size)
    assert Cipher.decrypted_size(len(enc)) == size
    assert enc[:8] == b"RCLONE\x00\x00" and enc[8:32] == NONCE
    assert decrypt(enc) == data
    assert CIPHER.encrypting_reader(io.BytesIO(data), nonce=NONCE).read() == enc


def test_encrypting_reader_small_reads_match_stream() -> None:
    data = bytes(range(256)) * 5000
    reader = CIPHER.encrypting_reader(io.BytesIO(data), nonce=NONCE)
    parts = []
    while chunk := reader.read(9999):
        parts.append(chunk)
    assert b"".join(parts) == encrypt(data)


def test_random_nonce_differs_each_time() -> None:
    a, b = encrypt(b"same", nonce=None), encrypt(b"same", nonce=None)
    assert a[8:32] != b[8:32] and decrypt(a) == decrypt(b) == b"same"


def test_nonce_is_incremented_little_endian_with_carry() -> None:
    # nonce ff ff 00.. : chunk 1 must use 00 00 01 00.. (carry across bytes), as rclone does
    nonce = b"\xff\xff" + bytes(22)
    data = bytes(BLOCK_DATA_SIZE + 10)
    enc = encrypt(data, nonce=nonce)
    second = encrypt(bytes(10), nonce=b"\x00\x00\x01" + bytes(21))
    assert enc[HEADER_SIZE + BLOCK_SIZE :] == second[HEADER_SIZE:]
    # all-ones wraps to zero
    wrap = encrypt(data, nonce=b"\xff" * 24)
    assert wrap[HEADER_SIZE + BLOCK_SIZE :] == encrypt(bytes(10), nonce=bytes(24))[HEADER_SIZE:]


def test_bad_nonce_length_is_usage_error() -> None:
    with pytest.raises(UsageError, match="24 bytes"):
        encrypt(b"x", nonce=b"short")


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (0, "header"),
        (31, "header"),
        (32 + 1, "tag"),
        (32 + 16, "tag"),
        (32 + BLOCK_SIZE + 5, "tag"),
    ],
)
def test_impossible_encrypted_sizes(size: int, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        Cipher.decrypted_size(size)


def test_short_header() -> None:
    with pytest.raises(IntegrityError, match=r"obj: too short .* \(20 bytes"):
        decrypt(encrypt(b"hello")[:20])


def test_bad_magic() -> None:
    enc = bytearray(encrypt(b"hello"))
    enc[0] ^= 0x20
    with pytest.raises(IntegrityError, match=r"obj: not an rclone-encrypted file \(bad magic"):
        decrypt(bytes(enc))


@pytest.mark.parametrize("cut", [1, 16])
def test_block_no_longer_than_its_tag(cut: int) -> None:
    enc = encrypt(bytes(BLOCK_DATA_SIZE + 100))
    truncated = enc[: HEADER_SIZE + BLOCK_SIZE + cut]
    with pytest.raises(IntegrityError, match=f"obj: block 1 is {cut} bytes, no longer than"):
        decrypt(truncated)


def test_wrong_password_is_reported_at_block_zero() -> None:
    other = Cipher.from_keys(bytes(32), *KEYS[1:])
    with pytest.raises(IntegrityError, match=r"block 0 .*wrong password likely"):
        decrypt(encrypt(b"secret data"), cipher=other)


def test_failure_deep_in_a_large_file_names_the_block() -> None:
    enc = bytearray(encrypt(bytes(40 * BLOCK_DATA_SIZE)))
    enc[HEADER_SIZE + 37 * BLOCK_SIZE + 20] ^= 1
    with pytest.raises(IntegrityError, match="authentication failed at block 37 "):
        decrypt(bytes(enc))


def test_swapped_blocks_fail() -> None:
    enc = encrypt(bytes(range(256)) * 1024)  # 4 chunks
    b0 = enc[HEADER_SIZE : HEADER_SIZE + BLOCK_SIZE]
    b1 = enc[HEADER_SIZE + BLOCK_SIZE : HEADER_SIZE + 2 * BLOCK_SIZE]
    swapped = enc[:HEADER_SIZE] + b1 + b0 + enc[HEADER_SIZE + 2 * BLOCK_SIZE :]
    with pytest.raises(IntegrityError, match="block 0"):
        decrypt(swapped)


def test_repr_hides_keys() -> None:
    text = repr(CIPHER)
    for key in KEYS:
        assert key.hex() not in text
    assert "CryptOptions" in text


def test_from_keys_checks_lengths() -> None:
    with pytest.raises(UsageError, match=r"keys must be 32 \(data\), 32 \(name\) and 16"):
        Cipher.from_keys(bytes(31), bytes(32), bytes(16))


def test_empty_password_refused() -> None:
    with pytest.raises(UsageError, match="the crypt password must not be empty"):
        Cipher("")


@settings(max_examples=40)
@given(data=st.binary(max_size=3 * BLOCK_DATA_SIZE + 50), nonce=st.binary(min_size=24, max_size=24))
def test_property_round_trip(data: bytes, nonce: bytes) -> None:
    enc = encrypt(data, nonce=nonce)
    assert len(enc) == Cipher.encrypted_size(len(data))
    assert decrypt(enc) == data


@st.composite
def _tampered(draw: st.DrawFn) -> tuple[bytes, bytes]:
    size = draw(
        st.sampled_from([0, 1, 100, BLOCK_DATA_SIZE, BLOCK_DATA_SIZE + 1, 2 * BLOCK_DATA_SIZE + 9])
    )
    data = draw(st.binary(min_size=size, max_size=size))
    enc = encrypt(data)
    pos = draw(st.integers(min_value=0, max_value=len(enc) - 1))
    delta = draw(st.integers(min_value=1, max_value=255))
    bad = bytearray(enc)
    bad[pos] ^= delta
    return data, bytes(bad)


@settings(max_examples=60)
@given(case=_tampered())
def test_property_any_single_byte_change_is_detected(case: tuple[bytes, bytes]) -> None:
    data, bad = case
    if len(data) == 0 and bad[:8] == b"RCLONE\x00\x00":
        # An empty file is the header alone: a changed nonce authenticates nothing (rclone's
        # format has no header MAC); the plaintext is still the empty file, never garbage.
        assert decrypt(bad) == b""
        return
    with pytest.raises(IntegrityError, match="obj: "):
        decrypt(bad)


class _FailingWriter(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        raise OSError(28, "No space left on device")


def test_os_errors_become_storage_errors() -> None:
    from seml.errors import StorageError

    with pytest.raises(StorageError, match="No space left"):
        CIPHER.encrypt_stream(io.BytesIO(b"data"), _FailingWriter())  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="obj: decrypting failed"):
        CIPHER.decrypt_stream(io.BytesIO(encrypt(b"data")), _FailingWriter(), name="obj")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", SIZES)
def test_file_path_matches_stream_path(tmp_path: Path, size: int) -> None:
    data = bytes((i * 13 + 1) % 253 for i in range(size))
    (tmp_path / "p").write_bytes(data)
    seen: list[int] = []
    with (tmp_path / "p").open("rb") as s, (tmp_path / "e").open("wb") as d:
        n = CIPHER.encrypt_file(s, d, nonce=NONCE, progress=seen.append)
    assert (tmp_path / "e").read_bytes() == encrypt(data) and n == Cipher.encrypted_size(size)
    assert sum(seen) == size
    seen.clear()
    with (tmp_path / "e").open("rb") as s, (tmp_path / "d").open("wb") as d:
        assert CIPHER.decrypt_file(s, d, name="obj", progress=seen.append) == size
    assert (tmp_path / "d").read_bytes() == data
    assert sum(seen) == Cipher.encrypted_size(size)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:20], r"obj: too short .*\(20 bytes"),
        (lambda b: b"X" + b[1:], r"obj: not an rclone-encrypted file \(bad magic"),
        (lambda b: b[: HEADER_SIZE + 33 * BLOCK_SIZE + 16], "obj: block 33 is 16 bytes, no longer"),
        (
            lambda b: (
                b[: HEADER_SIZE + 37 * BLOCK_SIZE + 9]
                + b"!"
                + b[HEADER_SIZE + 37 * BLOCK_SIZE + 10 :]
            ),
            "obj: authentication failed at block 37 ",
        ),
    ],
)
def test_file_path_errors(tmp_path: Path, damage: Callable[[bytes], bytes], message: str) -> None:
    enc = encrypt(bytes(40 * BLOCK_DATA_SIZE + 5))
    (tmp_path / "e").write_bytes(damage(enc))
    with (
        (tmp_path / "e").open("rb") as s,
        (tmp_path / "d").open("wb") as d,
        pytest.raises(IntegrityError, match=message),
    ):
        CIPHER.decrypt_file(s, d, name="obj")


def test_secretbox_initialises_libsodium_for_the_fast_implementations() -> None:
    """Without sodium_init() libsodium runs portable Salsa20/Poly1305 (half the speed here).

    A fresh interpreter that imports only seml's secretbox module (not nacl.bindings, which
    would initialise libsodium itself) finds it already initialised: sodium_init() says 1.
    """
    import subprocess
    import sys

    code = (
        "import sys, seml.crypt._secretbox\n"
        "from nacl._sodium import lib\n"
        "assert 'nacl.bindings' not in sys.modules, 'nacl.bindings initialises it anyway'\n"
        "print(lib.sodium_init())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


_DIRECT_SIZES = [
    _files.DIRECT_MIN,  # whole batches: nothing padded
    _files.DIRECT_MIN + 7,  # a last batch of 7 bytes: padded to 4 KiB, then cut
    3 * _files.DIRECT_MIN + 5 * BLOCK_DATA_SIZE + 4095,  # more batches than the pipeline depth
]


@pytest.mark.parametrize("size", _DIRECT_SIZES)
@pytest.mark.parametrize("where", ["disk", "tmpfs"])
def test_direct_decrypt_writes_exactly_the_plaintext_and_hashes_it_in_order(
    tmp_path: Path, size: int, where: str
) -> None:
    """Direct I/O where the filesystem has it (ext4 here), the page cache where not (tmpfs,
    on kernels without direct I/O on tmpfs): the same bytes, size and SHA-256 either way."""
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    base = tmp_path if where == "disk" else Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        (base / "e").write_bytes(encrypt(data))
        sha = hashlib.sha256()
        with (base / "e").open("rb") as s, (base / "d").open("wb") as d:
            n = CIPHER.decrypt_file(s, d, name="obj", sink=sha.update, direct=True)
            assert not fcntl.fcntl(d.fileno(), fcntl.F_GETFL) & os.O_DIRECT  # flags restored
        assert n == size and (base / "d").stat().st_size == size
        assert (base / "d").read_bytes() == data
        assert sha.hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        if base != tmp_path:
            shutil.rmtree(base)


def test_direct_decrypt_still_refuses_a_changed_chunk(tmp_path: Path) -> None:
    enc = bytearray(encrypt(bytes(_files.DIRECT_MIN + 100)))
    enc[HEADER_SIZE + 100 * BLOCK_SIZE + 50] ^= 1
    (tmp_path / "e").write_bytes(enc)
    seen = hashlib.sha256()
    with (
        (tmp_path / "e").open("rb") as s,
        (tmp_path / "d").open("wb") as d,
        pytest.raises(IntegrityError, match="obj: authentication failed at block 100 "),
    ):
        CIPHER.decrypt_file(s, d, name="obj", sink=seen.update, direct=True)
    # the sink never saw the batch holding the changed chunk (block 100 is in batch 6)
    assert seen.hexdigest() == hashlib.sha256(bytes(6 * 16 * BLOCK_DATA_SIZE)).hexdigest()


def test_encrypt_file_sink_gets_the_plaintext_in_order(tmp_path: Path) -> None:
    data = os.urandom(5 * 16 * BLOCK_DATA_SIZE + 123)
    (tmp_path / "p").write_bytes(data)
    sha = hashlib.sha256()
    with (tmp_path / "p").open("rb") as s, (tmp_path / "e").open("wb") as d:
        CIPHER.encrypt_file(s, d, nonce=NONCE, sink=sha.update)
    assert sha.hexdigest() == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "e").read_bytes() == encrypt(data)


@pytest.mark.parametrize(
    ("size", "writeback", "started"),
    [
        (5 * 16 * BLOCK_DATA_SIZE + 123, True, True),  # large, will be flushed: started early
        (5 * 16 * BLOCK_DATA_SIZE + 123, False, False),  # large, never flushed (push, file://)
        (16 * BLOCK_DATA_SIZE - 1, True, False),  # one batch: left to the caller's fsync
    ],
)
def test_encrypt_file_starts_write_back_only_for_large_flushed_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
    writeback: bool,
    started: bool,
) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(_files, "start_writeback", lambda fd, off, n: calls.append((off, n)))
    data = os.urandom(size)
    (tmp_path / "p").write_bytes(data)
    with (tmp_path / "p").open("rb") as s, (tmp_path / "e").open("wb") as d:
        CIPHER.encrypt_file(s, d, nonce=NONCE, writeback=writeback)
    assert (tmp_path / "e").read_bytes() == encrypt(data)  # the same bytes either way
    assert bool(calls) is started
    if started:  # every byte written was handed to the disk early
        assert sum(n for _, n in calls) == len(encrypt(data))


def test_direct_decrypt_of_an_unaligned_size_is_cut_to_exactly_that_size(tmp_path: Path) -> None:
    """The direct-I/O output is extended to its padded size before the writes; the finished
    file is cut back to the exact plaintext size."""
    size = _files.DIRECT_MIN + 4097
    data = os.urandom(size)
    (tmp_path / "e").write_bytes(encrypt(data))
    with (tmp_path / "e").open("rb") as s, (tmp_path / "d").open("wb") as d:
        CIPHER.decrypt_file(s, d, name="obj", direct=True)
    assert (tmp_path / "d").stat().st_size == size
    assert (tmp_path / "d").read_bytes() == data
