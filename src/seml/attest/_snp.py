"""AMD SEV-SNP attestation reports, verified offline against AMD's pinned roots.

A confidential VM asks the AMD secure processor for an ATTESTATION_REPORT (1184 bytes, versions
2 and 3 parsed here) carrying 64 bytes of its own REPORT_DATA; the processor signs it with an
ECDSA P-384 key derived from the chip and its TCB (VCEK) or one a cloud provider was issued
(VLEK). AMD's Key Distribution Service certifies that key: VCEK <- ASK <- ARK, or
VLEK <- ASVK <- ARK, all RSA-PSS SHA-384. The ARK is AMD's root per product line; its
fingerprint is pinned here, so a chain to any other root is refused.

Checked: the chain and each certificate's validity window at `now`; a CRL from the ARK when one
is supplied (otherwise the verdict carries ``revocation-unchecked``, since only AMD's KDS serves
it); the report's signature; REPORTED_TCB against the TCB the VCEK/VLEK was issued for;
CHIP_ID against the VCEK's hardware id unless the chip id is masked. Policy (allowed
measurements, minimum TCB, VMPL) is the session's to judge: see `seml.cas`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from seml.attest._evidence import (
    WEAKNESS_DEBUG,
    WEAKNESS_REVOCATION_UNCHECKED,
    Evidence,
    TeeType,
    Verdict,
    collateral_fields,
)
from seml.attest._x509 import (
    Cert,
    Scheme,
    check_crl,
    check_issued_by,
    check_valid_at,
    der_integer,
    der_items,
    load_certs,
    load_crl,
    pem_certificates,
)
from seml.errors import AttestationError

__all__ = [
    "AMD_ARK_FINGERPRINTS",
    "REPORT_SIZE",
    "SnpReport",
    "SnpResult",
    "SnpVerifier",
    "Tcb",
    "amd_chain",
    "parse_report",
    "snp_collateral",
    "verify_report",
]

# SHA-256 of AMD's published ARK certificates (DER). Extend with a new product line's root.
AMD_ARK_FINGERPRINTS: dict[str, str] = {
    "Milan": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    "Genoa": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
}
KDS_CRL_URL = "https://kdsintf.amd.com/vcek/v1/{product}/crl"

REPORT_SIZE = 0x4A0
_SIGNED = 0x2A0
_POLICY_DEBUG = 1 << 19
_POLICY_RESERVED_ONE = 1 << 17
_ECDSA_P384_SHA384 = 1
_VCEK, _VLEK = 0, 1

_OID = "1.3.6.1.4.1.3704.1."
_OID_PRODUCT = _OID + "2"
_OID_TCB = {"bootloader": _OID + "3.1", "tee": _OID + "3.2", "snp": _OID + "3.3"}
_OID_UCODE = _OID + "3.8"
_OID_HWID = _OID + "4"
_OID_CSP = _OID + "5"


@dataclass(frozen=True, order=True)
class Tcb:
    """An SNP TCB_VERSION (Milan/Genoa layout): the security patch level of each component."""

    bootloader: int
    tee: int
    snp: int
    microcode: int

    @classmethod
    def from_raw(cls, raw: int) -> Tcb:
        b = raw.to_bytes(8, "little")
        return cls(bootloader=b[0], tee=b[1], snp=b[6], microcode=b[7])

    def __str__(self) -> str:
        return f"{self.bootloader}/{self.tee}/{self.snp}/{self.microcode}"

    def below(self, minimum: Tcb) -> list[str]:
        """The components lower than `minimum`'s (empty: this TCB meets it)."""
        return [
            f"{n} {getattr(self, n)} < {getattr(minimum, n)}"
            for n in ("bootloader", "tee", "snp", "microcode")
            if getattr(self, n) < getattr(minimum, n)
        ]


