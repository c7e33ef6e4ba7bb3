"""SEV-SNP reports: the recorded Milan and Genoa vectors, every negative case of their README,
and the CRL / pinning paths on a stand-in AMD hierarchy."""

from __future__ import annotations

import pytest

from _fake_hw import NOW, FakeAmd, other_rsa_key, pem
from seml.attest import (
    AMD_ARK_FINGERPRINTS,
    Evidence,
    SnpVerifier,
    TeeType,
    check_weaknesses,
    default_verifier,
    parse_report,
    snp_collateral,
    verify_report,
)
from seml.attest._x509 import Scheme, check_issued_by, load_certs
from seml.errors import AttestationError
from vectors.evidence import (
    AFTER_VLEK_EXPIRY,
    GENOA_AZURE,
    MILAN_VCEK,
    MILAN_VLEK,
    SNP_VECTORS,
    VERIFY_AT,
    SnpVector,
    vector,
)


@pytest.mark.parametrize("v", SNP_VECTORS, ids=lambda v: v.name)
def test_recorded_report_verifies_with_the_expected_values(v: SnpVector) -> None:
    result = verify_report(v.report(), certs=v.key(), now=VERIFY_AT)
    verdict = result.verdict()
    assert verdict.tee is TeeType.SNP
    assert verdict.measurement == v.measurement
    assert verdict.report_data.hex() == v.report_data
    assert result.report.version == v.version
    assert result.key_kind == v.key_kind
    assert verdict.details["reported_tcb"] == v.tcb
    assert verdict.details["chip_id"] == v.chip_id
    assert verdict.details["policy"] == v.policy
    assert verdict.details["vmpl"] == str(v.vmpl)
    assert verdict.details["firmware"] == v.firmware
    assert verdict.details["product"] == v.product
    assert verdict.details["debug"] == "false"
    # No CRL was given: said in the verdict, never silently skipped.
    assert verdict.weaknesses == {"revocation-unchecked"}
    assert "no CRL supplied" in verdict.details["revocation"]


def test_vlek_details_and_current_tcb() -> None:
    verdict = verify_report(MILAN_VLEK.report(), certs=MILAN_VLEK.key(), now=VERIFY_AT).verdict()
    assert verdict.details["csp"] == "CN=cc-us-east-2.amazonaws.com"
    assert verdict.details["current_tcb"] == "4/0/24/220"
    assert "platform" not in verdict.details  # chip id masked: no machine identity
    v2 = parse_report(MILAN_VCEK.report())
    assert v2.cpuid is None and v2.product is None  # v2 has no CPUID: product from the VCEK


def test_envelope_through_the_default_verifier() -> None:
    evidence = Evidence(
        tee=TeeType.SNP, quote=MILAN_VCEK.report(), collateral=snp_collateral(MILAN_VCEK.key())
    )
    verdict = default_verifier().verify(evidence, now=VERIFY_AT)
    assert verdict.measurement == MILAN_VCEK.measurement
    assert verdict.details["platform"] == "snp-chip:" + MILAN_VCEK.chip_id
    with pytest.raises(AttestationError, match="revocation-unchecked"):
        check_weaknesses(verdict, tolerate=(), ignore_advisories=())
    check_weaknesses(verdict, tolerate=("revocation-unchecked",), ignore_advisories=())


@pytest.mark.parametrize(("offset", "what"), [(0x90, "MEASUREMENT"), (0x2A0, "signature r")])
def test_flipped_byte_is_refused(offset: int, what: str) -> None:
    report = bytearray(MILAN_VCEK.report())
    report[offset] ^= 0x01
    with pytest.raises(AttestationError, match="SNP report signature is invalid"):
        verify_report(bytes(report), certs=MILAN_VCEK.key(), now=VERIFY_AT)


