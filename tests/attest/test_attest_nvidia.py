"""NVIDIA GPU evidence: the recorded Hopper and Blackwell SPDM reports, their README's negative
cases, NVIDIA's signed test RIMs (authentic, but for other versions), and the online services
as an explicit parameter."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from _fake_hw import NOW, FakeGpu
from seml.attest import (
    Evidence,
    NvidiaGpuVerifier,
    SimulatedGpuProvider,
    TeeType,
    compare_measurements,
    default_verifier,
    gpu_collateral,
    parse_gpu_report,
    verify_gpu_report,
    verify_rim,
)
from seml.attest._x509 import Cert
from seml.errors import AttestationError
from vectors.evidence import (
    BLACKWELL,
    GPU_VECTORS,
    HOPPER,
    HOPPER_RIMS,
    VERIFY_AT,
    GpuVector,
    vector,
)

AFTER_RIM_SIGNER_EXPIRY = 1767225600  # 2026-01-01: the L4 RIM signers expired in June 2025


def _envelope(report: bytes, chain: bytes) -> Evidence:
    return Evidence(tee=TeeType.NVIDIA_GPU, quote=report, collateral=gpu_collateral(chain))


@pytest.mark.parametrize("v", GPU_VECTORS, ids=lambda v: v.name)
def test_recorded_evidence_verifies_with_the_expected_values(v: GpuVector) -> None:
    verifier = NvidiaGpuVerifier(nonce=bytes.fromhex(v.nonce))
    verdict = verifier.verify(_envelope(v.report(), v.chain()), now=VERIFY_AT)
    assert verdict.tee is TeeType.NVIDIA_GPU
    assert verdict.report_data.hex() == v.nonce
    assert verdict.details["responder_nonce"] == v.responder_nonce
    assert verdict.details["driver_version"] == v.driver
    assert verdict.details["vbios_version"] == v.vbios
    assert verdict.details["fwid"] == v.fwid
    assert verdict.details["measurement_blocks"] == "64"
    # Offline and without RIMs: both gaps are named, never skipped silently.
    assert verdict.weaknesses == {"revocation-unchecked", "measurements-unchecked"}
    assert "needs NVIDIA's OCSP service" in verdict.details["revocation"]
    assert "no RIMs given" in verdict.details["measurements"]


def test_flipped_measurement_byte() -> None:
    report = bytearray(HOPPER.report())
    report[80] ^= 0x01  # inside measurement block 1
    with pytest.raises(AttestationError, match="GPU SPDM signature is invalid"):
        verify_gpu_report(bytes(report), certs=HOPPER.chain(), now=VERIFY_AT)


def test_wrong_nonce() -> None:
    with pytest.raises(AttestationError, match=r"answers nonce 931d8dd0.*, not ours"):
        verify_gpu_report(HOPPER.report(), certs=HOPPER.chain(), nonce=b"\x01" * 32, now=VERIFY_AT)


def test_hopper_report_with_the_blackwell_leaf() -> None:
    with pytest.raises(AttestationError, match="not signed by GB100 A01 GSP FMC LF"):
        verify_gpu_report(HOPPER.report(), certs=BLACKWELL.chain(), now=VERIFY_AT)


def test_chain_against_a_foreign_pinned_root() -> None:
    fake = FakeGpu()
    root_pem, root_fp = fake.device_root
    with pytest.raises(
        AttestationError, match="GPU device chain ends in NVIDIA Device Identity CA"
    ):
        verify_gpu_report(
            HOPPER.report(), certs=HOPPER.chain(), root=root_pem, root_fingerprint=root_fp, now=NOW
        )
    # And the made-up GPU is refused against NVIDIA's real root.
    with pytest.raises(AttestationError, match="ends in Fake Device Identity CA"):
        verify_gpu_report(fake.report(bytes(32)), certs=fake.chain, now=NOW)


def _rims() -> list[bytes]:
    return [vector("nvidia", name) for name in HOPPER_RIMS]


def test_rims_are_authentic_offline() -> None:
    driver, vbios = (verify_rim(x, now=VERIFY_AT) for x in _rims())
    assert (driver.kind, driver.version, driver.product) == ("driver", "545.00", "GH100")
    assert (vbios.kind, vbios.version) == ("vbios", "96.00.5E.00.01")
    assert driver.signer == vbios.signer == "HCC RIM L4 Signer"
    assert driver.chain[-1].name == "NVIDIA CoRIM signing Root CA"
    assert sorted(vbios.golden) == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]


def test_tampered_rim_is_refused() -> None:
    xml = _rims()[0].replace(b"0e0ee161b59bf124", b"0e0ee161b59bf125")
    with pytest.raises(AttestationError, match="RIM signature is invalid"):
        verify_rim(xml, now=VERIFY_AT)


def test_rim_signer_past_its_expiry() -> None:
    with pytest.raises(AttestationError, match="RIM signing HCC RIM L4 Signer has expired"):
        verify_rim(_rims()[0], now=AFTER_RIM_SIGNER_EXPIRY)


def test_rim_against_a_foreign_root() -> None:
    root_pem, root_fp = FakeGpu().device_root
    with pytest.raises(AttestationError, match="RIM signing chain ends in NVIDIA CoRIM"):
        verify_rim(_rims()[0], now=VERIFY_AT, root=root_pem, root_fingerprint=root_fp)


def test_measurement_comparison_reports_each_mismatching_index() -> None:
    report = parse_gpu_report(HOPPER.report())
    comparison = compare_measurements(report, [verify_rim(x, now=VERIFY_AT) for x in _rims()])
    # The README's finding with NVIDIA's own verifier: mismatch at 1, 2, 3, 7, 9, 11, 21, ...
    assert comparison.mismatches[:7] == (1, 2, 3, 7, 9, 11, 21)
    assert set(comparison.mismatches) <= set(comparison.checked)
    assert 0 in comparison.checked and 0 not in comparison.mismatches
    assert comparison.problems == (
        "the driver RIM is for version 545.00, the GPU runs 550.90.07",
        "the vbios RIM is for version 96.00.5E.00.01, the GPU runs 96.00.9f.00.01",
    )
    assert not comparison.ok


def test_verifier_refuses_measurements_that_differ_from_the_rims() -> None:
    verifier = NvidiaGpuVerifier(rims=_rims())
    with pytest.raises(AttestationError, match=r"differ from the RIMs at indexes 1, 2, 3, 7, 9"):
        verifier.verify(_envelope(HOPPER.report(), HOPPER.chain()), now=VERIFY_AT)


class _Services:
    """NVIDIA's online services, stood in for: records what was asked."""

    def __init__(self, revoked: str | None = None, rims: Sequence[bytes] = ()) -> None:
        self.revoked = revoked
        self.rims = list(rims)
        self.checked: list[str] = []

    def check_revocation(self, chain: Sequence[Cert], *, now: int) -> None:
        for cert in chain:
            self.checked.append(cert.name)
            if cert.name == self.revoked:
                raise AttestationError(f"{cert.name} is revoked (OCSP)")

    def fetch_rims(self, report: object) -> list[bytes]:
        return self.rims


