"""`seml attest verify --tee snp|azure-snp|nvidia-gpu` on the recorded vectors, through the real
entry point: verdict JSON on stdout, one-line reason and exit 5 when refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seml.cli import main
from vectors import vector_path
from vectors.evidence import (
    AZURE_QUOTE_NONCE,
    GENOA_AZURE,
    GPU_VECTORS,
    HOPPER,
    HOPPER_RIMS,
    MILAN_VCEK,
    MILAN_VLEK,
    GpuVector,
)

AT = "2025-06-01T00:00:00Z"


def _run(
    capsys: pytest.CaptureFixture[str], *args: str | Path
) -> tuple[int, dict[str, object], str]:
    code = main(["attest", "verify", *map(str, args)])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}, captured.err


def _snp(name: str) -> Path:
    return vector_path("snp", name)


def _nv(name: str) -> Path:
    return vector_path("nvidia", name)


def test_snp_vcek(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        _snp("milan_vcek_report.bin"),
        "--tee",
        "snp",
        "--certs",
        _snp("milan_vcek.der"),
        "--at",
        AT,
        "--nonce",
        MILAN_VCEK.report_data,
    )
    assert code == 0
    assert out["valid"] is True and out["tee"] == "snp"
    assert out["measurement"] == MILAN_VCEK.measurement
    assert out["weaknesses"] == ["revocation-unchecked"]
    assert out["accepted"] is False  # revocation unchecked, not tolerated


def test_snp_strict_acceptance(capsys: pytest.CaptureFixture[str]) -> None:
    base = (
        _snp("milan_vcek_report.bin"),
        "--certs",
        _snp("milan_vcek.der"),
        "--at",
        "1748736000",
        "--strict",
    )
    code, out, err = _run(capsys, *base)
    assert (code, out["accepted"]) == (5, False)
    assert "does not tolerate: revocation-unchecked" in err
    code, out, _ = _run(capsys, *base, "--tolerate", "revocation-unchecked")
    assert (code, out["accepted"]) == (0, True)


def test_snp_vlek_with_its_chain(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        _snp("milan_vlek_report.bin"),
        "--tee",
        "snp",
        "--certs",
        _snp("milan_vlek.der"),
        "--certs",
        _snp("milan_ask_ark_asvk.pem"),
        "--at",
        AT,
    )
    assert code == 0
    assert out["measurement"] == MILAN_VLEK.measurement
    assert out["details"]["signing_key"] == "VLEK"  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("milan_vlek_report.bin", "milan_vlek.der", "2026-01-01"), "VLEK SEV-VLEK has expired"),
        (("milan_vcek_report.bin", "genoa_azure_vcek.pem", AT), "SNP report signature is invalid"),
    ],
)
def test_snp_refused_exits_5_with_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, str, str], reason: str
) -> None:
    report, cert, at = args
    code, out, err = _run(capsys, _snp(report), "--tee", "snp", "--certs", _snp(cert), "--at", at)
    assert code == 5
    assert out["valid"] is False and reason in str(out["error"])
    assert err.count("\n") == 1 and err.startswith("seml: error: ") and reason in err


def test_snp_wrong_nonce(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        capsys,
        _snp("milan_vcek_report.bin"),
        "--certs",
        _snp("milan_vcek.der"),
        "--at",
        AT,
        "--nonce",
        "00" * 64,
    )
    assert code == 5
    assert "is not the expected" in err


def test_snp_flipped_measurement(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = bytearray(MILAN_VCEK.report())
    report[0x90] ^= 1
    (tmp_path / "r.bin").write_bytes(bytes(report))
    code, _, err = _run(
        capsys, tmp_path / "r.bin", "--tee", "snp", "--certs", _snp("milan_vcek.der"), "--at", AT
    )
    assert code == 5 and "SNP report signature is invalid" in err


def _azure(*extra: str | Path) -> list[str | Path]:
    return [
        _snp("genoa_azure_hcl_report.bin"),
        "--tee",
        "azure-snp",
        "--certs",
        _snp("genoa_azure_vcek.pem"),
        "--tpm-quote",
        _snp("genoa_azure_tpm_quote_msg.bin"),
        "--tpm-signature",
        _snp("genoa_azure_tpm_quote_sig.bin"),
        "--pcrs",
        _snp("genoa_azure_tpm_pcrs.json"),
        "--at",
        AT,
        *extra,
    ]


def test_azure(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, *_azure("--nonce", AZURE_QUOTE_NONCE.hex()))
    assert code == 0
    assert out["tee"] == "azure-snp" and out["measurement"] == GENOA_AZURE.measurement
    assert out["details"]["pcr7"]  # type: ignore[index]
    code, _, err = _run(capsys, *_azure("--nonce", "11" * 48))
    assert code == 5 and "is not ours" in err
    without_pcrs = [a for a in _azure() if a not in ("--pcrs", _snp("genoa_azure_tpm_pcrs.json"))]
    code, _, err = _run(capsys, *without_pcrs)
    assert code == 2 and "needs --tpm-quote, --tpm-signature and --pcrs" in err


@pytest.mark.parametrize("v", GPU_VECTORS, ids=lambda v: v.name)
def test_gpu(capsys: pytest.CaptureFixture[str], v: GpuVector) -> None:
    code, out, _ = _run(
        capsys,
        _nv(f"{v.name}_report.bin"),
        "--certs",
        _nv(f"{v.name}_certchain.pem"),
        "--nonce",
        v.nonce,
        "--at",
        AT,
    )
    assert code == 0
    assert out["tee"] == "nvidia-gpu"
    assert out["details"]["driver_version"] == v.driver  # type: ignore[index]
    assert out["weaknesses"] == ["measurements-unchecked", "revocation-unchecked"]


def test_gpu_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    report = _nv("hopper_report.bin")
    code, _, err = _run(
        capsys, report, "--tee", "nvidia-gpu", "--certs", _nv("blackwell_certchain.pem"), "--at", AT
    )
    assert code == 5 and "GPU SPDM signature is invalid" in err
    code, _, err = _run(
        capsys, report, "--certs", _nv("hopper_certchain.pem"), "--nonce", "00" * 32, "--at", AT
    )
    assert code == 5 and "not ours" in err
    rims = [a for name in HOPPER_RIMS for a in ("--rim", str(_nv(name)))]
    code, _, err = _run(capsys, report, "--certs", _nv("hopper_certchain.pem"), *rims, "--at", AT)
    assert code == 5 and "differ from the RIMs at indexes 1, 2, 3, 7, 9, 11, 21" in err
    assert HOPPER.driver in err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, _snp("milan_vcek_report.bin"), "--tee", "snp", "--at", AT)
    assert code == 2 and "needs --certs with the VCEK or VLEK" in err
    code, _, err = _run(
        capsys, _snp("milan_vcek_report.bin"), "--certs", _snp("milan_vcek.der"), "--at", "June"
    )
    assert code == 2 and "neither Unix seconds nor an ISO 8601 time" in err
