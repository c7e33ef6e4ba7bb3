"""Composite evidence: a CPU TEE's and GPUs', bound by one nonce, accepted only together."""

from __future__ import annotations

import pytest

from _fake_hw import NOW, FakeAmd, FakeGpu, pem
from _fake_verifiers import fake_verifier
from seml.attest import (
    CompositeProvider,
    Evidence,
    SimulatedGpuProvider,
    SimulationProvider,
    TeeType,
    default_verifier,
    gpu_collateral,
    gpu_nonce_for,
    parse_evidence,
    report_data_for,
    snp_collateral,
)
from seml.errors import AttestationError
from vectors.evidence import HOPPER, MILAN_VCEK, VERIFY_AT

REPORT_DATA = report_data_for(b"nonce", bytes(range(32)))


def _snp(amd: FakeAmd, report_data: bytes = REPORT_DATA) -> Evidence:
    return Evidence(
        tee=TeeType.SNP,
        quote=amd.report(report_data),
        collateral=snp_collateral(pem(amd.vcek)),
    )


def _gpu(gpu: FakeGpu, nonce: bytes) -> Evidence:
    return Evidence(
        tee=TeeType.NVIDIA_GPU, quote=gpu.report(nonce), collateral=gpu_collateral(gpu.chain)
    )


def test_cpu_and_gpu_bound_by_one_nonce_are_accepted_together() -> None:
    amd, gpu = FakeAmd(), FakeGpu()
    nonce = gpu_nonce_for(REPORT_DATA)
    evidence = Evidence(
        tee=TeeType.COMPOSITE, parts=(_snp(amd), _gpu(gpu, nonce), _gpu(gpu, nonce))
    )
    evidence = parse_evidence(evidence.to_json())  # survives the wire
    verdict = fake_verifier(amd, gpu).verify(evidence, now=NOW)
    assert verdict.tee is TeeType.COMPOSITE
    assert verdict.report_data == REPORT_DATA
    assert verdict.cpu.tee is TeeType.SNP and len(verdict.gpus) == 2
    assert verdict.measurement == verdict.cpu.measurement
    assert verdict.weaknesses == {"revocation-unchecked", "measurements-unchecked"}
    assert verdict.details["cpu_tee"] == "snp" and verdict.details["gpus"] == "2"
    assert [p["tee"] for p in verdict.to_json_dict()["parts"]] == [
        "snp",
        "nvidia-gpu",
        "nvidia-gpu",
    ]


def test_gpu_evidence_for_another_attestation_is_refused() -> None:
    amd, gpu = FakeAmd(), FakeGpu()
    stale = gpu_nonce_for(report_data_for(b"an older nonce", bytes(range(32))))
    evidence = Evidence(tee=TeeType.COMPOSITE, parts=(_snp(amd), _gpu(gpu, stale)))
    with pytest.raises(AttestationError, match=r"GPU 0 evidence answers nonce .* not part of this"):
        fake_verifier(amd, gpu).verify(evidence, now=NOW)


def test_a_bad_part_refuses_the_whole() -> None:
    amd, gpu = FakeAmd(), FakeGpu()
    nonce = gpu_nonce_for(REPORT_DATA)
    bad_gpu = bytearray(gpu.report(nonce))
    bad_gpu[60] ^= 1
    evidence = Evidence(
        tee=TeeType.COMPOSITE,
        parts=(
            _snp(amd),
            Evidence(
                tee=TeeType.NVIDIA_GPU, quote=bytes(bad_gpu), collateral=gpu_collateral(gpu.chain)
            ),
        ),
    )
    with pytest.raises(AttestationError, match="GPU 0: GPU SPDM signature is invalid"):
        fake_verifier(amd, gpu).verify(evidence, now=NOW)
    bad_cpu = bytearray(amd.report(REPORT_DATA))
    bad_cpu[0x90] ^= 1
    evidence = Evidence(
        tee=TeeType.COMPOSITE,
        parts=(
            Evidence(
                tee=TeeType.SNP, quote=bytes(bad_cpu), collateral=snp_collateral(pem(amd.vcek))
            ),
            _gpu(gpu, nonce),
        ),
    )
    with pytest.raises(AttestationError, match="SNP report signature is invalid"):
        fake_verifier(amd, gpu).verify(evidence, now=NOW)


def test_recorded_cpu_and_gpu_evidence_are_not_bound_to_each_other() -> None:
    evidence = Evidence(
        tee=TeeType.COMPOSITE,
        parts=(
            Evidence(
                tee=TeeType.SNP,
                quote=MILAN_VCEK.report(),
                collateral=snp_collateral(MILAN_VCEK.key()),
            ),
            Evidence(
                tee=TeeType.NVIDIA_GPU,
                quote=HOPPER.report(),
                collateral=gpu_collateral(HOPPER.chain()),
            ),
        ),
    )
    with pytest.raises(AttestationError, match="not part of this attestation"):
        default_verifier().verify(evidence, now=VERIFY_AT)


def test_simulated_composite_is_labelled_simulation() -> None:
    provider = CompositeProvider(SimulationProvider("ab" * 32), SimulatedGpuProvider())
    evidence = provider.evidence(REPORT_DATA)
    verdict = default_verifier().verify(evidence, now=NOW)
    assert verdict.weaknesses == {"simulation"}
    assert verdict.cpu.tee is TeeType.SIMULATION and verdict.gpus[0].simulated


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('{"tee": "composite", "parts": []}', "needs a CPU part"),
        ('{"tee": "composite", "quote": "AA==", "parts": []}', "not a quote"),
        (
            '{"tee": "composite", "parts": [{"tee": "nvidia-gpu", "quote": "AA=="},'
            ' {"tee": "nvidia-gpu", "quote": "AA=="}]}',
            "not a CPU TEE",
        ),
        (
            '{"tee": "composite", "parts": [{"tee": "snp", "quote": "AA=="},'
            ' {"tee": "snp", "quote": "AA=="}]}',
            "must be nvidia-gpu",
        ),
        (
            '{"tee": "snp", "quote": "AA==", "parts": [{"tee": "snp", "quote": "AA=="}]}',
            "only composite",
        ),
        ('{"tee": "snp", "quote": "AA==", "workload": "XYZ"}', "workload"),
    ],
)
def test_malformed_composite_envelopes(document: str, problem: str) -> None:
    with pytest.raises(AttestationError, match="malformed evidence envelope") as caught:
        parse_evidence(document)
    assert problem in str(caught.value)
