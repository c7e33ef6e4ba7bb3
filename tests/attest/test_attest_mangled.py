"""Mangled recorded evidence fails with an AttestationError, never another exception; what
still verifies can only differ outside the signed bytes."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from seml.attest import (
    Evidence,
    TeeType,
    default_verifier,
    gpu_collateral,
    parse_evidence,
    snp_collateral,
)
from seml.errors import AttestationError
from vectors.evidence import HOPPER, MILAN_VCEK, VERIFY_AT


def _mangle(data: bytes, at: int, junk: bytes) -> bytes:
    at %= len(data) + 1
    return data[:at] + junk + data[at + len(junk) :]


@given(at=st.integers(min_value=0, max_value=1200), junk=st.binary(min_size=1, max_size=8))
def test_mangled_snp_report(at: int, junk: bytes) -> None:
    report = _mangle(MILAN_VCEK.report(), at, junk)
    evidence = Evidence(tee=TeeType.SNP, quote=report, collateral=snp_collateral(MILAN_VCEK.key()))
    try:
        verdict = default_verifier().verify(evidence, now=VERIFY_AT)
    except AttestationError:
        return
    assert report[:0x330] == MILAN_VCEK.report()[:0x330]  # only reserved signature padding
    assert verdict.measurement == MILAN_VCEK.measurement


@given(at=st.integers(min_value=0, max_value=4200), junk=st.binary(min_size=1, max_size=8))
def test_mangled_gpu_report(at: int, junk: bytes) -> None:
    report = _mangle(HOPPER.report(), at, junk)
    evidence = Evidence(
        tee=TeeType.NVIDIA_GPU, quote=report, collateral=gpu_collateral(HOPPER.chain())
    )
    try:
        default_verifier().verify(evidence, now=VERIFY_AT)
    except AttestationError:
        return
    assert report == HOPPER.report()


@given(at=st.integers(min_value=0, max_value=1400), junk=st.binary(min_size=1, max_size=6))
def test_mangled_certificate(at: int, junk: bytes) -> None:
    der = _mangle(MILAN_VCEK.key(), at, junk)
    with contextlib.suppress(AttestationError):
        evidence = Evidence(
            tee=TeeType.SNP, quote=MILAN_VCEK.report(), collateral=snp_collateral(der)
        )
        default_verifier().verify(evidence, now=VERIFY_AT)


@given(
    collateral=st.dictionaries(
        st.sampled_from(["certs", "crl", "rims", "tpm_quote", "tpm_signature", "pcrs"]),
        st.none()
        | st.integers()
        | st.text(max_size=30)
        | st.lists(st.text(max_size=5), max_size=3),
    ),
    tee=st.sampled_from(["snp", "azure-snp", "nvidia-gpu"]),
)
def test_odd_collateral_fails_cleanly(collateral: dict[str, object], tee: str) -> None:
    import base64
    import json

    document = {
        "tee": tee,
        "quote": base64.b64encode(MILAN_VCEK.report()).decode(),
        "collateral": json.dumps(collateral),
    }
    with contextlib.suppress(AttestationError):
        default_verifier().verify(parse_evidence(json.dumps(document)), now=VERIFY_AT)
