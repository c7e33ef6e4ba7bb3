"""The envelope, report-data binding and acceptance rules; garbage envelopes fail cleanly."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seml.attest import (
    Evidence,
    SimulationProvider,
    TeeType,
    Verdict,
    check_weaknesses,
    default_verifier,
    expect_report_data,
    parse_evidence,
    report_data_for,
)
from seml.errors import AttestationError, UsageError
from vectors.dcap import SGX

NONCE = bytes(range(32))
KEY = bytes(range(100, 132))


def test_report_data_binds_nonce_and_key() -> None:
    value = report_data_for(NONCE, KEY)
    assert len(value) == 64
    assert value == report_data_for(NONCE, KEY)
    assert value != report_data_for(NONCE[:-1] + b"\xff", KEY)
    assert value != report_data_for(NONCE, KEY[:-1] + b"\xff")
    assert value != hashlib.sha512(NONCE + KEY).digest()  # domain-separated


@pytest.mark.parametrize(
    ("nonce", "key", "reason"),
    [
        (b"", KEY, "nonce must be 1 to 1024 bytes, got 0"),
        (b"n" * 1025, KEY, "nonce must be 1 to 1024 bytes, got 1025"),
        (NONCE, b"k" * 31, "public key must be a 32-byte X25519 key, got 31 bytes"),
        (NONCE, b"k" * 33, "public key must be a 32-byte X25519 key, got 33 bytes"),
    ],
)
def test_report_data_rejects_bad_inputs(nonce: bytes, key: bytes, reason: str) -> None:
    with pytest.raises(UsageError, match=re.escape(reason)):
        report_data_for(nonce, key)


def _verdict(report_data: bytes) -> Verdict:
    return Verdict(
        tee=TeeType.SIMULATION,
        measurement="00" * 32,
        report_data=report_data,
        tcb_status="Simulated",
        weaknesses=frozenset({"simulation"}),
    )


def test_expect_report_data() -> None:
    expected = report_data_for(NONCE, KEY)
    expect_report_data(_verdict(expected), expected)
    with pytest.raises(AttestationError, match="bound to other report data"):
        expect_report_data(_verdict(report_data_for(b"other nonce", KEY)), expected)
    with pytest.raises(UsageError, match="expected report data must be 64 bytes, got 32"):
        expect_report_data(_verdict(expected), expected[:32])


def test_envelope_json_uses_base64_and_round_trips() -> None:
    evidence = Evidence(tee=TeeType.SGX_DCAP, quote=b"\x00\x01quote\xff", collateral="{}")
    document = json.loads(evidence.to_json())
    assert document == {
        "tee": "sgx-dcap",
        "quote": base64.b64encode(b"\x00\x01quote\xff").decode(),
        "collateral": "{}",
    }
    assert parse_evidence(json.dumps(document)) == evidence
    assert "quote=<8 bytes>" in repr(evidence)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('{"tee": "sev-snp", "quote": "AA=="}', "tee"),
        ('{"tee": "simulation", "quote": "not base64!"}', "quote must be base64"),
        ('{"tee": "simulation", "quote": ""}', "quote"),
        ('{"tee": "simulation", "quote": "AA==", "extra": 1}', "extra"),
        ('{"tee": "simulation"}', "quote"),
        ("[]", "envelope"),
        ("not json", "envelope"),
    ],
)
def test_malformed_envelope_names_the_problem(document: str, problem: str) -> None:
    with pytest.raises(AttestationError, match="malformed evidence envelope") as caught:
        parse_evidence(document)
    assert problem in str(caught.value)


def test_oversized_quote_is_refused() -> None:
    document = json.dumps({"tee": "sgx-dcap", "quote": base64.b64encode(b"q" * 70_000).decode()})
    with pytest.raises(AttestationError, match="quote"):
        parse_evidence(document)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_garbage_bytes_are_refused_as_malformed(data: bytes) -> None:
    with pytest.raises(AttestationError, match=r"^malformed evidence envelope: "):
        parse_evidence(data)


@given(
    tee=st.sampled_from([*(t.value for t in TeeType), "tpm", 3, None]),
    quote=st.binary(max_size=700) | st.sampled_from([b"", b"SEML-SIMULATED\x00\x01" + b"x" * 96]),
    collateral=st.none() | st.text(max_size=60) | st.just("{}"),
    extra=st.dictionaries(st.sampled_from(["x", "nonce"]), _json_values, max_size=1),
)
def test_garbage_envelopes_are_refused_with_their_reason(
    tee: object, quote: bytes, collateral: str | None, extra: dict[str, object]
) -> None:
    document = {
        "tee": tee,
        "quote": base64.b64encode(quote).decode(),
        "collateral": collateral,
        **extra,
    }
    text = json.dumps(document)
    # Field errors first (pydantic reports them all); the envelope's shape only when the
    # fields are fine.
    problems = [f"{key}: Extra inputs are not permitted" for key in extra]
    if tee not in {t.value for t in TeeType}:
        problems.append("tee: Input should be")
    if not problems and tee == TeeType.COMPOSITE.value:
        problems.append("composite evidence")
    elif not problems and not quote:
        problems.append("quote must not be empty")
    if problems:
        with pytest.raises(AttestationError, match=r"^malformed evidence envelope: ") as caught:
            parse_evidence(text)
        assert all(p in str(caught.value) for p in problems), (problems, str(caught.value))
        return
    evidence = parse_evidence(text)
    reason = _GARBAGE_REASONS.get(str(tee), re.escape(str(tee)))
    with pytest.raises(AttestationError, match=reason):
        default_verifier().verify(evidence, now=1751624924)


# Why garbage of each kind is refused (a kind not listed must at least name itself).
_GARBAGE_REASONS = {
    TeeType.SIMULATION.value: (
        r"^(malformed simulation quote \(bad magic or length\)"
        r"|simulation quote's platform signature is invalid)"
    ),
    TeeType.SGX_DCAP.value: r"^(sgx-dcap quote cannot be parsed|envelope says sgx-dcap but)",
    TeeType.TDX_DCAP.value: r"^(tdx-dcap quote cannot be parsed|envelope says tdx-dcap but)",
    # Random collateral is refused before the report is looked at (or the report's size is).
    TeeType.SNP.value: (
        r"^(snp collateral |snp evidence carries no collateral"
        r"|an SEV-SNP attestation report is 1184 bytes)"
    ),
    TeeType.AZURE_SNP.value: r"^azure-snp (collateral |evidence carries no collateral)",
    TeeType.NVIDIA_GPU.value: (
        r"^(nvidia-gpu collateral |nvidia-gpu evidence carries no collateral"
        r"|GPU evidence does not start with an SPDM)"
    ),
}


@given(cut=st.integers(min_value=0, max_value=6000), junk=st.binary(max_size=40))
def test_mangled_real_quote_fails_cleanly(cut: int, junk: bytes) -> None:
    quote, collateral = SGX.quote(), SGX.collateral()
    mangled = quote[:cut] + junk
    if mangled == quote or not mangled:
        return
    evidence = Evidence(tee=TeeType.SGX_DCAP, quote=mangled, collateral=collateral)
    try:
        verdict = default_verifier().verify(evidence, now=SGX.verify_at)
    except AttestationError as e:
        assert re.match(
            r"sgx-dcap quote (cannot be parsed|refused)|envelope says sgx-dcap but", str(e)
        ), str(e)
        return
    # Only bytes after the signed body (certification data padding) may change and still verify.
    assert mangled[: SGX.signed_len] == quote[: SGX.signed_len]
    assert verdict.measurement == SGX.measurement


def test_simulation_is_refused_unless_tolerated_and_advisories_do_not_help() -> None:
    evidence = SimulationProvider("ab" * 32).evidence(report_data_for(NONCE, KEY))
    verdict = default_verifier().verify(evidence, now=0)
    with pytest.raises(AttestationError, match="does not tolerate: simulation"):
        check_weaknesses(verdict, tolerate=("debug",), ignore_advisories=("INTEL-SA-00289",))
    check_weaknesses(verdict, tolerate=("simulation",), ignore_advisories=())


def test_tcb_weakness_without_advisories_needs_toleration() -> None:
    verdict = Verdict(
        tee=TeeType.TDX_DCAP,
        measurement="00" * 48,
        report_data=bytes(64),
        tcb_status="OutOfDate",
        weaknesses=frozenset({"out-of-date"}),
        advisories=(),
    )
    with pytest.raises(AttestationError, match="out-of-date"):
        check_weaknesses(verdict, tolerate=(), ignore_advisories=("INTEL-SA-00289",))
    check_weaknesses(verdict, tolerate=("out-of-date",), ignore_advisories=())


def test_revoked_is_never_tolerated() -> None:
    verdict = Verdict(
        tee=TeeType.SGX_DCAP,
        measurement="00" * 32,
        report_data=bytes(64),
        tcb_status="Revoked",
        weaknesses=frozenset({"revoked"}),
        advisories=("INTEL-SA-1",),
    )
    with pytest.raises(AttestationError, match="revoked"):
        check_weaknesses(verdict, tolerate=("revoked",), ignore_advisories=("INTEL-SA-1",))


_CPU = Evidence(tee=TeeType.SIMULATION, quote=b"q")
_GPU = Evidence(tee=TeeType.NVIDIA_GPU, quote=b"g")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"tee": "tpm", "quote": b"q"}, "tee must be one of"),
        ({"tee": TeeType.SGX_DCAP, "quote": "cXVvdGU="}, "quote must be bytes"),
        ({"tee": TeeType.SGX_DCAP, "quote": b"q" * 70_000}, "quote must be at most"),
        ({"tee": TeeType.SGX_DCAP, "quote": b""}, "quote must not be empty"),
        ({"tee": TeeType.SGX_DCAP, "quote": b"q", "workload": "AB" * 16}, "lowercase hex"),
        ({"tee": TeeType.SGX_DCAP, "quote": b"q", "parts": (_CPU,)}, "only composite"),
        ({"tee": TeeType.COMPOSITE, "parts": (_CPU,)}, "needs a CPU part and at least one"),
        ({"tee": TeeType.COMPOSITE, "parts": (_GPU, _GPU)}, "not a CPU TEE"),
        ({"tee": TeeType.COMPOSITE, "parts": (_CPU, _CPU)}, "must be nvidia-gpu"),
        ({"tee": TeeType.COMPOSITE, "parts": (_CPU, "gpu")}, "parts must be evidence"),
        ({"tee": TeeType.COMPOSITE, "parts": (_CPU, _GPU), "quote": b"q"}, "not a quote"),
        (
            {"tee": TeeType.COMPOSITE, "parts": (_CPU.replace(workload="ab" * 16), _GPU)},
            "claimed on the composite envelope",
        ),
    ],
)
def test_an_envelope_made_in_python_is_checked_like_one_read_from_json(
    fields: dict[str, object], reason: str
) -> None:
    # A workload builds its evidence without pydantic: the dataclass holds the same rules.
    with pytest.raises(ValueError, match=reason):
        Evidence(**fields)  # type: ignore[arg-type]


def test_composite_envelope_json_has_parts_only_and_round_trips() -> None:
    composite = Evidence(tee=TeeType.COMPOSITE, parts=(_CPU, _GPU), workload="ab" * 16)
    assert composite.to_json_dict() == {
        "tee": "composite",
        "workload": "ab" * 16,
        "parts": [
            {"tee": "simulation", "quote": "cQ==", "collateral": None},
            {"tee": "nvidia-gpu", "quote": "Zw==", "collateral": None},
        ],
    }
    assert parse_evidence(composite.to_json()) == composite
