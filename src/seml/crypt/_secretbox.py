"""Batches of XSalsa20-Poly1305 secretboxes over preallocated buffers.

PyNaCl's high-level `crypto_secretbox` copies the message twice per call. For 64 KiB chunks at
disk speed that overhead matters, so this module calls libsodium's `crypto_secretbox_easy` /
`crypto_secretbox_open_easy` (tag first, as rclone and NaCl lay it out) through the cffi library
PyNaCl already ships, reading and writing the caller's buffers in place. cffi releases the GIL
during each C call, so batches run in parallel on a thread pool.

`sodium_init()` must run before the first call: it picks the SIMD implementations of Salsa20
and Poly1305 for this CPU. Without it libsodium runs its portable code, half as fast here.
PyNaCl calls it when `nacl.bindings` is imported; this module does not import that, so it
calls it itself (idempotent, thread-safe).
"""

from __future__ import annotations

import mmap

from nacl._sodium import ffi, lib

__all__ = ["NONCE_SIZE", "TAG_SIZE", "Buffer", "open_batch", "seal_batch"]

Buffer = bytearray | mmap.mmap  # a writable buffer (mmap: page-aligned, for direct I/O)

NONCE_SIZE = 24
TAG_SIZE = 16
KEY_SIZE = 32
_NONCE_MOD = 1 << (8 * NONCE_SIZE)

if lib.sodium_init() < 0:  # pragma: no cover  (0: initialised now, 1: already)
    raise RuntimeError("libsodium could not be initialised (sodium_init failed)")


def _nonce(base: int, index: int) -> bytes:
    # rclone increments the 24-byte nonce as a little-endian counter, wrapping around.
    return ((base + index) % _NONCE_MOD).to_bytes(NONCE_SIZE, "little")


def seal_batch(key: bytes, nonce: int, src: Buffer, size: int, dst: Buffer, block: int) -> int:
    """Seal `src[:size]` in `block`-sized chunks into `dst` (tag || ciphertext per chunk).

    Chunk i uses nonce `nonce + i`. Returns the number of bytes written to `dst`.
    """
    if len(key) != KEY_SIZE:
        raise ValueError("secretbox key must be 32 bytes")
    s = ffi.from_buffer("unsigned char[]", src)
    d = ffi.from_buffer("unsigned char[]", dst, require_writable=True)
    seal = lib.crypto_secretbox_easy
    out = 0
    for i, off in enumerate(range(0, size, block)):
        n = min(block, size - off)
        if seal(d + out, s + off, n, _nonce(nonce, i), key) != 0:  # pragma: no cover
            raise RuntimeError("crypto_secretbox_easy failed")
        out += n + TAG_SIZE
    return out


def open_batch(
    key: bytes, nonce: int, src: Buffer, size: int, dst: Buffer, block: int
) -> tuple[int, int]:
    """Open `src[:size]` made of sealed chunks of `block + TAG_SIZE` bytes (the last may be short).

    Returns (plaintext bytes written to `dst`, index of the first chunk that failed or -1).
    The caller has already checked that no chunk is shorter than or equal to its tag.
    """
    if len(key) != KEY_SIZE:
        raise ValueError("secretbox key must be 32 bytes")
    s = ffi.from_buffer("unsigned char[]", src)
    d = ffi.from_buffer("unsigned char[]", dst, require_writable=True)
    unseal = lib.crypto_secretbox_open_easy
    sealed = block + TAG_SIZE
    out = 0
    for i, off in enumerate(range(0, size, sealed)):
        n = min(sealed, size - off)
        if unseal(d + out, s + off, n, _nonce(nonce, i), key) != 0:
            return out, i
        out += n - TAG_SIZE
    return out, -1
