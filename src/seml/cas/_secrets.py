"""Secret values: generation by kind, their text forms for placeholders, and sealing at rest.

At rest every value is ChaCha20-Poly1305 sealed under a key derived from the master key, with
the session hash and secret name as associated data: a sealed value copied to another row (or
another session version) does not open.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets as _random
import string

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.x509.oid import NameOID

from seml.errors import IntegrityError
from seml.policy import Placeholder, SecretKind

__all__ = ["generate_secret", "open_secret", "render_secret", "seal_secret"]

_ASCII = string.ascii_letters + string.digits
_PEM = serialization.Encoding.PEM
_PKCS8 = serialization.PrivateFormat.PKCS8
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_NOENC = serialization.NoEncryption()


def generate_secret(
    kind: SecretKind, *, size: int | None, common_name: str, now: dt.datetime
) -> bytes:
    if kind in (SecretKind.KEY, SecretKind.BINARY):
        return os.urandom(size or 32)
    if kind is SecretKind.ASCII:
        return "".join(_random.choice(_ASCII) for _ in range(size or 32)).encode()
    if kind is SecretKind.ED25519:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, _NOENC
        )
    if kind is SecretKind.X509:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), False)
            .sign(key, hashes.SHA256())
        )
        return json.dumps(
            {
                "key": key.private_bytes(_PEM, _PKCS8, _NOENC).decode(),
                "crt": cert.public_bytes(_PEM).decode(),
            }
        ).encode()
    raise ValueError(f"secrets of kind {kind.value} are not generated")


def render_secret(kind: SecretKind, value: bytes, p: Placeholder) -> str:
    """The text a placeholder is replaced with."""
    raw: bytes
    if kind is SecretKind.ED25519:
        key = Ed25519PrivateKey.from_private_bytes(value)
        if p.part == "pub":
            raw = key.public_key().public_bytes(_PEM, _SPKI)
        else:
            raw = key.private_bytes(_PEM, _PKCS8, _NOENC)
    elif kind is SecretKind.X509:
        parts = json.loads(value)
        if p.part == "key":
            raw = parts["key"].encode()
        elif p.part == "pub":
            cert = x509.load_pem_x509_certificate(parts["crt"].encode())
            raw = cert.public_key().public_bytes(_PEM, _SPKI)
        else:
            raw = parts["crt"].encode()
    else:
        raw = value
    if p.encoding == "base64":
        return base64.b64encode(raw).decode()
    if p.encoding == "hex":
        return raw.hex()
    if kind in (SecretKind.KEY, SecretKind.BINARY):
        return raw.hex()
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.hex()


def _aad(session_hash: str, name: str) -> bytes:
    return b"seml-secret\x00" + session_hash.encode() + b"\x00" + name.encode()


def seal_secret(key: bytes, session_hash: str, name: str, value: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, value, _aad(session_hash, name))


def open_secret(key: bytes, session_hash: str, name: str, sealed: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(key).decrypt(sealed[:12], sealed[12:], _aad(session_hash, name))
    except (InvalidTag, ValueError) as e:
        raise IntegrityError(
            f"sealed secret {name} of session {session_hash} does not open (tampered store)"
        ) from e
