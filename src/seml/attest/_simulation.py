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
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from seml.attest._evidence import (
    WEAKNESS_SIMULATION,
    Evidence,
    TeeType,
    Verdict,
)
from seml.errors import AttestationError, UsageError

__all__ = [
    "SIMULATED_GPU_MAGIC",
    "SIMULATED_TCB_STATUS",
    "SimulatedGpuProvider",
    "SimulationProvider",
    "SimulationVerifier",
    "platform_id",
    "verify_simulated_gpu",
]

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


def _platform_signing_key(platform_key: bytes | None) -> Ed25519PrivateKey:
    """The machine's platform key, or a one-off key when there is none."""
    if platform_key is None:
        return Ed25519PrivateKey.generate()
    try:
        return Ed25519PrivateKey.from_private_bytes(platform_key)
    except ValueError as e:
        raise UsageError(f"a platform key must be 32 raw Ed25519 bytes: {e}") from e


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
        self._key = _platform_signing_key(platform_key)
        self._public = self._key.public_key().public_bytes_raw()

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


# Simulated GPU evidence: what an NVIDIA GPU's SPDM report says (a nonce answered, a driver and
# VBIOS version), made and signed in software by the platform key. Layout: magic (20) | nonce
# (32) | platform public key (32) | signature (64) | JSON body; the signature covers the rest.
SIMULATED_GPU_MAGIC = b"SEML-SIMULATED-GPU\x00\x01"
_GPU_NONCE_LEN = 32
_GPU_FIXED = len(SIMULATED_GPU_MAGIC) + _GPU_NONCE_LEN + _PUBLIC_LEN + _SIGNATURE_LEN
_MAX_GPU_BODY = 1024


class SimulatedGpuProvider:
    """GPU evidence made in software (no GPU involved), one simulated GPU per call."""

    def __init__(
        self,
        *,
        platform_key: bytes | None = None,
        driver_version: str = "simulated",
        vbios_version: str = "simulated",
    ) -> None:
        self._key = _platform_signing_key(platform_key)
        self._body = json.dumps(
            {"driver_version": driver_version, "vbios_version": vbios_version}, sort_keys=True
        ).encode()

    def gpu_evidence(self, nonce: bytes) -> list[Evidence]:
        if len(nonce) != _GPU_NONCE_LEN:
            raise UsageError(f"a GPU nonce is {_GPU_NONCE_LEN} bytes, got {len(nonce)}")
        public = self._key.public_key().public_bytes_raw()
        signature = self._key.sign(SIMULATED_GPU_MAGIC + nonce + public + self._body)
        quote = SIMULATED_GPU_MAGIC + nonce + public + signature + self._body
        return [Evidence(tee=TeeType.NVIDIA_GPU, quote=quote)]


def verify_simulated_gpu(quote: bytes, *, nonce: bytes | None = None) -> Verdict:
    """Check simulated GPU evidence; its verdict always carries the weakness ``simulation``."""
    if not quote.startswith(SIMULATED_GPU_MAGIC) or not (
        _GPU_FIXED < len(quote) <= _GPU_FIXED + _MAX_GPU_BODY
    ):
        raise AttestationError("malformed simulated GPU evidence (bad magic or length)")
    at = len(SIMULATED_GPU_MAGIC)
    answered = quote[at : at + _GPU_NONCE_LEN]
    public = quote[at + _GPU_NONCE_LEN : at + _GPU_NONCE_LEN + _PUBLIC_LEN]
    signature = quote[at + _GPU_NONCE_LEN + _PUBLIC_LEN : _GPU_FIXED]
    body = quote[_GPU_FIXED:]
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(
            signature, SIMULATED_GPU_MAGIC + answered + public + body
        )
        fields = json.loads(body)
        driver, vbios = str(fields["driver_version"]), str(fields["vbios_version"])
    except (InvalidSignature, ValueError, KeyError, TypeError):
        raise AttestationError(
            "simulated GPU evidence's platform signature or body is invalid (altered)"
        ) from None
    if nonce is not None and answered != nonce:
        raise AttestationError(
            f"GPU evidence answers nonce {answered.hex()}, not ours ({nonce.hex()}): "
            "a replayed or foreign report"
        )
    return Verdict(
        tee=TeeType.NVIDIA_GPU,
        measurement=hashlib.sha384(body).hexdigest(),
        report_data=answered,
        tcb_status=SIMULATED_TCB_STATUS,
        weaknesses=frozenset({WEAKNESS_SIMULATION}),
        details={
            "note": "simulated in software; proves nothing about a GPU",
            "driver_version": driver,
            "vbios_version": vbios,
            "platform": platform_id(public),
        },
    )
