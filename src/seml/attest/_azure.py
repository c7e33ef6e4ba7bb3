"""Azure confidential VMs: an SEV-SNP report behind Azure's paravisor (HCL) and a vTPM.

On Azure the guest does not talk to the AMD secure processor itself; the paravisor (HCL) does,
and hands the guest an "HCL report": a 32-byte header (``HCLA``), the 1184-byte SNP report, and
the runtime claims (a 20-byte header and a JSON document) whose hash is the SNP report's
REPORT_DATA. The claims hold the vTPM's attestation key (``HCLAkPub``) and 64 bytes of
``user-data`` the guest chose. The vTPM then quotes its PCRs (the boot chain: firmware,
bootloader, kernel, command line) with that key.

Checked here, offline: the SNP report as `seml.attest._snp` does; REPORT_DATA binds the claims;
the claims' attestation key signs the TPM quote (RSASSA-PKCS1-v1_5 SHA-256); the quote's PCR
digest is the digest of the PCR values given; and the quote's nonce is ours. The verdict's
report data is the claims' ``user-data``: that is where SEML binds its nonce and key, and the
quote's nonce must be `tpm_nonce_for` that value (or the nonce a caller passes explicitly).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from seml.attest._evidence import Evidence, TeeType, Verdict, collateral_fields
from seml.attest._snp import AMD_ARK_FINGERPRINTS, REPORT_SIZE, SnpVerifier
from seml.errors import AttestationError

__all__ = [
    "AzureSnpVerifier",
    "TpmQuote",
    "azure_collateral",
    "parse_hcl_report",
    "parse_tpm_quote",
    "tpm_nonce_for",
]

_HCL_MAGIC = b"HCLA"
_HCL_HEADER = 0x20
_CLAIMS_HEADER = 20
_REPORT_TYPE_SNP = 2
_HASH = {1: hashlib.sha256, 2: hashlib.sha384, 3: hashlib.sha512}
_TPM_GENERATED = 0xFF544347
_TPM_ST_ATTEST_QUOTE = 0x8018
_TPM_ALG_SHA256 = 0x000B
_TPM_NONCE_DOMAIN = b"seml/attest/azure-tpm-nonce/v1\x00"


def tpm_nonce_for(report_data: bytes) -> bytes:
    """The vTPM quote nonce SEML asks for: bound to the user-data in the HCL report."""
    return hashlib.sha256(_TPM_NONCE_DOMAIN + report_data).digest()


@dataclass(frozen=True)
class HclReport:
    snp_report: bytes
    claims: bytes  # the runtime-claims JSON exactly as hashed
    hash_type: int


def parse_hcl_report(data: bytes) -> HclReport:
    if len(data) < _HCL_HEADER + REPORT_SIZE + _CLAIMS_HEADER or data[:4] != _HCL_MAGIC:
        raise AttestationError("not an Azure HCL report (bad magic or too short)")
    at = _HCL_HEADER + REPORT_SIZE
    size, _version, report_type, hash_type, var_size = (
        int.from_bytes(data[at + i : at + i + 4], "little") for i in range(0, 20, 4)
    )
    if report_type != _REPORT_TYPE_SNP:
        raise AttestationError(f"HCL report type {report_type} is not SEV-SNP ({_REPORT_TYPE_SNP})")
    if hash_type not in _HASH:
        raise AttestationError(f"HCL runtime claims use unknown hash type {hash_type}")
    start = at + _CLAIMS_HEADER
    if size != _CLAIMS_HEADER + var_size or start + var_size > len(data):
        raise AttestationError("HCL runtime claims overrun the report")
    return HclReport(
        snp_report=data[_HCL_HEADER:at],
        claims=data[start : start + var_size],
        hash_type=hash_type,
    )


@dataclass(frozen=True)
class TpmQuote:
    """A TPMS_ATTEST of type quote: what the vTPM signed."""

    nonce: bytes
    pcr_bank: int
    pcrs: tuple[int, ...]
    pcr_digest: bytes


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise AttestationError("TPM quote is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def sized(self) -> bytes:
        return self.take(self.uint(2))


def parse_tpm_quote(message: bytes) -> TpmQuote:
    r = _Reader(message)
    if r.uint(4) != _TPM_GENERATED or r.uint(2) != _TPM_ST_ATTEST_QUOTE:
        raise AttestationError("not a TPM2 quote (TPMS_ATTEST magic or type)")
    r.sized()  # qualifiedSigner
    nonce = r.sized()  # extraData
    r.take(17 + 8)  # clockInfo, firmwareVersion
    banks = r.uint(4)
    if banks != 1:
        raise AttestationError(f"the TPM quote covers {banks} PCR banks; expected one (SHA-256)")
    bank = r.uint(2)
    select = r.take(r.uint(1))
    pcrs = tuple(i for i in range(len(select) * 8) if select[i // 8] >> (i % 8) & 1)
    digest = r.sized()
    if r.pos != len(message):
        raise AttestationError("the TPM quote has trailing bytes")
    return TpmQuote(nonce=nonce, pcr_bank=bank, pcrs=pcrs, pcr_digest=digest)


def _b64url(value: Any, what: str) -> int:
    if not isinstance(value, str):
        raise AttestationError(f"{what} is missing")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as e:
        raise AttestationError(f"{what} is not base64url") from e
    return int.from_bytes(raw, "big")


def _attestation_key(claims: Mapping[str, Any]) -> rsa.RSAPublicKey:
    keys = claims.get("keys")
    jwk = (
        next(
            (k for k in keys if isinstance(k, dict) and k.get("kid") == "HCLAkPub"),
            None,
        )
        if isinstance(keys, list)
        else None
    )
    if jwk is None or jwk.get("kty") != "RSA":
        raise AttestationError("the HCL runtime claims hold no RSA attestation key HCLAkPub")
    n = _b64url(jwk.get("n"), "HCLAkPub modulus")
    e = _b64url(jwk.get("e"), "HCLAkPub exponent")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as err:
        raise AttestationError(f"HCLAkPub is not a usable RSA key: {err}") from err


def _signature(raw: bytes) -> bytes:
    # A TPMT_SIGNATURE (RSASSA, SHA-256, sized) or just the signature bytes.
    if raw[:4] == b"\x00\x14\x00\x0b" and len(raw) == 6 + int.from_bytes(raw[4:6], "big"):
        return raw[6:]
    return raw


def _hex_list(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AttestationError(f"{what} must be a list of hex strings")
    try:
        return [bytes.fromhex(v) for v in values]
    except ValueError as e:
        raise AttestationError(f"{what} must be hex") from e


def azure_collateral(
    *,
    certs: bytes,
    tpm_quote: bytes,
    tpm_signature: bytes,
    pcrs: Sequence[bytes],
    crl: bytes | None = None,
) -> str:
    """The collateral JSON an `azure-snp` envelope carries."""
    from seml.attest._snp import snp_collateral

    return snp_collateral(
        certs,
        crl,
        tpm_quote=base64.b64encode(tpm_quote).decode(),
        tpm_signature=base64.b64encode(tpm_signature).decode(),
        pcrs=[p.hex() for p in pcrs],
    )


def _b64(document: Mapping[str, Any], key: str) -> bytes:
    value = document.get(key)
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as e:
        raise AttestationError(f"azure-snp collateral {key} must be base64") from e


class AzureSnpVerifier:
    """Verifies `azure-snp` envelopes: the HCL report as `quote`, `azure_collateral` as collateral.

    `quote_nonce`, when given, is the vTPM quote nonce expected instead of `tpm_nonce_for` the
    claims' user-data (for checking recorded evidence whose nonce a caller knows).
    """

    def __init__(
        self,
        *,
        roots: Mapping[str, str] = AMD_ARK_FINGERPRINTS,
        chain: bytes | None = None,
        crl: bytes | None = None,
        quote_nonce: bytes | None = None,
    ) -> None:
        self._snp = SnpVerifier(roots=roots, chain=chain, crl=crl)
        self._quote_nonce = quote_nonce

    def verify(self, evidence: Evidence, *, now: int) -> Verdict:
        if evidence.tee is not TeeType.AZURE_SNP:
            raise AttestationError(f"not Azure SNP evidence: {evidence.tee.value}")
        document = collateral_fields(evidence, "certs", "tpm_quote", "tpm_signature", "pcrs")
        hcl = parse_hcl_report(evidence.quote)
        snp = self._snp.result(hcl.snp_report, document, "azure-snp", now)
        digest = _HASH[hcl.hash_type](hcl.claims).digest()
        if not hmac.compare_digest(snp.report.report_data[: len(digest)], digest):
            raise AttestationError(
                "the SNP report does not bind the HCL runtime claims (REPORT_DATA is not their "
                "hash: altered claims)"
            )
        try:
            claims = json.loads(hcl.claims)
        except ValueError as e:
            raise AttestationError("the HCL runtime claims are not JSON") from e
        if not isinstance(claims, dict):
            raise AttestationError("the HCL runtime claims are not a JSON object")
        key = _attestation_key(claims)
        message = _b64(document, "tpm_quote")
        try:
            key.verify(
                _signature(_b64(document, "tpm_signature")),
                message,
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise AttestationError(
                "the vTPM quote's signature is invalid: not signed by the attestation key in the "
                "HCL report (altered quote, or another VM's vTPM)"
            ) from None
        quote = parse_tpm_quote(message)
        pcrs = _hex_list(document.get("pcrs"), "azure-snp collateral pcrs")
        if quote.pcr_bank != _TPM_ALG_SHA256:
            raise AttestationError(
                f"the vTPM quote is over PCR bank {quote.pcr_bank:#x}, not SHA-256"
            )
        if max(quote.pcrs, default=-1) >= len(pcrs) or any(len(p) != 32 for p in pcrs):
            raise AttestationError("the PCR values given do not cover the PCRs the quote selects")
        selected = b"".join(pcrs[i] for i in quote.pcrs)
        if not hmac.compare_digest(hashlib.sha256(selected).digest(), quote.pcr_digest):
            raise AttestationError(
                "the PCR values given do not match the vTPM quote's PCR digest (altered PCRs)"
            )
        user_data = _user_data(claims)
        expected = self._quote_nonce if self._quote_nonce is not None else tpm_nonce_for(user_data)
        if not hmac.compare_digest(quote.nonce, expected):
            raise AttestationError(
                f"the vTPM quote's nonce {quote.nonce.hex()} is not ours (expected "
                f"{expected.hex()}): a replayed or foreign quote"
            )
        base = snp.verdict(TeeType.AZURE_SNP)
        details = dict(base.details)
        details.update({f"pcr{i}": pcrs[i].hex() for i in quote.pcrs})
        details["tpm_nonce"] = quote.nonce.hex()
        config = claims.get("vm-configuration")
        if isinstance(config, dict):
            for name in ("secure-boot", "tpm-enabled", "console-enabled", "vmUniqueId"):
                if name in config:
                    value = config[name]
                    text = str(value).lower() if isinstance(value, bool) else str(value)
                    details[f"vm_{name.replace('-', '_')}"] = text
        return Verdict(
            tee=TeeType.AZURE_SNP,
            measurement=base.measurement,
            report_data=user_data,
            tcb_status=base.tcb_status,
            weaknesses=base.weaknesses,
            details=details,
        )


def _user_data(claims: Mapping[str, Any]) -> bytes:
    value = claims.get("user-data")
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 64:
        raise AttestationError("the HCL runtime claims carry no 64-byte user-data")
    return raw
