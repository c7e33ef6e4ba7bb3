"""NVIDIA GPU confidential-computing evidence (Hopper, Blackwell): SPDM measurements and RIMs.

In CC mode the GPU answers an SPDM 1.1 GET_MEASUREMENTS request (with our 32-byte nonce) with
its measurement blocks, opaque data (driver and VBIOS versions, FWID, ...) and an ECDSA P-384
signature over SHA-384(request || response) by the key of the first certificate of its device
chain (``GSP FMC LF``), which chains to NVIDIA's ``Device Identity CA``. Reference values are
RIMs: ISO SWID tags NVIDIA signs with XML-DSig (ECDSA P-384) under its ``CoRIM signing Root
CA``, one for the driver and one for the VBIOS, listing the expected value of each measurement.

Offline here: the device chain to the pinned root, the SPDM signature, our nonce, the FWID
against the leaf certificate, the driver and VBIOS versions; each RIM given: its chain to the
pinned RIM root, its XML signature and its measurements against the report's, per index.
What needs NVIDIA's online services is a parameter (`NvidiaServices`), never skipped silently:
OCSP for the device and RIM chains (without it: ``revocation-unchecked``) and fetching the RIMs
for the versions a GPU reports (without them: ``measurements-unchecked``).

XML-DSig needs exclusive/1.1 canonicalisation, reference digests and the enveloped-signature
transform done exactly right; a hand-written version is where signature-wrapping bugs live.
`signxml` (on lxml) does it, is maintained, and hands back the element it verified: only that
element is read, so nothing outside the signature can smuggle in reference values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from seml.attest._evidence import (
    WEAKNESS_MEASUREMENTS_UNCHECKED,
    WEAKNESS_REVOCATION_UNCHECKED,
    Evidence,
    TeeType,
    Verdict,
    collateral_fields,
)
from seml.attest._x509 import (
    Cert,
    Scheme,
    check_issued_by,
    check_valid_at,
    der_items,
    load_certs,
    pem_certificates,
)
from seml.errors import AttestationError

__all__ = [
    "NVIDIA_DEVICE_ROOT_FINGERPRINT",
    "NVIDIA_RIM_ROOT_FINGERPRINT",
    "GpuReport",
    "NvidiaGpuVerifier",
    "NvidiaServices",
    "Rim",
    "compare_measurements",
    "gpu_collateral",
    "parse_gpu_report",
    "verify_gpu_report",
    "verify_rim",
]

NVIDIA_DEVICE_ROOT_FINGERPRINT = "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48"
NVIDIA_RIM_ROOT_FINGERPRINT = "12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1"
OCSP_URL = "https://ocsp.ndis.nvidia.com"
RIM_SERVICE_URL = "https://rim.attestation.nvidia.com"

_REQUEST_LEN = 37
_NONCE_LEN = 32
_SIGNATURE_LEN = 96
_SPDM_VERSION = 0x11
_GET_MEASUREMENTS, _MEASUREMENTS = 0xE0, 0x60
_DMTF = 0x01
MAX_RIM_BYTES = 1024 * 1024

# Opaque data field types NVIDIA documents for its SPDM response (others are kept as hex).
_OPAQUE = {
    3: "driver_version",
    6: "vbios_version",
    14: "board_id",
    15: "chip_sku",
    16: "chip_sku_mod",
    17: "project",
    18: "project_sku",
    19: "project_sku_mod",
    20: "fwid",
}
_SHA384_OID = bytes.fromhex("608648016503040202")
_TCB_INFO_OIDS = ("2.23.133.5.4.1", "2.23.133.5.4.1.1")  # DICE TcbInfo (Hopper, Blackwell)
_SWID = "{http://standards.iso.org/iso/19770/-2/2015/schema.xsd}"
_HASH_NS = "{http://www.w3.org/2001/04/xmlenc#sha384}"
_VBIOS_VERSION = re.compile(r"[0-9a-f]{2}(\.[0-9a-f]{2}){4}")


@dataclass(frozen=True)
class GpuReport:
    """A parsed SPDM GET_MEASUREMENTS exchange."""

    raw: bytes
    request_nonce: bytes
    responder_nonce: bytes
    measurements: dict[int, bytes]  # SPDM block index (1-based) -> value
    opaque: dict[int, bytes]
    signature: bytes

    def text(self, kind: int) -> str | None:
        value = self.opaque.get(kind)
        return value.rstrip(b"\x00").decode("ascii", "replace") if value is not None else None

    @property
    def driver_version(self) -> str:
        return self.text(3) or ""

    @property
    def vbios_version(self) -> str:
        raw = self.opaque.get(6, b"")
        if len(raw) < 2:
            return ""
        half = len(raw) // 2
        return ".".join(f"{b:02x}" for b in reversed(raw[:half])) + f".{raw[half]:02x}"

    @property
    def fwid(self) -> bytes | None:
        return self.opaque.get(20)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise AttestationError(f"GPU evidence is truncated in its {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def le(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "little")


def parse_gpu_report(data: bytes) -> GpuReport:
    """Parse the SPDM request (37 bytes) and the signed MEASUREMENTS response after it."""
    c = _Cursor(data)
    request = c.take(_REQUEST_LEN, "request")
    if request[0] != _SPDM_VERSION or request[1] != _GET_MEASUREMENTS:
        raise AttestationError("GPU evidence does not start with an SPDM 1.1 GET_MEASUREMENTS")
    if request[2] & 0x01 == 0:
        raise AttestationError("the SPDM request did not ask for a signature")
    head = c.take(4, "response header")
    if head[0] != _SPDM_VERSION or head[1] != _MEASUREMENTS:
        raise AttestationError("GPU evidence holds no SPDM 1.1 MEASUREMENTS response")
    count = c.le(1, "block count")
    record = _Cursor(c.take(c.le(3, "record length"), "measurement record"))
    measurements: dict[int, bytes] = {}
    for _ in range(count):
        index = record.le(1, "measurement block")
        if record.le(1, "measurement block") != _DMTF:
            raise AttestationError(f"measurement block {index} is not in the DMTF format")
        block = _Cursor(record.take(record.le(2, "measurement block"), "measurement block"))
        block.take(1, "measurement value type")
        value = block.take(block.le(2, "measurement value"), "measurement value")
        if index in measurements:
            raise AttestationError(f"measurement block {index} appears twice")
        measurements[index] = value
    if record.pos != len(record.data):
        raise AttestationError("the measurement record has trailing bytes")
    responder_nonce = c.take(_NONCE_LEN, "responder nonce")
    opaque_bytes = _Cursor(c.take(c.le(2, "opaque length"), "opaque data"))
    opaque: dict[int, bytes] = {}
    while opaque_bytes.pos < len(opaque_bytes.data):
        kind = opaque_bytes.le(2, "opaque field")
        value = opaque_bytes.take(opaque_bytes.le(2, "opaque field"), "opaque field")
        if kind in opaque:
            raise AttestationError(f"opaque field {kind} appears twice")
        opaque[kind] = value
    signature = c.take(_SIGNATURE_LEN, "signature")
    if c.pos != len(data):
        raise AttestationError("GPU evidence has trailing bytes after the signature")
    if 3 not in opaque or 6 not in opaque:
        raise AttestationError("GPU evidence names no driver or VBIOS version")
    return GpuReport(
        raw=bytes(data),
        request_nonce=request[4:36],
        responder_nonce=responder_nonce,
        measurements=measurements,
        opaque=opaque,
        signature=signature,
    )


@cache
def _packaged(name: str) -> bytes:
    return (resources.files("seml.attest") / "roots" / name).read_bytes()


def _chain_to_root(
    certs: list[Cert], root_pem: bytes, root_fingerprint: str, now: int, what: str
) -> list[Cert]:
    """Leaf first; each certificate issued by the next; the last the pinned root (taken from
    `root_pem` when the chain stops below it). Returns the full path, leaf to root."""
    root = load_certs(root_pem, f"{what} root")[0]
    path = list(certs)
    if path[-1].cert.subject != path[-1].cert.issuer:
        path.append(root)
    top = path[-1]
    if top.fingerprint != root_fingerprint:
        raise AttestationError(
            f"{what} chain ends in {top.name} (sha256 {top.fingerprint}), not the pinned root"
        )
    for cert, issuer in itertools.pairwise(path):
        check_issued_by(cert, issuer, Scheme.ECDSA_SHA384, what)
    check_issued_by(top, top, Scheme.ECDSA_SHA384, f"{what} root")
    for cert in path:
        check_valid_at(cert, now, what)
    return path


def _tcb_fwids(leaf: Cert) -> list[bytes] | None:
    for oid in _TCB_INFO_OIDS:
        raw = leaf.extension(oid)
        if raw is None:
            continue
        items = list(der_items(raw))
        return [
            items[i + 1][1]
            for i, (tag, value) in enumerate(items[:-1])
            if tag == 0x06 and value == _SHA384_OID and items[i + 1][0] == 0x04
        ]
    return None


def verify_gpu_report(
    report: bytes,
    *,
    certs: bytes,
    now: int,
    nonce: bytes | None = None,
    root_fingerprint: str = NVIDIA_DEVICE_ROOT_FINGERPRINT,
    root: bytes | None = None,
) -> tuple[GpuReport, list[Cert]]:
    """Verify SPDM evidence against its device chain (leaf first) and, if given, our nonce."""
    r = parse_gpu_report(report)
    chain = _chain_to_root(
        load_certs(certs, "GPU device certificates"),
        root if root is not None else _packaged("nvidia_device_identity_ca.pem"),
        root_fingerprint,
        now,
        "GPU device",
    )
    leaf = chain[0]
    key = leaf.cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise AttestationError(f"GPU leaf {leaf.name} does not hold a P-384 key")
    half = _SIGNATURE_LEN // 2
    signature = encode_dss_signature(
        int.from_bytes(r.signature[:half], "big"), int.from_bytes(r.signature[half:], "big")
    )
    try:
        key.verify(signature, report[:-_SIGNATURE_LEN], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError(
            f"GPU SPDM signature is invalid: not signed by {leaf.name} of this chain (altered "
            "report or another GPU's certificate)"
        ) from None
    if nonce is not None and not hmac.compare_digest(r.request_nonce, nonce):
        raise AttestationError(
            f"GPU evidence answers nonce {r.request_nonce.hex()}, not ours ({nonce.hex()}): "
            "a replayed or foreign report"
        )
    fwids = _tcb_fwids(leaf)
    if fwids is not None and r.fwid is not None and r.fwid not in fwids:
        raise AttestationError(
            f"the GPU's FWID {r.fwid.hex()} is not the firmware its leaf certificate names"
        )
    return r, chain


@dataclass(frozen=True)
class Rim:
    """A verified reference integrity manifest: version and golden values per index."""

    kind: str  # driver | vbios
    version: str
    product: str
    signer: str
    # RIM index (0-based, as NVIDIA numbers them; SPDM block index - 1) -> allowed values
    golden: dict[int, tuple[bytes, ...]] = field(default_factory=dict)
    chain: tuple[Cert, ...] = ()


def verify_rim(
    xml: bytes,
    *,
    now: int,
    root_fingerprint: str = NVIDIA_RIM_ROOT_FINGERPRINT,
    root: bytes | None = None,
) -> Rim:
    """Verify a RIM's chain to the pinned RIM root and its XML signature; read what it signs."""
    from lxml import etree
    from signxml.algorithms import DigestAlgorithm, SignatureMethod
    from signxml.exceptions import SignXMLException
    from signxml.verifier import SignatureConfiguration, XMLVerifier

    if len(xml) > MAX_RIM_BYTES:
        raise AttestationError(f"a RIM is at most {MAX_RIM_BYTES} bytes, got {len(xml)}")
    certs = _rim_certs(xml)
    chain = _chain_to_root(
        certs,
        root if root is not None else _packaged("nvidia_rim_root.pem"),
        root_fingerprint,
        now,
        "RIM signing",
    )
    config = SignatureConfiguration(
        signature_methods=frozenset({SignatureMethod.ECDSA_SHA384}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA384}),
        verification_time=dt.datetime.fromtimestamp(now, dt.UTC),
        expect_references=1,
    )
    try:
        result = XMLVerifier().verify(
            xml, x509_cert=chain[0].cert.public_bytes(Encoding.PEM).decode(), expect_config=config
        )
    except (SignXMLException, etree.LxmlError, ValueError) as e:
        raise AttestationError(f"RIM signature is invalid: {e}") from e
    if isinstance(result, list):  # only with expect_references > 1
        raise AttestationError("RIM has more than one signed reference")
    signed = result.signed_xml
    if signed is None or signed.tag != f"{_SWID}SoftwareIdentity":
        raise AttestationError("the RIM's signature does not cover a SWID SoftwareIdentity")
    meta = signed.find(f"{_SWID}Meta")
    version = (meta.get("colloquialVersion") if meta is not None else None) or ""
    golden: dict[int, tuple[bytes, ...]] = {}
    for resource in signed.iter(f"{_SWID}Resource"):
        if resource.get("type") != "Measurement" or resource.get("active") != "True":
            continue
        try:
            index = int(resource.get("index", ""))
            count = int(resource.get("alternatives", "0"))
            values = tuple(
                bytes.fromhex(resource.get(f"{_HASH_NS}Hash{i}", "")) for i in range(count)
            )
        except ValueError as e:
            raise AttestationError(f"RIM measurement entry is malformed: {e}") from e
        if index in golden or not values:
            raise AttestationError(f"RIM measurement {index} is repeated or has no value")
        golden[index] = values
    kind = "vbios" if _VBIOS_VERSION.fullmatch(version.lower()) else "driver"
    return Rim(
        kind=kind,
        version=version,
        product=(meta.get("product") if meta is not None else None) or "",
        signer=chain[0].name,
        golden=golden,
        chain=tuple(chain),
    )


