"""X.509 helpers shared by the hardware-evidence verifiers: load, pin, check a chain, read DER.

Pure: certificates and CRLs come in as bytes and the time as a parameter; every failure is an
`AttestationError` naming the certificate. Signature schemes are pinned by the caller (AMD signs
with RSA-PSS SHA-384, NVIDIA with ECDSA P-384 SHA-384); a certificate whose declared scheme
differs is refused rather than verified with whatever it claims.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from seml.errors import AttestationError

__all__ = [
    "Cert",
    "Scheme",
    "check_crl",
    "check_issued_by",
    "check_valid_at",
    "der_items",
    "load_certs",
    "load_crl",
    "pem_certificates",
    "utc",
]

# At most a few certificates per chain; a few KiB each. Anything larger is not evidence.
MAX_CERTS = 16

# AMD's KDS issues every VCEK and VLEK with serial number 0, which RFC 5280 forbids;
# `cryptography` still loads such a certificate but warns (CryptographyDeprecationWarning,
# "Parsed a serial number which wasn't positive") on load and on reading the serial, and says a
# future release will refuse it. We do accept it on purpose: AMD's certificate is authenticated
# by its ASK/ASVK signature, not by its serial. So exactly that warning is silenced around the
# two calls that raise it (load and serial), and the serial is read once and kept in `Cert`.
# `catch_warnings` swaps process-wide state, hence the lock. If a future `cryptography` refuses
# the certificate, the load fails with a clear AttestationError below, never silently.
_SERIAL_WARNING = "Parsed a serial number which wasn't positive"
_WARNINGS_LOCK = threading.Lock()


class Scheme(Enum):
    """The signature scheme a certificate (or CRL) must be signed with."""

    RSA_PSS_SHA384 = "RSA-PSS SHA-384"  # AMD: MGF1-SHA-384, salt 48
    ECDSA_SHA384 = "ECDSA P-384 SHA-384"  # NVIDIA


_SCHEME_OIDS = {
    Scheme.RSA_PSS_SHA384: x509.oid.SignatureAlgorithmOID.RSASSA_PSS,
    Scheme.ECDSA_SHA384: x509.oid.SignatureAlgorithmOID.ECDSA_WITH_SHA384,
}


@dataclass(frozen=True)
class Cert:
    """A parsed certificate with what the verifiers need read once (see the serial note)."""

    cert: x509.Certificate
    der: bytes
    serial: int

    @property
    def fingerprint(self) -> str:
        """Lowercase hex SHA-256 of the DER encoding."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def name(self) -> str:
        """The subject's common name (or the whole subject when it has none), for messages."""
        return _common_name(self.cert.subject)

    @property
    def issuer_name(self) -> str:
        return _common_name(self.cert.issuer)

    def extension(self, oid: str) -> bytes | None:
        """The raw value of a (private) extension, or None."""
        for ext in self.cert.extensions:
            if ext.oid.dotted_string == oid:
                value = ext.value
                if isinstance(value, x509.UnrecognizedExtension):
                    return value.value
                return bytes(value.public_bytes())
        return None


