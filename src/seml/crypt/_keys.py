"""Key derivation and rclone's password obscuring, both exactly as rclone does them.

rclone derives 80 bytes with scrypt(N=16384, r=8, p=1) from the password, salted with password2
(or a fixed built-in salt when password2 is empty), and splits them into the content key, the
name key and the name tweak. Passwords in rclone.conf are "obscured": AES-256-CTR under a key
that is public in rclone's source, so obscuring hides a password from a glance, not from anyone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.hazmat.primitives.ciphers import Cipher as _AesCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes

from seml.errors import UsageError

__all__ = ["DATA_KEY_SIZE", "NAME_KEY_SIZE", "NAME_TWEAK_SIZE", "derive_keys", "obscure", "reveal"]

DATA_KEY_SIZE = 32
NAME_KEY_SIZE = 32
NAME_TWEAK_SIZE = 16

# rclone's built-in salt, used when password2 is empty (backend/crypt/cipher.go `defaultSalt`).
_DEFAULT_SALT = bytes.fromhex("a80df43a8fbd0308a7cab83e581f86b1")

# rclone's fixed obscuring key (fs/config/obscure/obscure.go `cryptKey`); public by design.
_OBSCURE_KEY = bytes.fromhex("9c935b48730a554d6bfd7c63c886a92bd390198eb8128afbf4de162b8b95f638")
_IV_SIZE = 16


def derive_keys(password: str, password2: str = "") -> tuple[bytes, bytes, bytes]:
    """Return (data key, name key, name tweak) as rclone derives them.

    An empty password gives all-zero keys, as in rclone (its config refuses an empty password,
    so this only matters for `from_keys`-style tests).
    """
    size = DATA_KEY_SIZE + NAME_KEY_SIZE + NAME_TWEAK_SIZE
    if password == "":
        key = bytes(size)
    else:
        salt = password2.encode("utf-8") if password2 else _DEFAULT_SALT
        key = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=16384, r=8, p=1, maxmem=64 << 20, dklen=size
        )
    data_key = key[:DATA_KEY_SIZE]
    name_key = key[DATA_KEY_SIZE : DATA_KEY_SIZE + NAME_KEY_SIZE]
    name_tweak = key[DATA_KEY_SIZE + NAME_KEY_SIZE :]
    return data_key, name_key, name_tweak


def _ctr(iv: bytes, data: bytes) -> bytes:
    transform = _AesCipher(algorithms.AES(_OBSCURE_KEY), modes.CTR(iv)).encryptor()
    return transform.update(data) + transform.finalize()


def obscure(plain: str) -> str:
    """Obscure a password the way `rclone obscure` does (random IV, so each call differs)."""
    iv = os.urandom(_IV_SIZE)
    raw = iv + _ctr(iv, plain.encode("utf-8"))
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def reveal(obscured: str) -> str:
    """Undo `obscure` / `rclone obscure`. UsageError (without the value) if it is not obscured."""
    text = obscured.strip()
    if not text or any(c not in _B64URL for c in text) or len(text) % 4 == 1:
        raise UsageError("password is not an rclone-obscured value (not base64url)")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise UsageError("password is not an rclone-obscured value (not base64url)") from e
    if len(raw) < _IV_SIZE:
        raise UsageError("password is not an rclone-obscured value (too short)")
    try:
        return _ctr(raw[:_IV_SIZE], raw[_IV_SIZE:]).decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError("revealed password is not valid UTF-8: is it obscured?") from e


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
