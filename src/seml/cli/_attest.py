"""`seml attest verify`: check TEE evidence offline and print the verdict as JSON."""

from __future__ import annotations

import datetime as dt
import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml.errors import AttestationError, UsageError

if TYPE_CHECKING:
    from seml.attest import Evidence, Verifier

__all__ = ["register"]


class _Tee(StrEnum):
    sgx = "sgx"
    tdx = "tdx"
    snp = "snp"
    azure_snp = "azure-snp"
    nvidia_gpu = "nvidia-gpu"
    simulation = "simulation"


_TEE_TYPES = {
    _Tee.sgx: "sgx-dcap",
    _Tee.tdx: "tdx-dcap",
    _Tee.snp: "snp",
    _Tee.azure_snp: "azure-snp",
    _Tee.nvidia_gpu: "nvidia-gpu",
    _Tee.simulation: "simulation",
}


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="attest",
        help=(
            "Verify TEE evidence offline: SGX/TDX DCAP quotes (dcap-qvl), AMD SEV-SNP reports, "
            "Azure SNP+vTPM, NVIDIA GPU SPDM evidence with RIMs, simulation evidence."
        ),
        no_args_is_help=True,
    )
    group.command("verify")(verify)
    app.add_typer(group)


def verify(
    quote: Annotated[
        Path,
        typer.Argument(
            metavar="EVIDENCE",
            help="Raw evidence (DCAP quote, SNP report, Azure HCL report, GPU SPDM report), or "
            "a JSON evidence envelope as a workload sends it.",
            dir_okay=False,
        ),
    ],
    tee: Annotated[
        _Tee | None,
        typer.Option(
            "--tee", help="Evidence type; default: recognised from the file (envelope, header)."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="Verify as of this time: Unix seconds or ISO 8601 (2025-06-01T00:00:00Z); "
            "default: now.",
        ),
    ] = None,
    collateral: Annotated[
        Path | None,
        typer.Option(
            "--collateral",
            help="SGX/TDX: collateral JSON (PCK CRLs, TCB info, QE identity) from Intel's PCS.",
            dir_okay=False,
        ),
    ] = None,
    certs: Annotated[
        list[Path] | None,
        typer.Option(
            "--certs",
            metavar="FILE",
            help="SNP/Azure: the VCEK or VLEK (PEM or DER), optionally then ASK/ASVK and ARK; "
            "GPU: the device chain, leaf first (PEM). Repeatable; default chains: AMD's and "
            "NVIDIA's roots shipped with seml.",
        ),
    ] = None,
    crl: Annotated[
        Path | None,
        typer.Option(
            "--crl",
            help="SNP/Azure: AMD's CRL for the product (from its KDS); without it revocation "
            "is reported unchecked.",
            dir_okay=False,
        ),
    ] = None,
    rim: Annotated[
        list[Path] | None,
        typer.Option(
            "--rim",
            metavar="FILE",
            help="GPU: a driver or VBIOS RIM (signed SWID XML) to compare measurements with. "
            "Repeatable; without RIMs measurements are reported unchecked.",
        ),
    ] = None,
    nonce: Annotated[
        str | None,
        typer.Option(
            "--nonce",
            metavar="HEX",
            help="Expected binding: the report data for SGX/TDX/SNP (zero-padded to 64 bytes), "
            "the vTPM quote nonce for azure-snp, the SPDM request nonce for nvidia-gpu.",
        ),
    ] = None,
    tpm_quote: Annotated[
        Path | None,
        typer.Option("--tpm-quote", help="Azure: the vTPM quote (TPMS_ATTEST).", dir_okay=False),
    ] = None,
    tpm_signature: Annotated[
        Path | None,
        typer.Option("--tpm-signature", help="Azure: the quote's signature.", dir_okay=False),
    ] = None,
    pcrs: Annotated[
        Path | None,
        typer.Option(
            "--pcrs",
            help="Azure: the 24 SHA-256 PCR values as JSON: a list of hex strings, or an object "
            "with that list under pcrs_sha256.",
            dir_okay=False,
        ),
    ] = None,
    tolerate: Annotated[
        list[str] | None,
        typer.Option(
            "--tolerate", help="A weakness to tolerate when judging acceptance (repeatable)."
        ),
    ] = None,
    ignore_advisory: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore-advisory",
            metavar="ADVISORY",
            help="An Intel advisory ID to ignore when judging acceptance (repeatable).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Also exit non-zero when the weaknesses are not accepted."),
    ] = False,
) -> None:
    """Verify EVIDENCE and print the verdict, TCB, measurements and weaknesses as JSON.

    Exits 5 when the evidence is invalid (bad signature, chain to another root, expired
    certificate or collateral, revoked, a nonce that is not ours). Everything is checked
    offline; what needs AMD's or NVIDIA's online services (CRL, OCSP, fetching RIMs) is used
    only when given as files, and reported as a weakness when missing.
    """
    from seml.attest import TeeType, check_weaknesses

    now = _time(at)
    raw = _read(quote, "evidence")
    expected = _hex(nonce, "--nonce") if nonce is not None else None
    evidence = _envelope(raw)
    if evidence is None:
        kind = TeeType(_TEE_TYPES[tee] if tee is not None else _detect(raw))
        evidence = _raw_evidence(kind, raw, collateral, certs, crl, tpm_quote, tpm_signature, pcrs)
    else:
        if tee is not None and evidence.tee.value != _TEE_TYPES[tee]:
            raise UsageError(
                f"--tee {tee.value} but the envelope in {quote} is {evidence.tee.value}"
            )
        given = [certs, collateral, tpm_quote, tpm_signature, pcrs]
        if any(x for x in given):
            raise UsageError("an envelope carries its own collateral: give only --crl/--rim")
    rims = [_read(p, "RIM") for p in rim or ()]
    crl_bytes = _read(crl, "CRL") if crl is not None else None
    verifier = _verifier(evidence.tee, expected, rims, crl_bytes)
    try:
        verdict = verifier.verify(evidence, now=now)
        if expected is not None and evidence.tee not in (TeeType.AZURE_SNP, TeeType.NVIDIA_GPU):
            _expect(verdict.report_data, expected)
    except AttestationError as e:
        typer.echo(json.dumps({"valid": False, "verified_at": now, "error": str(e)}, indent=2))
        raise
    reason = None
    try:
        check_weaknesses(verdict, tolerate=tolerate or (), ignore_advisories=ignore_advisory or ())
    except AttestationError as e:
        reason = str(e)
    out = {"valid": True, "verified_at": now, **verdict.to_json_dict()}
    out["accepted"] = reason is None
    if reason is not None:
        out["refusal"] = reason
    typer.echo(json.dumps(out, indent=2))
    if strict and reason is not None:
        raise AttestationError(reason)


