"""The evidence envelope, the verdict a verifier returns, and the rules that accept or refuse it.

Pure: bytes in, typed results out, no I/O. A workload wraps whatever its TEE produced (a DCAP
quote, an SEV-SNP report, an Azure HCL report with its vTPM quote, a GPU's SPDM measurements,
or a software-made simulation quote) in an `Evidence` envelope; a composite envelope holds a
CPU TEE's evidence and GPU evidence bound to it. A `Verifier` turns an envelope into a
`Verdict` or raises; `check_weaknesses` and `expect_report_data` apply a session's rules to it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from seml.errors import AttestationError, UsageError

__all__ = [
    "MAX_COLLATERAL_CHARS",
    "MAX_QUOTE_BYTES",
    "TCB_WEAKNESSES",
    "Evidence",
    "EvidenceProvider",
    "TeeType",
    "Verdict",
    "Verifier",
    "check_weaknesses",
    "collateral_fields",
    "expect_report_data",
    "gpu_nonce_for",
    "parse_evidence",
    "report_data_for",
]

# DCAP quotes are a few KiB (the PCK chain dominates); collateral JSON is tens of KiB (GPU RIMs
# are ~20 KiB each). The limits only keep a hostile envelope from costing memory; they are far
# above anything real.
MAX_QUOTE_BYTES = 64 * 1024
MAX_COLLATERAL_CHARS = 1024 * 1024
MAX_GPUS = 16

_REPORT_DATA_DOMAIN = b"seml/attest/report-data/v1\x00"
_GPU_NONCE_DOMAIN = b"seml/attest/gpu-nonce/v1\x00"
_WORKLOAD = re.compile(r"[0-9a-f]{32,128}")

WEAKNESS_SIMULATION = "simulation"
WEAKNESS_DEBUG = "debug"
WEAKNESS_SW_HARDENING = "sw-hardening-needed"
WEAKNESS_CONFIGURATION = "configuration-needed"
WEAKNESS_OUT_OF_DATE = "out-of-date"
WEAKNESS_REVOKED = "revoked"
# Checks that need the vendor's online services and were not made: revocation (AMD's CRL,
# NVIDIA's OCSP) and, for GPUs, the comparison with reference measurements (NVIDIA's RIMs).
WEAKNESS_REVOCATION_UNCHECKED = "revocation-unchecked"
WEAKNESS_MEASUREMENTS_UNCHECKED = "measurements-unchecked"

# Weaknesses that come from the platform's TCB status; only these can be accepted by ignoring
# every advisory the evidence names (the advisories *are* the reason for the status).
TCB_WEAKNESSES = frozenset({WEAKNESS_SW_HARDENING, WEAKNESS_CONFIGURATION, WEAKNESS_OUT_OF_DATE})


class TeeType(StrEnum):
    """Which kind of evidence an envelope carries."""

    SIMULATION = "simulation"
    SGX_DCAP = "sgx-dcap"
    TDX_DCAP = "tdx-dcap"
    SNP = "snp"  # AMD SEV-SNP attestation report
    AZURE_SNP = "azure-snp"  # Azure confidential VM: HCL report (SNP) + vTPM quote
    NVIDIA_GPU = "nvidia-gpu"  # NVIDIA GPU SPDM measurements
    COMPOSITE = "composite"  # a CPU TEE's evidence plus GPU evidence bound to it


# CPU TEEs whose evidence measures a whole confidential VM (firmware, kernel, image), not the
# workload: the runtime inside measures the workload and binds it into the report data.
CVM_TEES = frozenset({TeeType.SNP, TeeType.AZURE_SNP, TeeType.TDX_DCAP})
CPU_TEES = frozenset(
    {TeeType.SIMULATION, TeeType.SGX_DCAP, TeeType.TDX_DCAP, TeeType.SNP, TeeType.AZURE_SNP}
)


@dataclass(frozen=True, repr=False)
class Evidence:
    """The envelope a workload sends: the TEE type, the raw quote and optional collateral JSON.

    In JSON the quote is base64 (standard alphabet, padded). From Python, pass raw bytes.
    `workload` is the workload measurement the runtime inside a confidential VM computed and
    bound into the report data (see `report_data_for`). A `composite` envelope has no quote of
    its own: `parts` holds the CPU TEE's evidence first, then one or more GPUs' evidence.

    A plain dataclass, checked when built (ValueError): a workload's runtime makes one at every
    start and loads no schema library for it. `parse_evidence` reads one from JSON (the
    service's side, through the pydantic model in `seml.attest._evidence_wire`).
    """

    tee: TeeType
    quote: bytes = b""
    collateral: str | None = None
    workload: str | None = None
    parts: tuple[Evidence, ...] = ()

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "tee", TeeType(self.tee))
        except ValueError:
            raise ValueError(f"tee must be one of {', '.join(t.value for t in TeeType)}") from None
        if not isinstance(self.quote, bytes):
            raise ValueError("quote must be bytes")
        if len(self.quote) > MAX_QUOTE_BYTES:
            raise ValueError(f"quote must be at most {MAX_QUOTE_BYTES} bytes")
        if self.collateral is not None and (
            not isinstance(self.collateral, str) or len(self.collateral) > MAX_COLLATERAL_CHARS
        ):
            raise ValueError(f"collateral must be text of at most {MAX_COLLATERAL_CHARS} chars")
        if self.workload is not None and (
            not isinstance(self.workload, str) or not _WORKLOAD.fullmatch(self.workload)
        ):
            raise ValueError("workload must be 32 to 128 lowercase hex digits")
        if not isinstance(self.parts, tuple | list) or not all(
            isinstance(p, Evidence) for p in self.parts
        ):
            raise ValueError("parts must be evidence envelopes")
        object.__setattr__(self, "parts", tuple(self.parts))
        if len(self.parts) > 1 + MAX_GPUS:
            raise ValueError(f"composite evidence has at most {1 + MAX_GPUS} parts")
        check_shape(self)

    def replace(self, **changes: Any) -> Evidence:
        """A copy with `changes` applied (checked like any other)."""
        return dataclasses.replace(self, **changes)

    def to_json_dict(self) -> dict[str, Any]:
        """The envelope as JSON data: the quote in base64; `workload` and `parts` only when
        set, and a composite envelope without quote or collateral (envelopes of the kinds
        that existed before stay byte-for-byte what they were)."""
        out: dict[str, Any] = {"tee": self.tee.value}
        if self.tee is not TeeType.COMPOSITE:
            out["quote"] = base64.b64encode(self.quote).decode("ascii")
            out["collateral"] = self.collateral
        if self.workload is not None:
            out["workload"] = self.workload
        if self.parts:
            out["parts"] = [p.to_json_dict() for p in self.parts]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), ensure_ascii=False, separators=(",", ":"))

    def __repr__(self) -> str:
        if self.parts:
            return f"Evidence(tee={self.tee.value!r}, parts={list(self.parts)!r})"
        return f"Evidence(tee={self.tee.value!r}, quote=<{len(self.quote)} bytes>)"

    __str__ = __repr__


def check_shape(evidence: Evidence) -> None:
    """What an envelope of its kind must hold (ValueError otherwise): a quote and no parts; or,
    composite, a CPU TEE's part then GPU parts, and the workload on the envelope only."""
    if evidence.tee is not TeeType.COMPOSITE:
        if not evidence.quote:
            raise ValueError("quote must not be empty")
        if evidence.parts:
            raise ValueError("only composite evidence has parts")
        return
    if evidence.quote or evidence.collateral is not None:
        raise ValueError("composite evidence has parts, not a quote or collateral")
    if len(evidence.parts) < 2:
        raise ValueError("composite evidence needs a CPU part and at least one GPU part")
    cpu, *gpus = evidence.parts
    if cpu.tee not in CPU_TEES:
        raise ValueError(f"the first part of composite evidence is {cpu.tee.value}, not a CPU TEE")
    if any(g.tee is not TeeType.NVIDIA_GPU for g in gpus):
        raise ValueError("every part after the first of composite evidence must be nvidia-gpu")
    if any(p.workload is not None for p in evidence.parts):
        raise ValueError("the workload is claimed on the composite envelope, not its parts")


def parse_evidence(data: bytes | str) -> Evidence:
    """Parse an envelope from JSON, turning any malformation into one `AttestationError`."""
    from seml.attest._evidence_wire import parse_wire

    return parse_wire(data)


def report_data_for(nonce: bytes, public_key: bytes, workload: str | None = None) -> bytes:
    """The 64 bytes of report data that bind the service's nonce to the workload's X25519 key.

    Domain-separated and length-prefixed SHA-512, so no other use of the TEE's report data can
    collide with it and no (nonce, key) split of the same bytes gives the same value. In a
    confidential VM, `workload` (the measurement `seml run` computed inside the VM) is bound
    too, so the hardware-signed report vouches for it; without it the value is as before.
    """
    if not 1 <= len(nonce) <= 1024:
        raise UsageError(f"nonce must be 1 to 1024 bytes, got {len(nonce)}")
    if len(public_key) != 32:
        raise UsageError(f"public key must be a 32-byte X25519 key, got {len(public_key)} bytes")
    parts = [nonce, public_key]
    if workload is not None:
        if not _WORKLOAD.fullmatch(workload):
            raise UsageError("a workload measurement is 32 to 128 lowercase hex digits")
        parts.append(b"workload\x00" + bytes.fromhex(workload))
    h = hashlib.sha512(_REPORT_DATA_DOMAIN)
    for part in parts:
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


def gpu_nonce_for(report_data: bytes) -> bytes:
    """The 32-byte nonce a GPU's SPDM request carries in composite evidence: derived from the
    CPU TEE's report data, so the GPU's measurements belong to this attestation and no other."""
    if len(report_data) != 64:
        raise UsageError(f"report data must be 64 bytes, got {len(report_data)}")
    return hashlib.sha256(_GPU_NONCE_DOMAIN + report_data).digest()


def collateral_fields(evidence: Evidence, *required: str) -> dict[str, Any]:
    """The envelope's collateral as a JSON object with the `required` keys present."""
    tee = evidence.tee.value
    if evidence.collateral is None:
        raise AttestationError(
            f"{tee} evidence carries no collateral (needs {', '.join(required)})"
        )
    try:
        document = json.loads(evidence.collateral)
    except ValueError as e:
        raise AttestationError(f"{tee} collateral is not JSON") from e
    if not isinstance(document, dict):
        raise AttestationError(f"{tee} collateral must be a JSON object")
    missing = [k for k in required if document.get(k) is None]
    if missing:
        raise AttestationError(f"{tee} collateral lacks {', '.join(missing)}")
    return document


@dataclass(frozen=True)
class Verdict:
    """What a verifier established about one piece of evidence.

    `measurement` is lowercase hex: MRENCLAVE for SGX, MRTD for TDX, the simulated digest for
    simulation. `weaknesses` is what a session must tolerate for the evidence to be accepted.
    """

    tee: TeeType
    measurement: str
    report_data: bytes
    tcb_status: str
    weaknesses: frozenset[str]
    advisories: tuple[str, ...] = ()
    details: dict[str, str] = field(default_factory=dict)
    parts: tuple[Verdict, ...] = ()  # composite: the CPU TEE's verdict, then each GPU's

    @property
    def simulated(self) -> bool:
        return WEAKNESS_SIMULATION in self.weaknesses

    @property
    def cpu(self) -> Verdict:
        """The CPU TEE's verdict (this one, unless composite)."""
        return self.parts[0] if self.parts else self

    @property
    def gpus(self) -> tuple[Verdict, ...]:
        return self.parts[1:]

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tee": self.tee.value,
            "simulated": self.simulated,
            "measurement": self.measurement,
            "tcb_status": self.tcb_status,
            "advisories": list(self.advisories),
            "weaknesses": sorted(self.weaknesses),
            "report_data": self.report_data.hex(),
            "details": dict(sorted(self.details.items())),
        }
        if self.parts:
            out["parts"] = [p.to_json_dict() for p in self.parts]
        return out