def _common_name(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    if found:
        value = found[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return name.rfc4514_string() or "(no name)"


def _parse(der: bytes, what: str) -> Cert:
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=_SERIAL_WARNING, category=CryptographyDeprecationWarning
            )
            cert = x509.load_der_x509_certificate(der)
            serial = cert.serial_number
            # Parse what the checks read now, so a malformed extension or key is refused here
            # with the certificate named, not later as a foreign exception.
            _ = (
                cert.subject,
                cert.issuer,
                cert.not_valid_before_utc,
                cert.not_valid_after_utc,
                cert.signature_algorithm_oid,
                cert.extensions,
                cert.public_key(),
            )
    except (ValueError, UnsupportedAlgorithm) as e:
        raise AttestationError(f"{what}: not a readable X.509 certificate ({e})") from e
    return Cert(cert=cert, der=bytes(der), serial=serial)


def load_certs(data: bytes, what: str) -> list[Cert]:
    """Every certificate in `data`: a PEM bundle, or one DER certificate."""
    if b"-----BEGIN CERTIFICATE-----" in data:
        ders: list[bytes] = []
        for block in _pem_blocks(data, b"CERTIFICATE", what):
            ders.append(block)
    else:
        ders = [data]
    if not ders or len(ders) > MAX_CERTS:
        raise AttestationError(f"{what}: expected 1 to {MAX_CERTS} certificates, got {len(ders)}")
    return [_parse(der, what) for der in ders]


def pem_certificates(*blobs: bytes) -> bytes:
    """One PEM bundle from several PEM bundles or DER certificates, in order."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(
        c.cert.public_bytes(Encoding.PEM)
        for blob in blobs
        for c in load_certs(blob, "certificates")
    )


def _pem_blocks(data: bytes, label: bytes, what: str) -> Iterator[bytes]:
    import base64
    import binascii

    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    rest = data
    while (start := rest.find(begin)) >= 0:
        stop = rest.find(end, start)
        if stop < 0:
            raise AttestationError(f"{what}: unterminated PEM block")
        body = rest[start + len(begin) : stop]
        try:
            yield base64.b64decode(b"".join(body.split()), validate=True)
        except binascii.Error as e:
            raise AttestationError(f"{what}: bad base64 in a PEM block") from e
        rest = rest[stop + len(end) :]


def utc(now: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_valid_at(cert: Cert, now: int, what: str) -> None:
    """Refuse a certificate outside its validity window at `now`."""
    at = utc(now)
    if at < cert.cert.not_valid_before_utc:
        raise AttestationError(
            f"{what} {cert.name} is not yet valid at {_stamp(at)} "
            f"(valid from {_stamp(cert.cert.not_valid_before_utc)})"
        )
    if at > cert.cert.not_valid_after_utc:
        raise AttestationError(
            f"{what} {cert.name} has expired: valid until "
            f"{_stamp(cert.cert.not_valid_after_utc)}, checked at {_stamp(at)}"
        )


def _verify(
    key: object, signature: bytes, data: bytes, scheme: Scheme, what: str, issuer: str
) -> None:
    try:
        if scheme is Scheme.RSA_PSS_SHA384:
            if not isinstance(key, rsa.RSAPublicKey):
                raise AttestationError(f"{what}: issuer {issuer} has no RSA key")
            key.verify(
                signature,
                data,
                padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
                hashes.SHA384(),
            )
        else:
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
                raise AttestationError(f"{what}: issuer {issuer} has no P-384 key")
            key.verify(signature, data, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError(
            f"{what}: signature by {issuer} is invalid (altered or not issued by it)"
        ) from None


def check_issued_by(cert: Cert, issuer: Cert, scheme: Scheme, what: str) -> None:
    """`cert` names `issuer` as its issuer and carries a valid signature by its key."""
    if cert.cert.issuer != issuer.cert.subject:
        theirs, ours = cert.issuer_name, issuer.name
        if theirs == ours:  # same common name, other attributes: show them all
            theirs, ours = cert.cert.issuer.rfc4514_string(), issuer.cert.subject.rfc4514_string()
        raise AttestationError(f"{what} {cert.name} is issued by {theirs}, not by {ours}")
    if cert.cert.signature_algorithm_oid != _SCHEME_OIDS[scheme]:
        raise AttestationError(
            f"{what} {cert.name} is not signed with {scheme.value} "
            f"({cert.cert.signature_algorithm_oid.dotted_string})"
        )
    _verify(
        issuer.cert.public_key(),
        cert.cert.signature,
        cert.cert.tbs_certificate_bytes,
        scheme,
        f"{what} {cert.name}",
        issuer.name,
    )


def load_crl(data: bytes, what: str) -> x509.CertificateRevocationList:
    try:
        if b"-----BEGIN X509 CRL-----" in data:
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
        # Parsed lazily by cryptography: read everything checked now, while errors are ours.
        _ = crl.issuer, crl.last_update_utc, crl.next_update_utc, crl.signature_algorithm_oid
        for entry in crl:
            _ = entry.serial_number, entry.revocation_date_utc
        return crl
    except ValueError as e:
        raise AttestationError(f"{what}: not a readable X.509 CRL ({e})") from e


def check_crl(
    crl: x509.CertificateRevocationList,
    issuer: Cert,
    scheme: Scheme,
    now: int,
    certs: list[Cert],
    what: str,
) -> None:
    """The CRL is `issuer`'s, authentic and current at `now`; none of `certs` is on it.

    A serial listed is refused for any certificate of `certs`, whoever issued it: the caller
    passes only the chain below this CRL's issuer, and refusing more is the safe side.
    """
    if crl.issuer != issuer.cert.subject:
        raise AttestationError(
            f"{what} is issued by {crl.issuer.rfc4514_string()}, not by "
            f"{issuer.cert.subject.rfc4514_string()}"
        )
    if crl.signature_algorithm_oid != _SCHEME_OIDS[scheme]:
        raise AttestationError(f"{what} is not signed with {scheme.value}")
    _verify(
        issuer.cert.public_key(), crl.signature, crl.tbs_certlist_bytes, scheme, what, issuer.name
    )
    at = utc(now)
    if crl.last_update_utc > at:
        raise AttestationError(f"{what} is not yet valid at {_stamp(at)}")
    if crl.next_update_utc is not None and crl.next_update_utc < at:
        raise AttestationError(
            f"{what} has expired: next update was due {_stamp(crl.next_update_utc)}, "
            f"checked at {_stamp(at)}"
        )
    for cert in certs:
        for revoked in crl:
            if revoked.serial_number == cert.serial:
                raise AttestationError(
                    f"{cert.name} (serial {cert.serial}) is revoked by {what} "
                    f"since {_stamp(revoked.revocation_date_utc)}"
                )


def der_items(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, content) of each DER element in `data`, descending into constructed ones.

    Enough to find values in the small private extensions AMD and NVIDIA put in their
    certificates (integers, strings, hash values); raises AttestationError on bad lengths.
    """
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise AttestationError("malformed DER: truncated header")
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or pos + count > len(data):
                raise AttestationError("malformed DER: bad length")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if pos + length > len(data):
            raise AttestationError("malformed DER: element runs past its container")
        content = data[pos : pos + length]
        pos += length
        yield tag, content
        if tag & 0x20:  # constructed: its content is more elements
            yield from der_items(content)


def der_integer(data: bytes, what: str) -> int:
    """The value of a DER INTEGER (a certificate extension holding one number)."""
    items = list(der_items(data))
    if not items or items[0][0] != 0x02 or not items[0][1]:
        raise AttestationError(f"{what}: not a DER integer")
    return int.from_bytes(items[0][1], "big", signed=True)