def _time(at: str | None) -> int:
    if at is None:
        return int(time.time())
    if at.lstrip("-").isdigit():
        return int(at)
    try:
        when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--at {at!r} is neither Unix seconds nor an ISO 8601 time (2025-06-01T00:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise UsageError(f"{what} must be hex, got {text[:80]!r}") from None


def _expect(report_data: bytes, expected: bytes) -> None:
    if len(expected) > len(report_data):
        raise UsageError(f"--nonce is {len(expected)} bytes; the report data is {len(report_data)}")
    padded = expected + bytes(len(report_data) - len(expected))
    if report_data != padded:
        raise AttestationError(
            f"the evidence's report data {report_data.hex()} is not the expected "
            f"{padded.hex()} (--nonce): bound to something else"
        )


def _verifier(tee: object, nonce: bytes | None, rims: list[bytes], crl: bytes | None) -> Verifier:
    from seml.attest import (
        AzureSnpVerifier,
        NvidiaGpuVerifier,
        TeeType,
        default_verifier,
    )

    if tee is TeeType.AZURE_SNP:
        return AzureSnpVerifier(crl=crl, quote_nonce=nonce)
    if tee is TeeType.NVIDIA_GPU:
        return NvidiaGpuVerifier(nonce=nonce, rims=rims)
    return default_verifier(snp_crl=crl, rims=rims)


def _raw_evidence(
    tee: object,
    raw: bytes,
    collateral: Path | None,
    certs: list[Path] | None,
    crl: Path | None,
    tpm_quote: Path | None,
    tpm_signature: Path | None,
    pcrs: Path | None,
) -> Evidence:
    from seml.attest import (
        Evidence,
        TeeType,
        azure_collateral,
        gpu_collateral,
        pem_certificates,
        snp_collateral,
    )

    assert isinstance(tee, TeeType)  # noqa: S101 -- built from the enum just above
    bundle = pem_certificates(*(_read(p, "certificates") for p in certs or ()))
    if tee in (TeeType.SGX_DCAP, TeeType.TDX_DCAP, TeeType.SIMULATION):
        if certs:
            raise UsageError(f"--certs does not apply to {tee.value} evidence (use --collateral)")
        text = _read(collateral, "collateral").decode("utf-8", "replace") if collateral else None
        return Evidence(tee=tee, quote=raw, collateral=text)
    if not bundle:
        what = "the device chain" if tee is TeeType.NVIDIA_GPU else "the VCEK or VLEK"
        raise UsageError(f"{tee.value} evidence needs --certs with {what}")
    if tee is TeeType.NVIDIA_GPU:
        return Evidence(tee=tee, quote=raw, collateral=gpu_collateral(bundle))
    if tee is TeeType.SNP:
        return Evidence(tee=tee, quote=raw, collateral=snp_collateral(bundle))
    if tpm_quote is None or tpm_signature is None or pcrs is None:
        raise UsageError("azure-snp evidence needs --tpm-quote, --tpm-signature and --pcrs")
    return Evidence(
        tee=tee,
        quote=raw,
        collateral=azure_collateral(
            certs=bundle,
            tpm_quote=_read(tpm_quote, "vTPM quote"),
            tpm_signature=_read(tpm_signature, "vTPM quote signature"),
            pcrs=_pcr_values(pcrs),
        ),
    )


def _pcr_values(path: Path) -> list[bytes]:
    try:
        document = json.loads(_read(path, "PCR values"))
        values = document["pcrs_sha256"] if isinstance(document, dict) else document
        return [bytes.fromhex(v) for v in values]
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{path}: expected JSON hex PCR values ({e})") from e


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror or e}") from e


def _envelope(raw: bytes) -> Evidence | None:
    """The envelope if `raw` is JSON (a workload's evidence), else None (raw evidence)."""
    if not raw.lstrip().startswith(b"{"):
        return None
    from seml.attest import parse_evidence

    return parse_evidence(raw)


def _detect(raw: bytes) -> str:
    """The TEE type from the evidence's own header."""
    if raw[:4] == b"HCLA":
        return "azure-snp"
    if raw[:2] == b"\x11\xe0":
        return "nvidia-gpu"
    if len(raw) == 1184 and int.from_bytes(raw[:4], "little") in (2, 3, 4, 5):
        return "snp"
    if len(raw) < 8:
        raise AttestationError(f"evidence is too short to recognise ({len(raw)} bytes)")
    tee_type = int.from_bytes(raw[4:8], "little")
    if tee_type == 0x00:
        return "sgx-dcap"
    if tee_type == 0x81:
        return "tdx-dcap"
    raise AttestationError(
        f"unrecognised evidence (DCAP tee type {tee_type:#x}); give --tee snp|azure-snp|..."
    )