@dataclass(frozen=True)
class SnpReport:
    """The fields of an ATTESTATION_REPORT that a verifier or a policy reads."""

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: Tcb
    platform_info: int
    signer_info: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    reported_tcb: Tcb
    cpuid: tuple[int, int, int] | None  # family, model, stepping (v3+)
    chip_id: bytes
    committed_tcb: Tcb
    current_version: str
    launch_tcb: Tcb

    @property
    def debug(self) -> bool:
        return bool(self.policy & _POLICY_DEBUG)

    @property
    def signing_key(self) -> int:
        return (self.signer_info >> 2) & 0x7

    @property
    def chip_id_masked(self) -> bool:
        return not any(self.chip_id)

    @property
    def product(self) -> str | None:
        """The product line from CPUID (v3+ reports), or None when the report has no CPUID."""
        if self.cpuid is None:
            return None
        family, model, _ = self.cpuid
        if family == 0x19 and model <= 0x0F:
            return "Milan"
        if family == 0x19 and (0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF):
            return "Genoa"
        if family == 0x1A:
            return "Turin"
        return f"family {family:#x} model {model:#x}"


def _u32(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 4], "little")


def _u64(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 8], "little")


def _version(b: bytes, at: int) -> str:
    build, minor, major = b[at], b[at + 1], b[at + 2]
    return f"{major}.{minor}.{build}"


def parse_report(data: bytes) -> SnpReport:
    """Parse an ATTESTATION_REPORT (v2 or v3); refuse anything else by its length or version."""
    if len(data) != REPORT_SIZE:
        raise AttestationError(
            f"an SEV-SNP attestation report is {REPORT_SIZE} bytes, got {len(data)}"
        )
    version = _u32(data, 0x00)
    if version not in (2, 3):
        raise AttestationError(f"SEV-SNP report version {version} is not supported (2 or 3)")
    cpuid = (data[0x188], data[0x189], data[0x18A]) if version >= 3 else None
    return SnpReport(
        raw=bytes(data),
        version=version,
        guest_svn=_u32(data, 0x04),
        policy=_u64(data, 0x08),
        family_id=data[0x10:0x20],
        image_id=data[0x20:0x30],
        vmpl=_u32(data, 0x30),
        signature_algo=_u32(data, 0x34),
        current_tcb=Tcb.from_raw(_u64(data, 0x38)),
        platform_info=_u64(data, 0x40),
        signer_info=_u32(data, 0x48),
        report_data=data[0x50:0x90],
        measurement=data[0x90:0xC0],
        host_data=data[0xC0:0xE0],
        id_key_digest=data[0xE0:0x110],
        author_key_digest=data[0x110:0x140],
        report_id=data[0x140:0x160],
        reported_tcb=Tcb.from_raw(_u64(data, 0x180)),
        cpuid=cpuid,
        chip_id=data[0x1A0:0x1E0],
        committed_tcb=Tcb.from_raw(_u64(data, 0x1E0)),
        current_version=_version(data, 0x1E8),
        launch_tcb=Tcb.from_raw(_u64(data, 0x1F0)),
    )


@cache
def _packaged_chains() -> bytes:
    root = resources.files("seml.attest") / "roots"
    return b"".join((root / f"amd_{p}_ask_ark_asvk.pem").read_bytes() for p in ("milan", "genoa"))


def amd_chain() -> bytes:
    """AMD's ASK, ARK and ASVK for every product line SEML knows, as shipped in the package."""
    return _packaged_chains()


@dataclass(frozen=True)
class SnpResult:
    """A report whose signature chain, TCB and chip id have been verified."""

    report: SnpReport
    product: str
    key_kind: str  # VCEK | VLEK
    key: Cert
    revocation_checked: bool
    csp: str | None

    def verdict(self, tee: TeeType = TeeType.SNP) -> Verdict:
        r = self.report
        weaknesses = set()
        if r.debug:
            weaknesses.add(WEAKNESS_DEBUG)
        if not self.revocation_checked:
            weaknesses.add(WEAKNESS_REVOCATION_UNCHECKED)
        details = {
            "product": self.product,
            "report_version": str(r.version),
            "signing_key": self.key_kind,
            "policy": f"{r.policy:#x}",
            "debug": str(r.debug).lower(),
            "vmpl": str(r.vmpl),
            "guest_svn": str(r.guest_svn),
            "host_data": r.host_data.hex(),
            "family_id": r.family_id.hex(),
            "image_id": r.image_id.hex(),
            "id_key_digest": r.id_key_digest.hex(),
            "author_key_digest": r.author_key_digest.hex(),
            "report_id": r.report_id.hex(),
            "chip_id": r.chip_id.hex(),
            "reported_tcb": str(r.reported_tcb),
            "current_tcb": str(r.current_tcb),
            "committed_tcb": str(r.committed_tcb),
            "launch_tcb": str(r.launch_tcb),
            "firmware": r.current_version,
            "platform_info": f"{r.platform_info:#x}",
            "revocation": (
                "checked against AMD's CRL"
                if self.revocation_checked
                else "not checked: no CRL supplied (AMD's KDS serves it online)"
            ),
        }
        if self.csp is not None:
            details["csp"] = self.csp
        if not r.chip_id_masked:
            details["platform"] = "snp-chip:" + r.chip_id.hex()
        return Verdict(
            tee=tee,
            measurement=r.measurement.hex(),
            report_data=r.report_data,
            tcb_status=f"TCB {r.reported_tcb} (bl/tee/snp/ucode)",
            weaknesses=frozenset(weaknesses),
            details=details,
        )