def _rim_certs(xml: bytes) -> list[Cert]:
    import base64
    import binascii

    from lxml import etree

    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        tree = etree.fromstring(xml, parser=parser)
    except etree.LxmlError as e:
        raise AttestationError(f"RIM is not XML: {e}") from e
    found = tree.findall(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate")
    if not found:
        raise AttestationError("RIM carries no signing certificate")
    certs: list[Cert] = []
    for element in found:
        try:
            der = base64.b64decode("".join((element.text or "").split()), validate=True)
        except binascii.Error as e:
            raise AttestationError("RIM certificate is not base64") from e
        certs.extend(load_certs(der, "RIM certificate"))
    return certs


@dataclass(frozen=True)
class Comparison:
    """The GPU's measurements against the RIMs given."""

    checked: tuple[int, ...]  # RIM indexes compared
    mismatches: tuple[int, ...]  # RIM indexes whose value is none of the allowed ones
    problems: tuple[str, ...]  # version or coverage problems, in words

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.problems


def compare_measurements(report: GpuReport, rims: Sequence[Rim]) -> Comparison:
    """Compare every active RIM measurement with the report's block at that index (+1)."""
    problems: list[str] = []
    actual = {"driver": report.driver_version, "vbios": report.vbios_version}
    for rim in rims:
        if rim.version.lower() != actual[rim.kind].lower():
            problems.append(
                f"the {rim.kind} RIM is for version {rim.version}, the GPU runs {actual[rim.kind]}"
            )
    kinds = [r.kind for r in rims]
    for kind in ("driver", "vbios"):
        if kinds.count(kind) != 1:
            problems.append(f"expected one {kind} RIM, got {kinds.count(kind)}")
    golden: dict[int, tuple[bytes, ...]] = {}
    for rim in rims:
        for index, values in rim.golden.items():
            if index in golden:
                problems.append(f"RIM index {index} is active in more than one RIM")
            golden[index] = values
    mismatches = tuple(i for i in sorted(golden) if report.measurements.get(i + 1) not in golden[i])
    return Comparison(
        checked=tuple(sorted(golden)), mismatches=mismatches, problems=tuple(problems)
    )


class NvidiaServices(Protocol):
    """NVIDIA's online services: OCSP for certificate chains, and the RIM service.

    No implementation talks to NVIDIA from here (this machine has no route to it); the
    verifier takes one as a parameter so that the choice is explicit.
    """

    def check_revocation(self, chain: Sequence[Cert], *, now: int) -> None:
        """Raise AttestationError if any certificate of `chain` is revoked."""
        ...

    def fetch_rims(self, report: GpuReport) -> list[bytes]:
        """The driver and VBIOS RIMs for the versions `report` names."""
        ...


def gpu_collateral(certs: bytes, rims: Sequence[bytes] = ()) -> str:
    """The collateral JSON an `nvidia-gpu` envelope carries: the device chain as PEM, and
    optionally RIMs (their authenticity is checked, wherever they come from)."""
    import json

    document: dict[str, Any] = {"certs": pem_certificates(certs).decode("ascii")}
    if rims:
        document["rims"] = [r.decode("utf-8") for r in rims]
    return json.dumps(document)


class NvidiaGpuVerifier:
    """Verifies `nvidia-gpu` envelopes (SPDM evidence as `quote`, `gpu_collateral`).

    `nonce` is the request nonce expected (composite evidence derives it; see
    `gpu_nonce_for`). `rims` are RIMs this verifier holds; an envelope may bring more. Without
    `services` nothing is asked of NVIDIA: revocation stays unchecked, and measurements are
    compared only with the RIMs at hand. Simulated GPU evidence is recognised and labelled.
    """

    def __init__(
        self,
        *,
        nonce: bytes | None = None,
        rims: Sequence[bytes] = (),
        services: NvidiaServices | None = None,
        device_root: tuple[bytes, str] | None = None,
        rim_root: tuple[bytes, str] | None = None,
    ) -> None:
        self._nonce = nonce
        self._rims = list(rims)
        self._services = services
        self._device_root = device_root
        self._rim_root = rim_root

    def verify(self, evidence: Evidence, *, now: int) -> Verdict:
        from seml.attest._simulation import SIMULATED_GPU_MAGIC, verify_simulated_gpu

        if evidence.tee is not TeeType.NVIDIA_GPU:
            raise AttestationError(f"not NVIDIA GPU evidence: {evidence.tee.value}")
        if evidence.quote.startswith(SIMULATED_GPU_MAGIC):
            return verify_simulated_gpu(evidence.quote, nonce=self._nonce)
        document = collateral_fields(evidence, "certs")
        certs = document["certs"]
        if not isinstance(certs, str):
            raise AttestationError("nvidia-gpu collateral certs must be PEM text")
        root, root_fp = self._device_root or (None, NVIDIA_DEVICE_ROOT_FINGERPRINT)
        report, chain = verify_gpu_report(
            evidence.quote,
            certs=certs.encode(),
            now=now,
            nonce=self._nonce,
            root=root,
            root_fingerprint=root_fp,
        )
        rim_texts = [*self._rims, *_envelope_rims(document)]
        if self._services is not None:
            self._services.check_revocation(chain, now=now)
            if not rim_texts:
                rim_texts = self._services.fetch_rims(report)
        rim_root, rim_fp = self._rim_root or (None, NVIDIA_RIM_ROOT_FINGERPRINT)
        rims = [verify_rim(x, now=now, root=rim_root, root_fingerprint=rim_fp) for x in rim_texts]
        if self._services is not None:
            for rim in rims:
                self._services.check_revocation(rim.chain, now=now)
        return _verdict(report, chain, rims, online=self._services is not None)


def _envelope_rims(document: Mapping[str, Any]) -> list[bytes]:
    rims = document.get("rims", [])
    if not isinstance(rims, list) or not all(isinstance(r, str) for r in rims):
        raise AttestationError("nvidia-gpu collateral rims must be a list of XML texts")
    return [r.encode("utf-8") for r in rims]


def _verdict(report: GpuReport, chain: list[Cert], rims: list[Rim], *, online: bool) -> Verdict:
    weaknesses: set[str] = set()
    details = {
        "driver_version": report.driver_version,
        "vbios_version": report.vbios_version,
        "device": chain[0].name,
        "responder_nonce": report.responder_nonce.hex(),
        "measurement_blocks": str(len(report.measurements)),
        "revocation": (
            "checked with NVIDIA's OCSP service"
            if online
            else "not checked: needs NVIDIA's OCSP service (" + OCSP_URL + ")"
        ),
    }
    if report.fwid is not None:
        details["fwid"] = report.fwid.hex()
    for kind, name in _OPAQUE.items():
        value = report.opaque.get(kind)
        if value is None or kind in (3, 6, 20):
            continue
        text = value.rstrip(b"\x00")
        printable = text.isascii() and text.decode("ascii").isprintable()
        details[name] = text.decode("ascii") if printable else value.hex()
    if not online:
        weaknesses.add(WEAKNESS_REVOCATION_UNCHECKED)
    if rims:
        comparison = compare_measurements(report, rims)
        if not comparison.ok:
            reasons = list(comparison.problems)
            if comparison.mismatches:
                reasons.append(
                    "measurements differ from the RIMs at indexes "
                    + ", ".join(map(str, comparison.mismatches))
                )
            raise AttestationError("GPU measurements refused: " + "; ".join(reasons))
        details["measurements"] = (
            f"match the driver and VBIOS RIMs ({len(comparison.checked)} compared)"
        )
    else:
        weaknesses.add(WEAKNESS_MEASUREMENTS_UNCHECKED)
        details["measurements"] = (
            "not compared: no RIMs given (NVIDIA's RIM service serves them: "
            + RIM_SERVICE_URL
            + ")"
        )
    record = hashlib.sha384()
    for index in sorted(report.measurements):
        record.update(index.to_bytes(1, "big") + report.measurements[index])
    return Verdict(
        tee=TeeType.NVIDIA_GPU,
        measurement=record.hexdigest(),
        report_data=report.request_nonce,
        tcb_status=f"driver {report.driver_version}, VBIOS {report.vbios_version}",
        weaknesses=frozenset(weaknesses),
        details=details,
    )
