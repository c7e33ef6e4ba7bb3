"""Test-only AMD and NVIDIA hardware: our own roots, keys, SNP reports and SPDM evidence.

The recorded vectors cannot carry a fresh nonce or a CRL signed by AMD's ARK, so the paths that
need one (CRLs, unpinned roots, the attestation service binding a fresh nonce and key) are
tested with this stand-in hierarchy, built exactly like the real one (RSA-PSS SHA-384 certs,
AMD's VCEK extensions, ECDSA P-384 little-endian report signatures, SPDM layout) and pinned
explicitly where a test uses it. The real roots never trust it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)
NOW = int(dt.datetime(2025, 6, 1, tzinfo=dt.UTC).timestamp())
_AMD = "1.3.6.1.4.1.3704.1."


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _der_int(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return b"\x02" + bytes([len(body)]) + body


def _ext(oid: str, value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value)


@cache
def _rsa_key(label: str) -> rsa.RSAPrivateKey:
    del label  # one key per label, cached for the test run
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def _ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    del label
    return ec.generate_private_key(ec.SECP384R1())


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


@dataclass
class FakeAmd:
    """ARK -> ASK -> VCEK for one made-up Milan chip, plus a report signer."""

    tcb: tuple[int, int, int, int] = (3, 0, 8, 115)
    chip_id: bytes = bytes(range(64))
    label: str = "amd"
    vcek_serial: int = 7
    ark: x509.Certificate = field(init=False)
    ask: x509.Certificate = field(init=False)
    vcek: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        ark_key, ask_key = _rsa_key(self.label + "-ark"), _rsa_key(self.label + "-ask")
        self.ark = self._cert(_name("ARK-Milan"), ark_key.public_key(), _name("ARK-Milan"), 1)
        self.ask = self._cert(_name("SEV-Milan"), ask_key.public_key(), _name("ARK-Milan"), 2)
        bl, tee, snp, ucode = self.tcb
        extensions = [
            _ext(_AMD + "1", _der_int(0)),
            _ext(_AMD + "2", b"\x16\x08Milan-B0"),
            _ext(_AMD + "3.1", _der_int(bl)),
            _ext(_AMD + "3.2", _der_int(tee)),
            _ext(_AMD + "3.3", _der_int(snp)),
            _ext(_AMD + "3.8", _der_int(ucode)),
            _ext(_AMD + "4", self.chip_id),
        ]
        self.vcek = self._cert(
            _name("SEV-VCEK"),
            self.vcek_key.public_key(),
            _name("SEV-Milan"),
            self.vcek_serial,
            extensions,
        )

    @property
    def vcek_key(self) -> ec.EllipticCurvePrivateKey:
        return _ec_key(self.label + "-vcek")

    def _cert(
        self,
        subject: x509.Name,
        public: object,
        issuer: x509.Name,
        serial: int,
        extensions: list[x509.UnrecognizedExtension] = (),  # type: ignore[assignment]
    ) -> x509.Certificate:
        signer = _rsa_key(self.label + ("-ark" if issuer == _name("ARK-Milan") else "-ask"))
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)  # type: ignore[arg-type]
            .serial_number(serial)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(NOT_AFTER)
        )
        for ext in extensions:
            builder = builder.add_extension(ext, critical=False)
        return builder.sign(signer, hashes.SHA384(), rsa_padding=PSS)

    @property
    def roots(self) -> dict[str, str]:
        return {"Milan": fingerprint(self.ark)}

    @property
    def chain(self) -> bytes:
        return pem(self.ask, self.ark)

    def report(
        self,
        report_data: bytes,
        *,
        measurement: bytes = b"\x11" * 48,
        policy: int = 0x30000,
        vmpl: int = 0,
        tcb: tuple[int, int, int, int] | None = None,
        host_data: bytes = bytes(32),
    ) -> bytes:
        """A v3 ATTESTATION_REPORT from a Milan CPU, signed by this chip's VCEK."""
        bl, tee, snp, ucode = tcb or self.tcb
        raw_tcb = bytes([bl, tee, 0, 0, 0, 0, snp, ucode])
        r = bytearray(0x4A0)
        r[0:4] = (3).to_bytes(4, "little")
        r[8:16] = policy.to_bytes(8, "little")
        r[0x30:0x34] = vmpl.to_bytes(4, "little")
        r[0x34:0x38] = (1).to_bytes(4, "little")
        r[0x38:0x40] = raw_tcb
        r[0x50:0x90] = report_data
        r[0x90:0xC0] = measurement
        r[0xC0:0xE0] = host_data
        r[0x180:0x188] = raw_tcb
        r[0x188:0x18B] = bytes([0x19, 0x01, 0x01])
        r[0x1A0:0x1E0] = self.chip_id
        r[0x1E8:0x1EB] = bytes([4, 52, 1])
        der = self.vcek_key.sign(bytes(r[:0x2A0]), ec.ECDSA(hashes.SHA384()))
        sig_r, sig_s = decode_dss_signature(der)
        r[0x2A0:0x2E8] = sig_r.to_bytes(72, "little")
        r[0x2E8:0x330] = sig_s.to_bytes(72, "little")
        return bytes(r)

    def crl(
        self,
        revoked: list[int],
        *,
        signer: rsa.RSAPrivateKey | None = None,
        next_update: dt.datetime = NOT_AFTER,
        issuer: x509.Name | None = None,
    ) -> bytes:
        """A CRL in the ARK's name (or `issuer`), signed by the ARK (or by `signer`)."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer or _name("ARK-Milan"))
            .last_update(NOT_BEFORE)
            .next_update(next_update)
        )
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(NOT_BEFORE)
                .build()
            )
        key = signer or _rsa_key(self.label + "-ark")
        return builder.sign(key, hashes.SHA384(), rsa_padding=PSS).public_bytes(Encoding.PEM)


def other_rsa_key() -> rsa.RSAPrivateKey:
    return _rsa_key("not-amd")


@dataclass
class FakeGpu:
    """A made-up NVIDIA device root and leaf, and SPDM evidence signed by the leaf."""

    label: str = "gpu"
    driver: str = "550.90.07"
    vbios: bytes = bytes.fromhex("009f009601000000")
    root: x509.Certificate = field(init=False)
    leaf: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        root_key, leaf_key = _ec_key(self.label + "-root"), _ec_key(self.label + "-leaf")
        root_name, leaf_name = _name("Fake Device Identity CA"), _name("FAKE GSP FMC LF")
        self.root = self._cert(root_name, root_key.public_key(), root_name, root_key, 1)
        self.leaf = self._cert(leaf_name, leaf_key.public_key(), root_name, root_key, 2)

    @staticmethod
    def _cert(
        subject: x509.Name,
        public: ec.EllipticCurvePublicKey,
        issuer: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        serial: int,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(serial)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(NOT_AFTER)
            .sign(key, hashes.SHA384())
        )

    @property
    def device_root(self) -> tuple[bytes, str]:
        return pem(self.root), fingerprint(self.root)

    @property
    def chain(self) -> bytes:
        return pem(self.leaf, self.root)

    def report(self, nonce: bytes, *, driver: str | None = None) -> bytes:
        request = bytes([0x11, 0xE0, 0x01, 0xFF]) + nonce + b"\x00"
        record = b""
        for index in range(1, 5):
            value = bytes([index]) * 48
            measurement = b"\x01" + len(value).to_bytes(2, "little") + value
            record += bytes([index, 0x01]) + len(measurement).to_bytes(2, "little") + measurement
        opaque = b""
        for kind, value in ((3, (driver or self.driver).encode() + b"\x00"), (6, self.vbios)):
            opaque += kind.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value
        response = (
            bytes([0x11, 0x60, 0x00, 0x00, 4])
            + len(record).to_bytes(3, "little")
            + record
            + b"\x42" * 32
            + len(opaque).to_bytes(2, "little")
            + opaque
        )
        signed = request + response
        der = _ec_key(self.label + "-leaf").sign(signed, ec.ECDSA(hashes.SHA384()))
        sig_r, sig_s = decode_dss_signature(der)
        return signed + sig_r.to_bytes(48, "big") + sig_s.to_bytes(48, "big")


def azure_evidence(
    amd: FakeAmd,
    user_data: bytes,
    *,
    pcrs: list[bytes] | None = None,
    quote_nonce: bytes | None = None,
) -> tuple[bytes, bytes, bytes, list[bytes]]:
    """(HCL report, vTPM quote, its signature, PCR values) of a made-up Azure CVM whose claims
    carry `user_data`, built like Azure's (see seml.attest._azure)."""
    import base64
    import json

    from seml.attest import tpm_nonce_for

    ak = _rsa_key(amd.label + "-azure-ak")
    numbers = ak.public_key().public_numbers()

    def b64url(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    claims = json.dumps(
        {
            "keys": [
                {"kid": "HCLAkPub", "kty": "RSA", "e": b64url(numbers.e), "n": b64url(numbers.n)}
            ],
            "vm-configuration": {"secure-boot": True, "tpm-enabled": True},
            "user-data": user_data.hex().upper(),
        }
    ).encode()
    report = amd.report(hashlib.sha256(claims).digest() + bytes(32), measurement=b"\x22" * 48)
    header = b"HCLA" + (2).to_bytes(4, "little") + bytes(24)
    claims_header = b"".join(
        v.to_bytes(4, "little") for v in (20 + len(claims), 1, 2, 1, len(claims))
    )
    hcl = header + report + claims_header + claims
    pcrs = pcrs or [hashlib.sha256(bytes([i])).digest() for i in range(24)]
    nonce = quote_nonce if quote_nonce is not None else tpm_nonce_for(user_data)
    quote = (
        (0xFF544347).to_bytes(4, "big")
        + (0x8018).to_bytes(2, "big")
        + (0).to_bytes(2, "big")
        + len(nonce).to_bytes(2, "big")
        + nonce
        + bytes(17 + 8)
        + (1).to_bytes(4, "big")
        + (0x000B).to_bytes(2, "big")
        + b"\x03\xff\xff\xff"
        + (32).to_bytes(2, "big")
        + hashlib.sha256(b"".join(pcrs)).digest()
    )
    signature = ak.sign(quote, padding.PKCS1v15(), hashes.SHA256())
    return hcl, quote, signature, pcrs
