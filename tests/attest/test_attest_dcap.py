"""Real SGX and TDX DCAP quotes through dcap-qvl: statuses, measurements, tampering, expiry."""

from __future__ import annotations

import json
import time

import pytest

from seml.attest import (
    DcapVerifier,
    Evidence,
    TeeType,
    check_weaknesses,
    default_verifier,
    weaknesses_for_status,
)
from seml.attest._dcap import _verdict
from seml.errors import AttestationError
from vectors.dcap import QUOTES, SGX, SGX_MRSIGNER, TDX, TDX_RTMR0, QuoteVector


@pytest.mark.parametrize("vector", QUOTES, ids=lambda v: v.name)
def test_verdict_matches_readme(vector: QuoteVector) -> None:
    verdict = default_verifier().verify(vector.evidence(), now=vector.verify_at)
    assert verdict.tee is vector.tee
    assert verdict.tcb_status == vector.status
    assert verdict.advisories == vector.advisories
    assert verdict.measurement == vector.measurement
    assert len(verdict.report_data) == 64
    assert not verdict.simulated


def test_sgx_details() -> None:
    verdict = default_verifier().verify(SGX.evidence(), now=SGX.verify_at)
    assert verdict.details["mrsigner"] == SGX_MRSIGNER
    assert verdict.details["isv_prod_id"] == "0"
    assert verdict.report_data.startswith(b"Hello, world!")
    assert verdict.weaknesses == {"sw-hardening-needed", "configuration-needed"}


def test_tdx_is_up_to_date_without_weaknesses() -> None:
    verdict = default_verifier().verify(TDX.evidence(), now=TDX.verify_at)
    assert verdict.details["rtmr0"] == TDX_RTMR0
    assert set(verdict.details) >= {"rtmr1", "rtmr2", "rtmr3", "mr_seam", "td_attributes"}
    assert verdict.weaknesses == frozenset()
    check_weaknesses(verdict, tolerate=(), ignore_advisories=())


@pytest.mark.parametrize(
    ("tolerate", "ignore", "accepted"),
    [
        ((), (), False),
        (("sw-hardening-needed",), (), False),
        (("configuration-needed",), (), False),
        (("sw-hardening-needed", "configuration-needed"), (), True),
        ((), ("INTEL-SA-00289", "INTEL-SA-00615"), True),
        ((), ("INTEL-SA-00289",), False),
        (("sw-hardening-needed",), ("INTEL-SA-00615",), False),
        (("simulation", "debug"), (), False),
    ],
)
def test_sgx_accepted_only_when_weaknesses_tolerated_or_advisories_ignored(
    tolerate: tuple[str, ...], ignore: tuple[str, ...], accepted: bool
) -> None:
    verdict = default_verifier().verify(SGX.evidence(), now=SGX.verify_at)
    assert verdict.measurement == SGX.measurement
    if accepted:
        check_weaknesses(verdict, tolerate=tolerate, ignore_advisories=ignore)
    else:
        with pytest.raises(AttestationError, match="does not tolerate"):
            check_weaknesses(verdict, tolerate=tolerate, ignore_advisories=ignore)


def _sample_positions(vector: QuoteVector) -> list[int]:
    # A spread over the header and the whole report body, plus both ends of the body.
    step = 29 if vector is SGX else 41
    return sorted({*range(0, vector.signed_len, step), 47, 48, vector.signed_len - 1})


@pytest.mark.parametrize("vector", QUOTES, ids=lambda v: v.name)
def test_every_flipped_byte_in_signed_body_is_refused(vector: QuoteVector) -> None:
    quote = vector.quote()
    collateral = vector.collateral()
    verifier = default_verifier()
    for position in _sample_positions(vector):
        tampered = bytearray(quote)
        tampered[position] ^= 0x01
        evidence = Evidence(tee=vector.tee, quote=bytes(tampered), collateral=collateral)
        with pytest.raises(AttestationError) as caught:
            verifier.verify(evidence, now=vector.verify_at)
        message = str(caught.value)
        assert vector.tee.value in message, message
        if position >= 48:  # the report body: only the signature can catch it
            assert "report signature is invalid" in message, (position, message)


@pytest.mark.parametrize("vector", QUOTES, ids=lambda v: v.name)
def test_expired_collateral_is_refused_naming_the_crl(vector: QuoteVector) -> None:
    today = int(time.time())
    with pytest.raises(AttestationError) as caught:
        default_verifier().verify(vector.evidence(), now=today)
    message = str(caught.value)
    assert "collateral expired" in message
    assert "CRL of Intel SGX Root CA (next update 2026-04-03" in message
    assert "CrlExpired" in message


