"""Azure confidential VM evidence (HCL report + vTPM quote): the recorded Genoa vector and its
README's negative cases (flipped claims, quote or PCR, a foreign nonce)."""

from __future__ import annotations

import hashlib

import pytest

from seml.attest import (
    AzureSnpVerifier,
    Evidence,
    TeeType,
    azure_collateral,
    default_verifier,
)
from seml.attest._azure import parse_hcl_report, parse_tpm_quote
from seml.errors import AttestationError
from vectors.evidence import AZURE_QUOTE_NONCE, GENOA_AZURE, VERIFY_AT, azure_pcrs, vector

CLAIMS_AT = 0x20 + 1184 + 20


def _evidence(
    *,
    hcl: bytes | None = None,
    quote: bytes | None = None,
    signature: bytes | None = None,
    pcrs: list[bytes] | None = None,
) -> Evidence:
    return Evidence(
        tee=TeeType.AZURE_SNP,
        quote=hcl if hcl is not None else vector("snp", "genoa_azure_hcl_report.bin"),
        collateral=azure_collateral(
            certs=GENOA_AZURE.key(),
            tpm_quote=quote
            if quote is not None
            else vector("snp", "genoa_azure_tpm_quote_msg.bin"),
            tpm_signature=signature
            if signature is not None
            else vector("snp", "genoa_azure_tpm_quote_sig.bin"),
            pcrs=pcrs if pcrs is not None else azure_pcrs(),
        ),
    )


def _verify(evidence: Evidence) -> object:
    return AzureSnpVerifier(quote_nonce=AZURE_QUOTE_NONCE).verify(evidence, now=VERIFY_AT)


def test_recorded_vector_verifies() -> None:
    verdict = AzureSnpVerifier(quote_nonce=AZURE_QUOTE_NONCE).verify(_evidence(), now=VERIFY_AT)
    assert verdict.tee is TeeType.AZURE_SNP
    assert verdict.measurement == GENOA_AZURE.measurement
    assert verdict.details["reported_tcb"] == GENOA_AZURE.tcb
    assert verdict.details["tpm_nonce"] == AZURE_QUOTE_NONCE.hex()
    assert verdict.details["pcr0"] == azure_pcrs()[0].hex()
    assert verdict.details["vm_secure_boot"] == "true"
    assert verdict.report_data == bytes(64)  # the claims' user-data (zeros in this recording)
    assert verdict.weaknesses == {"revocation-unchecked"}


def test_report_data_is_the_hash_of_the_claims() -> None:
    hcl = parse_hcl_report(vector("snp", "genoa_azure_hcl_report.bin"))
    assert hcl.claims == vector("snp", "genoa_azure_hcl_report.bin")[CLAIMS_AT : CLAIMS_AT + 1200]
    assert GENOA_AZURE.report_data.startswith(hashlib.sha256(hcl.claims).hexdigest())
    quote = parse_tpm_quote(vector("snp", "genoa_azure_tpm_quote_msg.bin"))
    assert quote.pcrs == tuple(range(24))
    assert quote.pcr_digest == hashlib.sha256(b"".join(azure_pcrs())).digest()


def test_flipped_runtime_claims_byte() -> None:
    hcl = bytearray(vector("snp", "genoa_azure_hcl_report.bin"))
    hcl[CLAIMS_AT + 100] ^= 0x01
    with pytest.raises(AttestationError, match="does not bind the HCL runtime claims"):
        _verify(_evidence(hcl=bytes(hcl)))


def test_flipped_quote_byte() -> None:
    quote = bytearray(vector("snp", "genoa_azure_tpm_quote_msg.bin"))
    quote[-5] ^= 0x01
    with pytest.raises(AttestationError, match="vTPM quote's signature is invalid"):
        _verify(_evidence(quote=bytes(quote)))


def test_flipped_signature_byte() -> None:
    signature = bytearray(vector("snp", "genoa_azure_tpm_quote_sig.bin"))
    signature[10] ^= 0x01
    with pytest.raises(AttestationError, match="vTPM quote's signature is invalid"):
        _verify(_evidence(signature=bytes(signature)))


def test_altered_pcr() -> None:
    pcrs = azure_pcrs()
    pcrs[7] = bytes(32)
    with pytest.raises(AttestationError, match="do not match the vTPM quote's PCR digest"):
        _verify(_evidence(pcrs=pcrs))


def test_quote_nonce_must_be_ours() -> None:
    with pytest.raises(AttestationError, match=r"vTPM quote's nonce 0218488b.* is not ours"):
        AzureSnpVerifier(quote_nonce=b"\x00" * 48).verify(_evidence(), now=VERIFY_AT)
    # Without an explicit nonce the quote must answer the one derived from the user-data.
    with pytest.raises(AttestationError, match="is not ours"):
        default_verifier().verify(_evidence(), now=VERIFY_AT)


def test_flipped_snp_report_byte_inside_the_hcl_report() -> None:
    hcl = bytearray(vector("snp", "genoa_azure_hcl_report.bin"))
    hcl[0x20 + 0x90] ^= 0x01
    with pytest.raises(AttestationError, match="SNP report signature is invalid"):
        _verify(_evidence(hcl=bytes(hcl)))


def test_not_an_hcl_report() -> None:
    with pytest.raises(AttestationError, match="not an Azure HCL report"):
        _verify(_evidence(hcl=GENOA_AZURE.report()))
