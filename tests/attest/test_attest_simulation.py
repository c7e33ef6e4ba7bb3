"""Simulation evidence: software-made, always marked as such."""

from __future__ import annotations

import pytest

from seml.attest import (
    Evidence,
    SimulationProvider,
    SimulationVerifier,
    TeeType,
    default_verifier,
    report_data_for,
)
from seml.errors import AttestationError, UsageError

MEASUREMENT = "5e" * 32


def test_round_trip_carries_measurement_report_data_and_simulation_label() -> None:
    report_data = report_data_for(b"nonce", b"k" * 32)
    evidence = SimulationProvider(MEASUREMENT).evidence(report_data)
    assert evidence.tee is TeeType.SIMULATION
    verdict = default_verifier().verify(evidence, now=0)
    assert verdict.measurement == MEASUREMENT
    assert verdict.report_data == report_data
    assert verdict.tcb_status == "Simulated"
    assert verdict.weaknesses == {"simulation"}
    assert verdict.simulated
    assert verdict.to_json_dict()["simulated"] is True
    assert "simulated" in repr(SimulationProvider(MEASUREMENT))


@pytest.mark.parametrize("measurement", ["", "AB" * 32, "ab" * 8 + "a", "zz" * 32, "ab" * 65])
def test_bad_measurement_is_a_usage_error(measurement: str) -> None:
    with pytest.raises(UsageError, match="lowercase hex"):
        SimulationProvider(measurement)


def test_report_data_must_be_64_bytes() -> None:
    with pytest.raises(UsageError, match="64 bytes"):
        SimulationProvider(MEASUREMENT).evidence(b"short")


@pytest.mark.parametrize(
    "quote",
    [
        b"garbage",
        b"SEML-SIMULATED\x00\x02" + b"r" * 160,  # no measurement
        b"SEML-SIMULATED\x00\x02" + b"r" * 160 + b"m" * 65,  # measurement too long
        b"SEML-SIMULATED\x00\x01" + b"r" * 64 + b"m" * 32,  # another format version
    ],
)
def test_malformed_simulation_quote_is_refused(quote: bytes) -> None:
    with pytest.raises(AttestationError, match="malformed simulation quote"):
        SimulationVerifier().verify(Evidence(tee=TeeType.SIMULATION, quote=quote), now=0)


def test_simulation_verifier_refuses_other_types() -> None:
    evidence = Evidence(tee=TeeType.SGX_DCAP, quote=b"x")
    with pytest.raises(AttestationError, match="not simulation evidence"):
        SimulationVerifier().verify(evidence, now=0)


def test_platform_key_names_the_platform_and_signs_the_quote() -> None:
    key = bytes(range(32))
    provider = SimulationProvider(MEASUREMENT, platform_key=key)
    again = SimulationProvider(MEASUREMENT, platform_key=key)
    assert provider.platform == again.platform
    assert provider.platform != SimulationProvider(MEASUREMENT).platform
    evidence = provider.evidence(report_data_for(b"nonce", b"k" * 32))
    verdict = SimulationVerifier().verify(evidence, now=0)
    assert verdict.details["platform"] == provider.platform


@pytest.mark.parametrize("position", [16, 80, 112, 180, -1])
def test_any_altered_byte_breaks_the_platform_signature(position: int) -> None:
    evidence = SimulationProvider(MEASUREMENT).evidence(report_data_for(b"nonce", b"k" * 32))
    quote = bytearray(evidence.quote)
    quote[position] ^= 0x01
    with pytest.raises(AttestationError, match="signature is invalid"):
        SimulationVerifier().verify(Evidence(tee=TeeType.SIMULATION, quote=bytes(quote)), now=0)


def test_bad_platform_key_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="platform key"):
        SimulationProvider(MEASUREMENT, platform_key=b"short")