class Verifier(Protocol):
    """Turns evidence into a verdict, or raises `AttestationError` with the reason."""

    def verify(self, evidence: Evidence, *, now: int) -> Verdict: ...


class EvidenceProvider(Protocol):
    """Produces evidence whose report data is exactly the 64 bytes given."""

    def evidence(self, report_data: bytes) -> Evidence: ...


def check_weaknesses(
    verdict: Verdict, *, tolerate: Collection[str], ignore_advisories: Collection[str]
) -> None:
    """Accept the verdict's weaknesses under a session's rules, or raise naming what is not.

    Every weakness must be tolerated, except that TCB-status weaknesses are also accepted when the
    evidence names advisories and every one of them is ignored. Simulation and debug are never
    covered by advisories; a revoked platform is never accepted.
    """
    if WEAKNESS_REVOKED in verdict.weaknesses:
        raise AttestationError(f"{verdict.tee.value} evidence comes from a revoked platform")
    untolerated = set(verdict.weaknesses) - set(tolerate)
    ignored = set(ignore_advisories)
    advisories_ignored = bool(verdict.advisories) and all(a in ignored for a in verdict.advisories)
    if advisories_ignored:
        untolerated -= TCB_WEAKNESSES
    if not untolerated:
        return
    message = (
        f"{verdict.tee.value} evidence (TCB status {verdict.tcb_status}) has weaknesses the "
        f"session does not tolerate: {', '.join(sorted(untolerated))}"
    )
    pending = [a for a in verdict.advisories if a not in ignored]
    if untolerated & TCB_WEAKNESSES and pending:
        message += f" (advisories not ignored: {', '.join(pending)})"
    raise AttestationError(message)


def expect_report_data(verdict: Verdict, expected: bytes) -> None:
    """Refuse evidence whose report data is not the value the verifier asked to be bound."""
    if len(expected) != 64:
        raise UsageError(f"expected report data must be 64 bytes, got {len(expected)}")
    if not hmac.compare_digest(verdict.report_data, expected):
        raise AttestationError(
            f"{verdict.tee.value} evidence is bound to other report data "
            "(wrong nonce or public key, or a replay)"
        )