def _ia5(value: bytes | None, what: str) -> str:
    if value is None:
        raise AttestationError(f"{what} is missing")
    items = list(der_items(value))
    raw = items[0][1] if items and items[0][0] == 0x16 else value
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise AttestationError(f"{what} is not text") from e


def _key_tcb(key: Cert, what: str) -> Tcb:
    values: dict[str, int] = {}
    for name, oid in (*_OID_TCB.items(), ("microcode", _OID_UCODE)):
        raw = key.extension(oid)
        if raw is None:
            raise AttestationError(f"{what} has no {name} TCB extension ({oid})")
        values[name] = der_integer(raw, f"{what} {name} TCB")
    return Tcb(**values)


def _hwid(key: Cert) -> bytes | None:
    raw = key.extension(_OID_HWID)
    if raw is None:
        return None
    if len(raw) == 64:
        return raw
    items = list(der_items(raw))  # some KDS versions wrap it in an OCTET STRING
    return items[0][1] if items and items[0][0] == 0x04 else raw


def _find(certs: list[Cert], subject: Any) -> Cert | None:
    return next((c for c in certs if c.cert.subject == subject), None)


def verify_report(
    report: bytes,
    *,
    certs: bytes,
    chain: bytes | None = None,
    crl: bytes | None = None,
    now: int,
    roots: Mapping[str, str] = AMD_ARK_FINGERPRINTS,
) -> SnpResult:
    """Verify an SNP report signed by the VCEK/VLEK first in `certs`.

    The ASK/ASVK and ARK come from `certs` after the first, else from `chain`, else from the
    package's copy of AMD's chains; the ARK must be the one pinned in `roots` for the product.
    """
    r = parse_report(report)
    given = load_certs(certs, "SNP endorsement certificates")
    key, extra = given[0], given[1:]
    pool = extra + load_certs(chain if chain is not None else amd_chain(), "AMD certificate chain")
    if r.signing_key not in (_VCEK, _VLEK):
        raise AttestationError(
            f"the SNP report is not signed by a VCEK or VLEK (SIGNING_KEY {r.signing_key})"
        )
    kind = "VCEK" if r.signing_key == _VCEK else "VLEK"
    if key.name != f"SEV-{kind}":
        raise AttestationError(
            f"the report is signed by a {kind}, but the certificate given is {key.name}"
        )
    product = _ia5(key.extension(_OID_PRODUCT), f"{kind} product name").split("-")[0]
    if r.product is not None and r.product != product:
        raise AttestationError(
            f"the report comes from a {r.product} CPU but the {kind} is for {product}"
        )
    pinned = roots.get(product)
    if pinned is None:
        raise AttestationError(f"no pinned AMD root for product {product}")

    issuer = _find(pool, key.cert.issuer)
    if issuer is None:
        names = ", ".join(c.name for c in pool) or "none"
        raise AttestationError(
            f"{kind} is issued by {key.issuer_name}, which is not among the certificates "
            f"given ({names})"
        )
    ark = _find(pool, issuer.cert.issuer)
    if ark is None or ark.cert.issuer != ark.cert.subject:
        raise AttestationError(f"no self-signed root found for {issuer.name}")
    if ark.fingerprint != pinned:
        raise AttestationError(
            f"root {ark.name} (sha256 {ark.fingerprint}) is not AMD's pinned ARK for {product}"
        )
    check_issued_by(ark, ark, Scheme.RSA_PSS_SHA384, "AMD root")
    check_issued_by(issuer, ark, Scheme.RSA_PSS_SHA384, "AMD intermediate")
    check_issued_by(key, issuer, Scheme.RSA_PSS_SHA384, kind)
    for cert, what in ((ark, "AMD root"), (issuer, "AMD intermediate"), (key, kind)):
        check_valid_at(cert, now, what)
    if crl is not None:
        # AMD's CRL is issued by the ARK. All VCEKs carry serial 0, so a CRL listing the
        # endorsement key's serial is honoured too (refusing more, never less).
        check_crl(
            load_crl(crl, "AMD CRL"),
            ark,
            Scheme.RSA_PSS_SHA384,
            now,
            [issuer, key],
            f"CRL of {ark.name}",
        )

    if r.signature_algo != _ECDSA_P384_SHA384:
        raise AttestationError(f"unknown SNP signature algorithm {r.signature_algo}")
    public = key.cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp384r1":
        raise AttestationError(f"{kind} does not hold a P-384 key")
    sig_r = int.from_bytes(report[0x2A0:0x2E8], "little")
    sig_s = int.from_bytes(report[0x2E8:0x330], "little")
    try:
        public.verify(
            encode_dss_signature(sig_r, sig_s), report[:_SIGNED], ec.ECDSA(hashes.SHA384())
        )
    except (InvalidSignature, ValueError):
        raise AttestationError(
            f"SNP report signature is invalid: not signed by this {kind} (altered report "
            "or another chip's key)"
        ) from None

    tcb = _key_tcb(key, kind)
    if tcb != r.reported_tcb:
        raise AttestationError(
            f"REPORTED_TCB {r.reported_tcb} differs from the TCB {tcb} the {kind} was issued "
            "for (bl/tee/snp/ucode)"
        )
    if kind == "VCEK" and not r.chip_id_masked:
        hwid = _hwid(key)
        if hwid != r.chip_id:
            raise AttestationError("CHIP_ID differs from the VCEK's hardware id (another chip)")
    csp = _ia5(key.extension(_OID_CSP), "VLEK csp id") if kind == "VLEK" else None
    return SnpResult(
        report=r,
        product=product,
        key_kind=kind,
        key=key,
        revocation_checked=crl is not None,
        csp=csp,
    )