def test_online_services_are_asked_when_given() -> None:
    services = _Services()
    verdict = NvidiaGpuVerifier(services=services).verify(
        _envelope(BLACKWELL.report(), BLACKWELL.chain()), now=VERIFY_AT
    )
    assert "revocation-unchecked" not in verdict.weaknesses
    assert services.checked[0] == "GB100 A01 GSP FMC LF"
    with pytest.raises(AttestationError, match="GSP BROM is revoked"):
        NvidiaGpuVerifier(services=_Services(revoked="GB100 A01 GSP BROM")).verify(
            _envelope(BLACKWELL.report(), BLACKWELL.chain()), now=VERIFY_AT
        )
    # RIMs fetched online are verified and compared like any others.
    with pytest.raises(AttestationError, match="differ from the RIMs"):
        NvidiaGpuVerifier(services=_Services(rims=_rims())).verify(
            _envelope(HOPPER.report(), HOPPER.chain()), now=VERIFY_AT
        )


def test_simulated_gpu_evidence_is_labelled() -> None:
    nonce = bytes(range(32))
    (evidence,) = SimulatedGpuProvider().gpu_evidence(nonce)
    verdict = default_verifier().verify(evidence, now=NOW)
    assert verdict.weaknesses == {"simulation"}
    assert verdict.report_data == nonce
    assert "proves nothing" in verdict.details["note"]
    with pytest.raises(AttestationError, match="not ours"):
        NvidiaGpuVerifier(nonce=bytes(32)).verify(evidence, now=NOW)
    altered = evidence.replace(quote=evidence.quote[:-2] + b"x}")
    with pytest.raises(AttestationError, match="invalid"):
        default_verifier().verify(altered, now=NOW)


@pytest.mark.parametrize(
    ("cut", "reason"),
    [(10, "truncated"), (4117 - 20, "truncated"), (37, "truncated")],
)
def test_truncated_evidence(cut: int, reason: str) -> None:
    with pytest.raises(AttestationError, match=reason):
        parse_gpu_report(HOPPER.report()[:cut])