def test_envelope_tee_must_match_quote() -> None:
    evidence = SGX.evidence().replace(tee=TeeType.TDX_DCAP)
    with pytest.raises(AttestationError, match="envelope says tdx-dcap but the quote is sgx-dcap"):
        default_verifier().verify(evidence, now=SGX.verify_at)


def test_missing_collateral_without_fetch_is_refused() -> None:
    evidence = Evidence(tee=SGX.tee, quote=SGX.quote())
    with pytest.raises(AttestationError, match="no collateral and fetching is off"):
        DcapVerifier().verify(evidence, now=SGX.verify_at)


def test_collateral_of_another_platform_is_refused() -> None:
    evidence = SGX.evidence().replace(collateral=TDX.collateral())
    with pytest.raises(AttestationError, match="sgx-dcap quote refused"):
        default_verifier().verify(evidence, now=SGX.verify_at)


@pytest.mark.parametrize("collateral", ["", "{}", "not json", '{"tcb_info": 3}'])
def test_malformed_collateral_is_refused(collateral: str) -> None:
    evidence = SGX.evidence().replace(collateral=collateral)
    with pytest.raises(AttestationError, match="collateral is malformed"):
        default_verifier().verify(evidence, now=SGX.verify_at)


@pytest.mark.parametrize(
    ("status", "weaknesses"),
    [
        ("UpToDate", set()),
        ("SWHardeningNeeded", {"sw-hardening-needed"}),
        ("ConfigurationNeeded", {"configuration-needed"}),
        ("ConfigurationAndSWHardeningNeeded", {"configuration-needed", "sw-hardening-needed"}),
        ("OutOfDate", {"out-of-date"}),
        ("OutOfDateConfigurationNeeded", {"out-of-date", "configuration-needed"}),
        ("Revoked", {"revoked"}),
    ],
)
def test_tcb_status_maps_to_weaknesses(status: str, weaknesses: set[str]) -> None:
    assert weaknesses_for_status(status) == weaknesses


def test_unknown_tcb_status_is_refused() -> None:
    with pytest.raises(AttestationError, match="unknown TCB status 'Mystery'"):
        weaknesses_for_status("Mystery")


def _sgx_report(attributes: str) -> str:
    fields = {
        "attributes": attributes,
        "mr_enclave": "AB" * 32,
        "mr_signer": "cd" * 32,
        "report_data": "00" * 64,
        "isv_prod_id": 7,
    }
    return json.dumps({"report": {"SgxEnclave": fields}})


def test_sgx_debug_enclave_carries_debug_weakness() -> None:
    debug = _verdict(TeeType.SGX_DCAP, "UpToDate", (), _sgx_report("07" + "00" * 15))
    assert debug.weaknesses == {"debug"}
    assert debug.measurement == "ab" * 32
    assert debug.details["isv_prod_id"] == "7"
    with pytest.raises(AttestationError, match="debug"):
        check_weaknesses(debug, tolerate=(), ignore_advisories=())
    production = _verdict(TeeType.SGX_DCAP, "UpToDate", (), _sgx_report("05" + "00" * 15))
    assert production.weaknesses == frozenset()


def test_debug_is_not_covered_by_ignored_advisories() -> None:
    verdict = _verdict(
        TeeType.SGX_DCAP, "SWHardeningNeeded", ("INTEL-SA-1",), _sgx_report("07" + "00" * 15)
    )
    with pytest.raises(AttestationError, match="debug"):
        check_weaknesses(verdict, tolerate=(), ignore_advisories=("INTEL-SA-1",))
    check_weaknesses(verdict, tolerate=("debug",), ignore_advisories=("INTEL-SA-1",))


def test_revoked_is_refused() -> None:
    with pytest.raises(AttestationError, match="revoked"):
        _verdict(TeeType.SGX_DCAP, "Revoked", (), _sgx_report("05" + "00" * 15))


def test_verified_report_kind_must_match_envelope() -> None:
    with pytest.raises(AttestationError, match="verified report is SgxEnclave"):
        _verdict(TeeType.TDX_DCAP, "UpToDate", (), _sgx_report("05" + "00" * 15))


def test_collateral_fetch_failure_is_an_attestation_error() -> None:
    # A closed loopback port: the fetch fails fast without leaving this machine.
    verifier = DcapVerifier(collateral_fetch=True, pccs_url="https://127.0.0.1:9")
    evidence = Evidence(tee=SGX.tee, quote=SGX.quote())
    with pytest.raises(
        AttestationError, match=r"could not fetch sgx-dcap collateral from https://127\.0\.0\.1:9"
    ):
        verifier.verify(evidence, now=SGX.verify_at)
