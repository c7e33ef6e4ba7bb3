"""`seml attest verify`: check a quote offline and print the verdict as JSON."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml.errors import AttestationError, UsageError

if TYPE_CHECKING:
    from seml.attest import Evidence

__all__ = ["register"]


class _Tee(StrEnum):
    sgx = "sgx"
    tdx = "tdx"
    simulation = "simulation"


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="attest",
        help="Verify TEE evidence (SGX/TDX DCAP quotes with dcap-qvl; simulation evidence).",
        no_args_is_help=True,
    )
    group.command("verify")(verify)
    app.add_typer(group)


def verify(
    quote: Annotated[
        Path,
        typer.Argument(
            help="A raw DCAP quote (binary), or a JSON evidence envelope as a workload sends it.",
            dir_okay=False,
        ),
    ],
    collateral: Annotated[
        Path | None,
        typer.Option(
            "--collateral",
            help="Collateral JSON (PCK CRLs, TCB info, QE identity) as Intel's PCS serves it.",
            dir_okay=False,
        ),
    ] = None,
    at: Annotated[
        int | None,
        typer.Option("--at", help="Verify as of this time (Unix seconds); default: now."),
    ] = None,
    tee: Annotated[
        _Tee | None,
        typer.Option(
            "--tee", help="Evidence type; default: read from the quote header or envelope."
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
    """Verify QUOTE and print the verdict, TCB status, advisories and measurements as JSON.

    Exits non-zero when the evidence is invalid (bad signature, expired collateral, revoked).
    """
    from seml.attest import Evidence, TeeType, check_weaknesses, default_verifier

    now = int(time.time()) if at is None else at
    raw = _read(quote, "quote")
    evidence = _envelope(raw)
    if evidence is None:
        detected = _detect(raw) if tee is None else _TEE_TYPES[tee]
        evidence = Evidence(tee=TeeType(detected), quote=raw)
    elif tee is not None and evidence.tee.value != _TEE_TYPES[tee]:
        raise UsageError(f"--tee {tee.value} but the envelope in {quote} is {evidence.tee.value}")
    if collateral is not None:
        text = _read(collateral, "collateral").decode("utf-8", errors="replace")
        evidence = evidence.model_copy(update={"collateral": text})
    try:
        verdict = default_verifier().verify(evidence, now=now)
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


_TEE_TYPES = {_Tee.sgx: "sgx-dcap", _Tee.tdx: "tdx-dcap", _Tee.simulation: "simulation"}


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror or e}") from e


def _envelope(raw: bytes) -> Evidence | None:
    """The envelope if `raw` is JSON (a workload's evidence), else None (a raw quote)."""
    if not raw.lstrip().startswith(b"{"):
        return None
    from seml.attest import parse_evidence

    return parse_evidence(raw)


def _detect(raw: bytes) -> str:
    """The TEE type from a DCAP quote header (tee_type at offset 4, little-endian)."""
    if len(raw) < 8:
        raise AttestationError(f"quote is too short to be a DCAP quote ({len(raw)} bytes)")
    tee_type = int.from_bytes(raw[4:8], "little")
    if tee_type == 0x00:
        return "sgx-dcap"
    if tee_type == 0x81:
        return "tdx-dcap"
    raise AttestationError(f"unknown DCAP tee type {tee_type:#x} in the quote header")
