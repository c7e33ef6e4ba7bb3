"""Party identities: Ed25519 key pairs, their text forms and fingerprints."""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from seml.errors import UsageError

__all__ = [
    "PartyKey",
    "fingerprint",
    "load_private_key",
    "new_key_pair",
    "parse_public_key",
    "public_key_text",
    "verify_ed25519",
    "write_private_key",
]


def parse_public_key(text: str) -> bytes:
    """The 32 raw bytes of an Ed25519 public key written in base64 or hex; ValueError if not."""
    t = text.strip()
    raw: bytes | None = None
    if len(t) == 64:
        try:
            raw = bytes.fromhex(t)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(t, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("public key is neither base64 nor hex") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}")
    return raw


def public_key_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def fingerprint(raw_public_key: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw_public_key).hexdigest()


def verify_ed25519(raw_public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(raw_public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


class PartyKey:
    """A party's private signing key. Its repr never shows key material."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @property
    def public(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"PartyKey({self.fingerprint})"


def new_key_pair() -> PartyKey:
    return PartyKey(Ed25519PrivateKey.generate())


def write_private_key(path: Path, data: bytes) -> None:
    """Write key material 0600, atomically and durably (`seml._fs`)."""
    from seml._fs import write_atomic

    write_atomic(path, data, mode=0o600)


def load_private_key(path: Path) -> PartyKey:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read key file {path}: {e.strerror}") from e
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise UsageError(f"{path} is not an unencrypted PEM private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path} is not an Ed25519 private key")
    return PartyKey(key)