def test_genoa_vcek_for_the_milan_report() -> None:
    milan_chain = vector("snp", "milan_ask_ark_asvk.pem")
    with pytest.raises(AttestationError, match="issued by SEV-Genoa, which is not among"):
        verify_report(
            MILAN_VCEK.report(), certs=GENOA_AZURE.key(), chain=milan_chain, now=VERIFY_AT
        )
    # With every AMD chain at hand the Genoa VCEK chains fine, and the signature fails.
    with pytest.raises(AttestationError, match="SNP report signature is invalid"):
        verify_report(MILAN_VCEK.report(), certs=GENOA_AZURE.key(), now=VERIFY_AT)


def test_milan_vcek_against_the_genoa_chain() -> None:
    genoa_chain = vector("snp", "genoa_ask_ark_asvk.pem")
    with pytest.raises(AttestationError, match="issued by SEV-Milan, which is not among"):
        verify_report(MILAN_VCEK.report(), certs=MILAN_VCEK.key(), chain=genoa_chain, now=VERIFY_AT)


def test_vlek_against_the_ask_instead_of_the_asvk() -> None:
    ask_and_ark = pem_subset(vector("snp", "milan_ask_ark_asvk.pem"), "SEV-Milan", "ARK-Milan")
    with pytest.raises(AttestationError, match="issued by SEV-VLEK-Milan, which is not among"):
        verify_report(MILAN_VLEK.report(), certs=MILAN_VLEK.key(), chain=ask_and_ark, now=VERIFY_AT)
    # And at signature level: the ASK did not sign the VLEK.
    (vlek,) = load_certs(MILAN_VLEK.key(), "VLEK")
    ask = next(c for c in load_certs(ask_and_ark, "chain") if c.name == "SEV-Milan")
    with pytest.raises(AttestationError, match="not by SEV-Milan"):
        check_issued_by(vlek, ask, Scheme.RSA_PSS_SHA384, "VLEK")


def pem_subset(bundle: bytes, *names: str) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(
        c.cert.public_bytes(Encoding.PEM) for c in load_certs(bundle, "chain") if c.name in names
    )


def test_vlek_past_its_expiry() -> None:
    with pytest.raises(
        AttestationError, match=r"VLEK SEV-VLEK has expired: valid until 2025-12-10"
    ):
        verify_report(MILAN_VLEK.report(), certs=MILAN_VLEK.key(), now=AFTER_VLEK_EXPIRY)


def test_vcek_with_a_flipped_tbs_byte() -> None:
    der = bytearray(MILAN_VCEK.key())
    tbs = load_certs(bytes(der), "VCEK")[0].cert.tbs_certificate_bytes
    at = bytes(der).index(tbs) + len(tbs) - 40  # inside the extensions, still parseable
    der[at] ^= 0x01
    with pytest.raises(AttestationError, match="signature by SEV-Milan is invalid"):
        verify_report(MILAN_VCEK.report(), certs=bytes(der), now=VERIFY_AT)


def test_reported_tcb_against_another_vceks_tcb() -> None:
    amd = FakeAmd(tcb=(3, 0, 8, 115))
    report = amd.report(bytes(64), tcb=(3, 0, 8, 114))  # signed by the chip, TCB not the VCEK's
    with pytest.raises(
        AttestationError, match=r"REPORTED_TCB 3/0/8/114 differs from the TCB 3/0/8/115"
    ):
        verify_report(report, certs=pem(amd.vcek), chain=amd.chain, roots=amd.roots, now=NOW)


def test_chip_id_must_be_the_vceks() -> None:
    amd = FakeAmd()
    other = FakeAmd(chip_id=b"\x99" * 64, label="amd")  # same keys, a VCEK naming another chip
    report = amd.report(bytes(64))
    with pytest.raises(AttestationError, match="CHIP_ID differs from the VCEK's hardware id"):
        verify_report(report, certs=pem(other.vcek), chain=amd.chain, roots=amd.roots, now=NOW)


