"""Simulation evidence: made in software, proving nothing about hardware.

No machine here has a TEE, so workloads can present a *simulated* quote: the workload's
measurement (a digest of its code, command and runtime identity) and its report data, in a fixed
binary layout. Anyone can forge one; that is why every verdict for it carries the weakness
``simulation`` and a session must tolerate it explicitly.

A simulated quote is signed by a *platform key*, an Ed25519 key kept in a file on the machine,
standing in for the CPU's provisioning identity (SGX/TDX PPID): the verdict names the platform
(``sha256:`` of its public key), so a session can pin a service to the machine it belongs to.
In simulation this only models that binding: whoever can read the key file can claim to be
that platform.
"""

from __future__ import annotations

import hashlib
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from seml.attest._evidence import (
    WEAKNESS_SIMULATION,
    Evidence,
    TeeType,
    Verdict,
)
from seml.errors import AttestationError, UsageError

__all__ = ["SIMULATED_TCB_STATUS", "SimulationProvider", "SimulationVerifier", "platform_id"]

SIMULATED_TCB_STATUS = "Simulated"

# Layout: magic (16) | report data (64) | platform public key (32) | signature (64) |
# measurement (16..64 bytes). The signature covers every other byte.
_MAGIC = b"SEML-SIMULATED\x00\x02"
_REPORT_DATA_LEN = 64
_PUBLIC_LEN = 32
_SIGNATURE_LEN = 64
_FIXED = _REPORT_DATA_LEN + _PUBLIC_LEN + _SIGNATURE_LEN
_MEASUREMENT_RANGE = (16, 64)
_HEX = re.compile(r"[0-9a-f]+")


def _measurement_bytes(measurement: str) -> bytes:
    lo, hi = _MEASUREMENT_RANGE
    if (
        not _HEX.fullmatch(measurement)
        or len(measurement) % 2
        or not lo <= len(measurement) // 2 <= hi
    ):
        raise UsageError(
            f"a simulated measurement must be {lo} to {hi} bytes of lowercase hex, "
            f"got {measurement[:80]!r}"
        )
    return bytes.fromhex(measurement)


def platform_id(public_key: bytes) -> str:
    """The id a session lists in a service's `platforms` for a simulated platform key."""
    return "sha256:" + hashlib.sha256(public_key).hexdigest()


class SimulationProvider:
    """An `EvidenceProvider` that makes simulation evidence in software (no TEE involved).

    `platform_key` (32 raw Ed25519 private bytes) identifies the machine; without one, an
    ephemeral key is used and the evidence comes from an unknown, one-off platform.
    """

    def __init__(self, measurement: str, *, platform_key: bytes | None = None) -> None:
        self._measurement = _measurement_bytes(measurement)
        try:
            self._key = (
                Ed25519PrivateKey.from_private_bytes(platform_key)
                if platform_key is not None
                else Ed25519PrivateKey.generate()
            )
        except ValueError as e:
            raise UsageError(f"a platform key must be 32 raw Ed25519 bytes: {e}") from e
        self._public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def platform(self) -> str:
        return platform_id(self._public)

    @property
    def measurement(self) -> str:
        return self._measurement.hex()

    def evidence(self, report_data: bytes) -> Evidence:
        if len(report_data) != _REPORT_DATA_LEN:
            raise UsageError(f"report data must be 64 bytes, got {len(report_data)}")
        signed = _MAGIC + report_data + self._public + self._measurement
        signature = self._key.sign(signed)
        quote = _MAGIC + report_data + self._public + signature + self._measurement
        return Evidence(tee=TeeType.SIMULATION, quote=quote)

    def __repr__(self) -> str:
        return (
            f"SimulationProvider(measurement={self.measurement!r}, platform={self.platform!r})"
            "  # simulated, no TEE"
        )


class SimulationVerifier:
    """Parses simulation evidence; its verdict always carries the weakness ``simulation``."""

    def verify(self, evidence: Evidence, *, now: int) -> Verdict:
        del now  # nothing in a simulated quote expires
        if evidence.tee is not TeeType.SIMULATION:
            raise AttestationError(f"not simulation evidence: {evidence.tee.value}")
        quote = evidence.quote
        lo, hi = _MEASUREMENT_RANGE
        body = quote[len(_MAGIC) :]
        if not quote.startswith(_MAGIC) or not lo <= len(body) - _FIXED <= hi:
            raise AttestationError("malformed simulation quote (bad magic or length)")
        report_data = body[:_REPORT_DATA_LEN]
        public = body[_REPORT_DATA_LEN : _REPORT_DATA_LEN + _PUBLIC_LEN]
        signature = body[_REPORT_DATA_LEN + _PUBLIC_LEN : _FIXED]
        measurement_bytes = body[_FIXED:]
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(
                signature, _MAGIC + report_data + public + measurement_bytes
            )
        except (InvalidSignature, ValueError):
            raise AttestationError(
                "simulation quote's platform signature is invalid (altered quote)"
            ) from None
        measurement = measurement_bytes.hex()
        return Verdict(
            tee=TeeType.SIMULATION,
            measurement=measurement,
            report_data=report_data,
            tcb_status=SIMULATED_TCB_STATUS,
            weaknesses=frozenset({WEAKNESS_SIMULATION}),
            advisories=(),
            details={
                "note": "simulated in software; proves nothing about hardware",
                "platform": platform_id(public),
            },
        )
