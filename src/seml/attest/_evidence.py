"""The evidence envelope, the verdict a verifier returns, and the rules that accept or refuse it.

Pure: bytes in, typed results out, no I/O. A workload wraps whatever its TEE produced (a DCAP
quote, or a software-made simulation quote) in an `Evidence` envelope; a `Verifier` turns it into a
`Verdict` or raises; `check_weaknesses` and `expect_report_data` apply a session's rules to it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import pydantic

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
    "expect_report_data",
    "parse_evidence",
    "report_data_for",
]

# DCAP quotes are a few KiB (the PCK chain dominates); collateral JSON is tens of KiB. The limits
# only keep a hostile envelope from costing memory; they are far above anything real.
MAX_QUOTE_BYTES = 64 * 1024
MAX_COLLATERAL_CHARS = 1024 * 1024

_REPORT_DATA_DOMAIN = b"seml/attest/report-data/v1\x00"

WEAKNESS_SIMULATION = "simulation"
WEAKNESS_DEBUG = "debug"
WEAKNESS_SW_HARDENING = "sw-hardening-needed"
WEAKNESS_CONFIGURATION = "configuration-needed"
WEAKNESS_OUT_OF_DATE = "out-of-date"
WEAKNESS_REVOKED = "revoked"

# Weaknesses that come from the platform's TCB status; only these can be accepted by ignoring
# every advisory the evidence names (the advisories *are* the reason for the status).
TCB_WEAKNESSES = frozenset({WEAKNESS_SW_HARDENING, WEAKNESS_CONFIGURATION, WEAKNESS_OUT_OF_DATE})


class TeeType(StrEnum):
    """Which kind of evidence an envelope carries."""

    SIMULATION = "simulation"
    SGX_DCAP = "sgx-dcap"
    TDX_DCAP = "tdx-dcap"


class Evidence(pydantic.BaseModel):
    """The envelope a workload sends: the TEE type, the raw quote and optional collateral JSON.

    In JSON the quote is base64 (standard alphabet, padded). From Python, pass raw bytes.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    tee: TeeType
    quote: bytes = pydantic.Field(min_length=1, max_length=MAX_QUOTE_BYTES)
    collateral: str | None = pydantic.Field(default=None, max_length=MAX_COLLATERAL_CHARS)

    @pydantic.field_validator("quote", mode="before")
    @classmethod
    def _decode_quote(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return base64.b64decode(value.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError) as e:
                raise ValueError("quote must be base64") from e
        return value

    @pydantic.field_serializer("quote")
    def _encode_quote(self, value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")

    def __repr__(self) -> str:
        return f"Evidence(tee={self.tee.value!r}, quote=<{len(self.quote)} bytes>)"

    __str__ = __repr__


def parse_evidence(data: bytes | str) -> Evidence:
    """Parse an envelope from JSON, turning any malformation into one `AttestationError`."""
    try:
        return Evidence.model_validate_json(data)
    except pydantic.ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'envelope'}: {err['msg']}"
            for err in e.errors(include_url=False, include_input=False)
        )
        raise AttestationError(f"malformed evidence envelope: {problems}") from e


def report_data_for(nonce: bytes, public_key: bytes) -> bytes:
    """The 64 bytes of report data that bind the service's nonce to the workload's X25519 key.

    Domain-separated and length-prefixed SHA-512, so no other use of the TEE's report data can
    collide with it and no (nonce, key) split of the same bytes gives the same value.
    """
    if not 1 <= len(nonce) <= 1024:
        raise UsageError(f"nonce must be 1 to 1024 bytes, got {len(nonce)}")
    if len(public_key) != 32:
        raise UsageError(f"public key must be a 32-byte X25519 key, got {len(public_key)} bytes")
    h = hashlib.sha512(_REPORT_DATA_DOMAIN)
    for part in (nonce, public_key):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


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

    @property
    def simulated(self) -> bool:
        return WEAKNESS_SIMULATION in self.weaknesses

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "tee": self.tee.value,
            "simulated": self.simulated,
            "measurement": self.measurement,
            "tcb_status": self.tcb_status,
            "advisories": list(self.advisories),
            "weaknesses": sorted(self.weaknesses),
            "report_data": self.report_data.hex(),
            "details": dict(sorted(self.details.items())),
        }


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