def test_chain_to_a_root_that_is_not_pinned() -> None:
    amd = FakeAmd()
    report = amd.report(bytes(64))
    with pytest.raises(AttestationError, match="is not AMD's pinned ARK for Milan"):
        verify_report(report, certs=pem(amd.vcek), chain=amd.chain, now=NOW)
    assert amd.roots["Milan"] != AMD_ARK_FINGERPRINTS["Milan"]
    verify_report(report, certs=pem(amd.vcek), chain=amd.chain, roots=amd.roots, now=NOW)


def test_crl_from_the_ark_revokes_the_listed_vcek() -> None:
    amd = FakeAmd()
    report = amd.report(bytes(64))
    args = {"certs": pem(amd.vcek), "chain": amd.chain, "roots": amd.roots, "now": NOW}
    clean = verify_report(report, crl=amd.crl([12345]), **args)  # type: ignore[arg-type]
    assert clean.revocation_checked and "revocation-unchecked" not in clean.verdict().weaknesses
    with pytest.raises(
        AttestationError, match=r"SEV-VCEK \(serial 7\) is revoked by CRL of ARK-Milan"
    ):
        verify_report(report, crl=amd.crl([amd.vcek_serial]), **args)  # type: ignore[arg-type]


def test_crl_signed_by_the_wrong_key_is_refused() -> None:
    amd = FakeAmd()
    forged = amd.crl([], signer=other_rsa_key())
    with pytest.raises(
        AttestationError, match="CRL of ARK-Milan: signature by ARK-Milan is invalid"
    ):
        verify_report(
            amd.report(bytes(64)),
            certs=pem(amd.vcek),
            chain=amd.chain,
            roots=amd.roots,
            crl=forged,
            now=NOW,
        )
    # A CRL in the real ARK's name, signed by another key: refused against the real chain.
    ark = next(
        c
        for c in load_certs(vector("snp", "milan_ask_ark_asvk.pem"), "chain")
        if c.name == "ARK-Milan"
    )
    forged = amd.crl([], signer=other_rsa_key(), issuer=ark.cert.subject)
    with pytest.raises(AttestationError, match="signature by ARK-Milan is invalid"):
        verify_report(MILAN_VCEK.report(), certs=MILAN_VCEK.key(), crl=forged, now=VERIFY_AT)


def test_expired_crl_is_refused() -> None:
    import datetime as dt

    amd = FakeAmd()
    stale = amd.crl([], next_update=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(AttestationError, match="CRL of ARK-Milan has expired"):
        verify_report(
            amd.report(bytes(64)),
            certs=pem(amd.vcek),
            chain=amd.chain,
            roots=amd.roots,
            crl=stale,
            now=NOW,
        )


def test_debug_policy_is_a_weakness() -> None:
    amd = FakeAmd()
    report = amd.report(bytes(64), policy=0x30000 | 1 << 19)
    verdict = SnpVerifier(roots=amd.roots, chain=amd.chain).verify(
        Evidence(tee=TeeType.SNP, quote=report, collateral=snp_collateral(pem(amd.vcek))),
        now=NOW,
    )
    assert verdict.weaknesses == {"debug", "revocation-unchecked"}
    assert verdict.details["debug"] == "true"


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (b"\x00" * 100, "an SEV-SNP attestation report is 1184 bytes"),
        ((7).to_bytes(4, "little") + bytes(1180), "version 7 is not supported"),
    ],
)
def test_malformed_reports(report: bytes, reason: str) -> None:
    with pytest.raises(AttestationError, match=reason):
        verify_report(report, certs=MILAN_VCEK.key(), now=VERIFY_AT)


def test_envelope_without_certificates() -> None:
    evidence = Evidence(tee=TeeType.SNP, quote=MILAN_VCEK.report())
    with pytest.raises(AttestationError, match="snp evidence carries no collateral"):
        default_verifier().verify(evidence, now=VERIFY_AT)