def snp_collateral(certs: bytes, crl: bytes | None = None, **extra: Any) -> str:
    """The collateral JSON an `snp` envelope carries: the VCEK/VLEK (and optionally its chain)
    as PEM, and optionally AMD's CRL as PEM."""
    from cryptography.hazmat.primitives.serialization import Encoding

    document: dict[str, Any] = {"certs": pem_certificates(certs).decode("ascii"), **extra}
    if crl is not None:
        document["crl"] = load_crl(crl, "CRL").public_bytes(Encoding.PEM).decode("ascii")
    return json.dumps(document, sort_keys=True)


def _text(document: Mapping[str, Any], key: str, tee: str) -> bytes | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AttestationError(f"{tee} collateral {key} must be text")
    return value.encode("utf-8")


class SnpVerifier:
    """Verifies `snp` envelopes: the report as `quote`, `snp_collateral` as collateral.

    `chain` replaces the package's AMD chains and `roots` the pinned ARKs (tests use their own);
    `crl` is a CRL this verifier holds, used when an envelope brings none.
    """

    def __init__(
        self,
        *,
        roots: Mapping[str, str] = AMD_ARK_FINGERPRINTS,
        chain: bytes | None = None,
        crl: bytes | None = None,
    ) -> None:
        self._roots = dict(roots)
        self._chain = chain
        self._crl = crl

    def result(self, report: bytes, document: Mapping[str, Any], tee: str, now: int) -> SnpResult:
        certs = _text(document, "certs", tee)
        if certs is None:
            raise AttestationError(f"{tee} collateral lacks certs (the VCEK or VLEK)")
        crl = _text(document, "crl", tee) or self._crl
        return verify_report(
            report, certs=certs, chain=self._chain, crl=crl, now=now, roots=self._roots
        )

    def verify(self, evidence: Evidence, *, now: int) -> Verdict:
        if evidence.tee is not TeeType.SNP:
            raise AttestationError(f"not SEV-SNP evidence: {evidence.tee.value}")
        document = collateral_fields(evidence, "certs")
        return self.result(evidence.quote, document, evidence.tee.value, now).verdict()
