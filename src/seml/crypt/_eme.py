"""EME (ECB-Mix-ECB) wide-block encryption over AES, as rclone uses it for file names.

Halevi and Rogaway's EME mode, matching the Go package rclone uses (github.com/rfjakob/eme):
doubling in GF(2^128) is little-endian, and the input is 1 to 128 blocks of 16 bytes.
"""

from __future__ import annotations

import threading

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

__all__ = ["MAX_BLOCKS", "EmeKey", "eme_decrypt", "eme_encrypt"]

BLOCK = 16
MAX_BLOCKS = 128
_MASK = (1 << 128) - 1


def _double(x: int) -> int:
    """Multiply by 2 in GF(2^128), little-endian bytes as in rfjakob/eme `multByTwo`."""
    x <<= 1
    if x >> 128:
        x = (x & _MASK) ^ 135
    return x


def _int(b: bytes) -> int:
    return int.from_bytes(b, "little")


def _bytes(x: int) -> bytes:
    return x.to_bytes(BLOCK, "little")


class _Aes(threading.local):
    """Raw AES blocks under one key: an ECB encryptor and decryptor per thread, reused (ECB
    keeps no state between whole blocks; making contexts per call was most of a name's cost),
    and AES_K(0), which every EME call needs."""

    def __init__(self, key: bytes) -> None:
        aes = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305  (EME is built from raw AES)
        self.enc: CipherContext = aes.encryptor()
        self.dec: CipherContext = aes.decryptor()
        self.l0 = _int(self.enc.update(bytes(BLOCK)))


class EmeKey:
    """EME under one AES key, for many calls (a name cipher's: one per path segment)."""

    def __init__(self, key: bytes) -> None:
        self._aes = _Aes(key)

    def encrypt(self, tweak: bytes, data: bytes) -> bytes:
        return _transform(self._aes, tweak, data, encrypt=True)

    def decrypt(self, tweak: bytes, data: bytes) -> bytes:
        return _transform(self._aes, tweak, data, encrypt=False)


def _transform(aes: _Aes, tweak: bytes, data: bytes, *, encrypt: bool) -> bytes:
    if len(tweak) != BLOCK:
        raise ValueError("EME tweak must be 16 bytes")
    if len(data) % BLOCK or not 0 < len(data) // BLOCK <= MAX_BLOCKS:
        raise ValueError("EME input must be 1 to 128 whole blocks")
    m = len(data) // BLOCK
    ecb = aes.enc.update if encrypt else aes.dec.update

    # L_j = 2^(j+1) * AES_K(0)
    li = aes.l0
    table: list[int] = []
    for _ in range(m):
        li = _double(li)
        table.append(li)

    pp = b"".join(_bytes(_int(data[j * BLOCK : (j + 1) * BLOCK]) ^ table[j]) for j in range(m))
    ppp = ecb(pp)
    pppj = [_int(ppp[j * BLOCK : (j + 1) * BLOCK]) for j in range(m)]

    t = _int(tweak)
    mp = t
    for v in pppj:
        mp ^= v
    mc = _int(ecb(_bytes(mp)))
    mask = mp ^ mc

    ccc = [0] * m
    acc = 0
    for j in range(1, m):
        mask = _double(mask)
        ccc[j] = pppj[j] ^ mask
        acc ^= ccc[j]
    ccc[0] = acc ^ t ^ mc

    cc = ecb(b"".join(_bytes(v) for v in ccc))
    return b"".join(_bytes(_int(cc[j * BLOCK : (j + 1) * BLOCK]) ^ table[j]) for j in range(m))


def eme_encrypt(key: bytes, tweak: bytes, data: bytes) -> bytes:
    """Encrypt whole 16-byte blocks (1 to 128 of them) under `key` with `tweak`."""
    return EmeKey(key).encrypt(tweak, data)


def eme_decrypt(key: bytes, tweak: bytes, data: bytes) -> bytes:
    """Inverse of `eme_encrypt`."""
    return EmeKey(key).decrypt(tweak, data)
