"""Scratch files and random-access object reads (the FUSE mount's storage), against a model."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seml.crypt import Cipher
from seml.errors import IntegrityError
from seml.volume._chunks import CHUNK, ObjectReader, ScratchFile, open_small, seal_small

_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"), st.integers(0, 3 * CHUNK), st.binary(min_size=1, max_size=CHUNK + 9)
        ),
        st.tuples(st.just("truncate"), st.integers(0, 3 * CHUNK), st.just(b"")),
    ),
    max_size=12,
)


@settings(max_examples=40)
@given(ops=_ops)
def test_scratch_file_behaves_like_a_file(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, bytes]]
) -> None:
    path = tmp_path_factory.mktemp("scratch") / "s"
    scratch = ScratchFile(path, os.urandom(32))
    model = bytearray()
    for op, offset, data in ops:
        if op == "write":
            if len(model) < offset:
                model.extend(bytes(offset - len(model)))
            model[offset : offset + len(data)] = data
            scratch.write(offset, data)
        else:
            del model[offset:]
            model.extend(bytes(offset - len(model)))
            scratch.truncate(offset)
        assert scratch.size == len(model)
    assert scratch.read(0, len(model) + 10) == bytes(model)
    assert scratch.stream().read() == bytes(model)
    scratch.close()
    assert not path.exists()


@settings(max_examples=40)
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 2 * CHUNK), st.integers(0, 255)), max_size=10
    )
)
def test_scratch_whole_chunk_writes_and_reads(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[int, int, int]]
) -> None:
    """Chunk-aligned writes of whole chunks (sealed straight from the caller's buffer) mixed
    with partial ones (through the one-chunk cache), read back at any offset."""
    scratch = ScratchFile(tmp_path_factory.mktemp("scratch") / "s", os.urandom(32))
    model = bytearray()
    for chunk, extra, byte in ops:
        offset, data = chunk * CHUNK, bytes([byte]) * (CHUNK + extra)
        model.extend(bytes(max(0, offset - len(model))))
        model[offset : offset + len(data)] = data
        scratch.write(offset, data)
        scratch.write(offset + 3, b"x")  # partial: dirties a chunk the next write may cover
        model[offset + 3] = ord("x")
    for offset in (0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 5):
        assert scratch.read(offset, 2 * CHUNK + 9) == bytes(model[offset : offset + 2 * CHUNK + 9])
    assert scratch.stream().read() == bytes(model)
    scratch.close()


def test_scratch_rewrites_use_fresh_nonces(tmp_path: Path) -> None:
    scratch = ScratchFile(tmp_path / "s", os.urandom(32))
    scratch.write(0, b"a" * 100)
    scratch.flush()
    first = (tmp_path / "s").read_bytes()
    scratch.write(0, b"b" * 100)
    scratch.flush()
    second = (tmp_path / "s").read_bytes()
    scratch.close()
    assert first[4:28] != second[4:28]  # the nonce after the 4-byte length
    assert b"a" * 16 not in first and b"b" * 16 not in second


_SLOT = 4 + 24 + CHUNK + 16  # a scratch slot: length, nonce, sealed chunk


def test_scratch_chunks_are_bound_to_their_place_and_their_last_write(tmp_path: Path) -> None:
    key = os.urandom(32)  # one key for every scratch file of a mount
    a, b = ScratchFile(tmp_path / "a", key), ScratchFile(tmp_path / "b", key)
    a.write(0, b"A" * CHUNK + b"a" * CHUNK)
    b.write(0, b"B" * CHUNK + b"b" * CHUNK)
    a.flush()
    b.flush()
    fa, fb = (tmp_path / "a").read_bytes(), (tmp_path / "b").read_bytes()
    old = fa[:_SLOT]
    a.write(0, b"C" * CHUNK)  # rewritten: the old record is now a stale one
    a.flush()
    attacks = {
        "moved within the file": fa[_SLOT:] + fa[:_SLOT],
        "copied from another file": fb[:_SLOT] + fa[_SLOT:],
        "replayed from an earlier write": old + fa[_SLOT:],
    }
    for what, forged in attacks.items():
        (tmp_path / "a").write_bytes(forged)
        with pytest.raises(IntegrityError, match="scratch chunk 0 is not the one last written"):
            a.read(0, 10)
        assert what
    (tmp_path / "a").write_bytes(b"\0" * (3 * _SLOT))
    with pytest.raises(IntegrityError, match="scratch chunk 0 is not the one last written"):
        a.read(0, 10)
    assert b.read(CHUNK, 3) == b"bbb"
    b.truncate(CHUNK)
    b.write(2 * CHUNK, b"z")  # chunk 1 is now a hole
    b.flush()
    with open(tmp_path / "b", "r+b") as f:  # the truncated chunk's old record put back
        f.seek(_SLOT)
        f.write(fb[_SLOT:])
    assert b.read(CHUNK, 3) == bytes(3) and b.read(2 * CHUNK, 1) == b"z"
    a.close()
    b.close()


def _sealed(tmp_path: Path, data: bytes) -> tuple[Path, Cipher, bytes]:
    cipher = Cipher.from_keys(bytes(32), bytes(32), bytes(16))
    path = tmp_path / "obj"
    with open(path, "wb") as f:
        cipher.encrypt_stream(io.BytesIO(data), f)
    return path, cipher, path.read_bytes()[8:32]


def test_object_reader_random_access(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 123)
    path, _, nonce = _sealed(tmp_path, data)
    reader = ObjectReader(path, bytes(32), nonce, len(data), label="f")
    reads = [(0, 10), (CHUNK - 5, 10), (2 * CHUNK, CHUNK + 500), (len(data) - 3, 99), (5, 3)]
    reads += [(0, len(data) + 1), (CHUNK + 1, 2), (len(data), 5), (0, 16 * CHUNK)]
    for offset, length in reads:  # in this order: the decrypted chunks are reused or not
        assert reader.read(offset, length) == data[offset : offset + length]
    reader.close()


def test_object_reader_refuses_wrong_object_or_tampering(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK)
    path, _, nonce = _sealed(tmp_path, data)
    with pytest.raises(IntegrityError, match="not the object"):
        ObjectReader(path, bytes(32), bytes(24), len(data), label="f")
    with pytest.raises(IntegrityError, match="not the object"):
        ObjectReader(path, bytes(32), nonce, len(data) - 1, label="f")
    raw = bytearray(path.read_bytes())
    raw[32 + CHUNK + 16 + 7] ^= 1  # inside chunk 1
    path.write_bytes(bytes(raw))
    reader = ObjectReader(path, bytes(32), nonce, len(data), label="f")
    assert reader.read(0, 10) == data[:10]
    with pytest.raises(IntegrityError, match="chunk 1 does not authenticate"):
        reader.read(CHUNK, 10)
    reader.close()


def test_object_reader_refuses_an_object_truncated_while_open(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK)
    path, _, nonce = _sealed(tmp_path, data)
    reader = ObjectReader(path, bytes(32), nonce, len(data), label="f")
    os.truncate(path, 32 + 2 * (CHUNK + 16) + 100)  # chunk 2 cut short after the size check
    assert reader.read(CHUNK, 5) == data[CHUNK : CHUNK + 5]
    with pytest.raises(IntegrityError, match="chunk 2 does not authenticate"):
        reader.read(2 * CHUNK, 10)
    reader.close()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7])
def test_small_objects_are_byte_identical_to_the_crypt_format(size: int) -> None:
    data, key, nonce = os.urandom(size), os.urandom(32), os.urandom(24)
    cipher = Cipher.from_keys(key, bytes(32), bytes(16))
    reference = io.BytesIO()
    cipher.encrypt_stream(io.BytesIO(data), reference, nonce=nonce)
    sealed = seal_small(data, key, nonce)
    assert sealed == reference.getvalue()
    assert open_small(sealed, key, nonce, size, label="f") == data
    back = io.BytesIO()
    cipher.decrypt_stream(io.BytesIO(sealed), back, name="f")
    assert back.getvalue() == data


def test_open_small_refuses_every_kind_of_wrong_object() -> None:
    data, key, nonce = os.urandom(2 * CHUNK + 5), os.urandom(32), os.urandom(24)
    sealed = seal_small(data, key, nonce)
    cases = {
        "not the object": [
            (sealed, bytes(24), len(data)),  # another nonce: swapped or an old copy
            (b"", nonce, len(data)),
            (b"XCLONE\x00\x00" + sealed[8:], nonce, len(data)),
        ],
        "truncated": [
            (sealed[: 32 + CHUNK + 16], nonce, len(data)),  # cut at a chunk boundary
            (sealed[:-1], nonce, len(data)),
            (sealed + b"x", nonce, len(data)),
            (sealed, nonce, len(data) - 1),
        ],
    }
    for reason, variants in cases.items():
        for blob, pinned, size in variants:
            with pytest.raises(IntegrityError, match=reason):
                open_small(blob, key, pinned, size, label="f")
    for position in (32, 32 + CHUNK + 16 + 3, len(sealed) - 1):
        changed = bytearray(sealed)
        changed[position] ^= 1
        with pytest.raises(IntegrityError, match="f: authentication failed"):
            open_small(bytes(changed), key, nonce, len(data), label="f")
    with pytest.raises(IntegrityError, match="authentication failed at chunk 0"):
        open_small(sealed, os.urandom(32), nonce, len(data), label="f")
