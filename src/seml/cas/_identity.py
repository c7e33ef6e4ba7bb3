"""The service's own key material in its state directory, created once by `seml cas init`.

DIR/master.key   32 random bytes (0600): every secret at rest is sealed under keys derived from it
DIR/identity.key Ed25519 (PEM, 0600): signs the audit log
DIR/tls.key      EC P-256 (PEM, 0600) and DIR/tls.crt, a self-signed certificate clients pin by
                 its sha256 fingerprint

On a cluster the key material comes from Secrets mounted read-only and only the database lives
in DIR, on a persistent volume: `load_identity(DIR, keys=KEYS, tls=TLS)` reads master.key and
identity.key from KEYS and tls.crt/tls.key from TLS (the file names of a kubernetes.io/tls
Secret).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from seml._fs import write_atomic
from seml.cas._protocol import cert_fingerprint
from seml.errors import StorageError, UsageError
from seml.policy import write_private_key

__all__ = ["CasIdentity", "cert_fingerprint", "init_state_dir", "load_identity"]

MASTER_KEY = "master.key"
IDENTITY_KEY = "identity.key"
TLS_KEY = "tls.key"
TLS_CERT = "tls.crt"
DATABASE = "cas.sqlite"


def _derive(master: bytes, purpose: str) -> bytes:
    return hmac.new(master, b"seml-cas/" + purpose.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class CasIdentity:
    """Loaded key material; repr shows only public facts."""

    directory: Path
    fingerprint: str
    identity_public: bytes
    tls_dir: Path
    _master: bytes = field(repr=False)
    _identity: Ed25519PrivateKey = field(repr=False)
    # The same key for libsodium, which signs the audit log faster than OpenSSL (Ed25519 is
    # deterministic: the signatures are the same bytes).
    _signer: SigningKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_signer", SigningKey(self._identity.private_bytes_raw()))

    @property
    def secrets_key(self) -> bytes:
        return _derive(self._master, "secrets-at-rest")

    @property
    def token_key(self) -> bytes:
        return _derive(self._master, "volume-tokens")

    @property
    def box_key(self) -> PrivateKey:
        """X25519 key parties encrypt provided secrets to (derived, so nothing more to store)."""
        return PrivateKey(_derive(self._master, "provided-secrets-x25519"))

    def sign(self, message: bytes) -> bytes:
        return self._signer.sign(message).signature

    @property
    def database(self) -> Path:
        return self.directory / DATABASE

    @property
    def tls_key(self) -> Path:
        return self.tls_dir / TLS_KEY

    @property
    def tls_cert(self) -> Path:
        return self.tls_dir / TLS_CERT


def _self_signed(key: ec.EllipticCurvePrivateKey, hosts: list[str], now: dt.datetime) -> bytes:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seml-cas")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def init_state_dir(directory: Path, *, hosts: list[str], now: dt.datetime) -> CasIdentity:
    """Create the key material; refuses a directory that already holds a service."""
    if (directory / MASTER_KEY).exists():
        raise UsageError(f"{directory} already holds an attestation service (master.key exists)")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise StorageError(f"cannot create {directory}: {e.strerror}") from e
    tls = ec.generate_private_key(ec.SECP256R1())
    identity = Ed25519PrivateKey.generate()
    pem = serialization.PrivateFormat.PKCS8
    enc = serialization.Encoding.PEM
    write_private_key(
        directory / TLS_KEY, tls.private_bytes(enc, pem, serialization.NoEncryption())
    )
    write_private_key(
        directory / IDENTITY_KEY, identity.private_bytes(enc, pem, serialization.NoEncryption())
    )
    cert = _self_signed(tls, hosts, now)
    write_atomic(directory / TLS_CERT, cert)
    # The master key goes last: its presence marks a complete directory.
    write_private_key(directory / MASTER_KEY, os.urandom(32))
    return load_identity(directory)


def _check_private(path: Path, *, mounted: bool) -> None:
    """Refuse a key file others can read. A Secret mounted with the pod's fsGroup is readable
    by that group (kubelet adds g+r), which is the service's own group: allowed there only."""
    st = path.stat()
    if not st.st_mode & 0o077:
        return
    own_group = st.st_gid == os.getgid() or st.st_gid in os.getgroups()
    if mounted and not st.st_mode & 0o007 and own_group:
        return
    raise UsageError(f"{path} is readable by others; chmod 600 it")


def load_identity(
    directory: Path, *, keys: Path | None = None, tls: Path | None = None
) -> CasIdentity:
    """The service's identity; master.key and identity.key from `keys`, tls.crt and tls.key
    from `tls` (both default to `directory`, which holds the database)."""
    keys_dir = keys or directory
    tls_dir = tls or directory
    try:
        master = (keys_dir / MASTER_KEY).read_bytes()
        identity_pem = (keys_dir / IDENTITY_KEY).read_bytes()
        cert_pem = (tls_dir / TLS_CERT).read_bytes()
        if not (tls_dir / TLS_KEY).is_file():
            raise FileNotFoundError(2, "missing", str(tls_dir / TLS_KEY))
        _check_private(keys_dir / MASTER_KEY, mounted=keys is not None)
        _check_private(keys_dir / IDENTITY_KEY, mounted=keys is not None)
        _check_private(tls_dir / TLS_KEY, mounted=tls is not None)
    except FileNotFoundError as e:
        raise UsageError(
            f"{Path(e.filename).parent} is not an attestation service directory "
            f"({Path(e.filename).name} missing; run `seml cas init`)"
        ) from e
    except OSError as e:
        raise StorageError(f"cannot read {e.filename or directory}: {e.strerror}") from e
    if len(master) != 32:
        raise UsageError(f"{keys_dir / MASTER_KEY} is not a 32-byte key")
    try:
        identity = serialization.load_pem_private_key(identity_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as e:
        raise UsageError(f"{keys_dir}: corrupt identity key or certificate") from e
    if not isinstance(identity, Ed25519PrivateKey):
        raise UsageError(f"{keys_dir / IDENTITY_KEY} is not an Ed25519 key")
    return CasIdentity(
        directory=directory,
        fingerprint=cert_fingerprint(cert.public_bytes(serialization.Encoding.DER)),
        identity_public=identity.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ),
        tls_dir=tls_dir,
        _master=master,
        _identity=identity,
    )
