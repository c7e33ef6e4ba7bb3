"""`seml attest verify` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seml.attest import SimulationProvider, report_data_for
from seml.cli import main
from vectors import vector_path
from vectors.dcap import SGX, TDX, TDX_RTMR0


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, dict[str, object]]:
    code = main(["attest", "verify", *map(str, args)])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def _files(name: str) -> tuple[Path, Path]:
    return vector_path("quotes", f"{name}_quote"), vector_path(
        "quotes", f"{name}_quote_collateral.json"
    )


def test_sgx_verdict_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    quote, collateral = _files("sgx")
    code, out = _run(capsys, quote, "--collateral", collateral, "--at", SGX.verify_at)
    assert code == 0
    assert out["valid"] is True
    assert out["tee"] == "sgx-dcap"
    assert out["simulated"] is False
    assert out["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    assert out["advisories"] == list(SGX.advisories)
    assert out["measurement"] == SGX.measurement
    assert out["weaknesses"] == ["configuration-needed", "sw-hardening-needed"]
    assert out["accepted"] is False


def test_strict_acceptance(capsys: pytest.CaptureFixture[str]) -> None:
    quote, collateral = _files("sgx")
    base = (quote, "--collateral", collateral, "--at", SGX.verify_at, "--strict")
    code, out = _run(capsys, *base)
    assert (code, out["accepted"]) == (5, False)
    code, out = _run(
        capsys, *base, "--tolerate", "sw-hardening-needed", "--tolerate", "configuration-needed"
    )
    assert (code, out["accepted"]) == (0, True)
    advisories = [a for adv in SGX.advisories for a in ("--ignore-advisory", adv)]
    code, out = _run(capsys, *base, *advisories)
    assert (code, out["accepted"]) == (0, True)


def test_tdx_auto_detected(capsys: pytest.CaptureFixture[str]) -> None:
    quote, collateral = _files("tdx")
    code, out = _run(capsys, quote, "--collateral", collateral, "--at", TDX.verify_at, "--strict")
    assert code == 0
    assert out["tee"] == "tdx-dcap"
    assert out["tcb_status"] == "UpToDate"
    assert out["measurement"] == TDX.measurement
    assert out["details"]["rtmr0"] == TDX_RTMR0  # type: ignore[index]


def test_expired_collateral_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    quote, collateral = _files("sgx")
    code = main(["attest", "verify", str(quote), "--collateral", str(collateral)])
    captured = capsys.readouterr()
    assert code == 5
    assert json.loads(captured.out)["valid"] is False
    assert "CRL of Intel SGX Root CA" in captured.err


def test_wrong_tee_and_tampered_quote(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    quote, collateral = _files("sgx")
    code, out = _run(
        capsys, quote, "--collateral", collateral, "--at", SGX.verify_at, "--tee", "tdx"
    )
    assert code == 5
    assert "envelope says tdx-dcap" in str(out["error"])
    tampered = bytearray(quote.read_bytes())
    tampered[200] ^= 0x80
    bad = tmp_path / "bad_quote"
    bad.write_bytes(bytes(tampered))
    code, out = _run(capsys, bad, "--collateral", collateral, "--at", SGX.verify_at)
    assert code == 5
    assert "report signature is invalid" in str(out["error"])


def test_simulation_envelope(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    evidence = SimulationProvider("ab" * 32).evidence(report_data_for(b"n", b"k" * 32))
    path = tmp_path / "evidence.json"
    path.write_text(evidence.to_json())
    code, out = _run(capsys, path, "--tolerate", "simulation", "--strict")
    assert code == 0
    assert out["simulated"] is True
    assert out["tcb_status"] == "Simulated"
    assert out["measurement"] == "ab" * 32


def test_unreadable_and_garbage_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["attest", "verify", str(tmp_path / "missing")]) == 2
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x01\x02")
    assert main(["attest", "verify", str(garbage)]) == 5
    envelope = tmp_path / "bad.json"
    envelope.write_text('{"tee": "nope"}')
    assert main(["attest", "verify", str(envelope)]) == 5
    assert "malformed evidence envelope" in capsys.readouterr().err
