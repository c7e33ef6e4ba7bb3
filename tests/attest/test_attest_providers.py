"""Hardware evidence providers on constructed /dev/attestation and configfs-tsm trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from seml.attest import (
    ConfigfsTsmProvider,
    GramineProvider,
    SimulationProvider,
    TeeType,
    _providers,
    select_provider,
)
from seml.errors import AttestationError, UsageError

REPORT_DATA = bytes(range(64))
QUOTE = b"\x04\x00\x02\x00\x81\x00\x00\x00recorded quote bytes"


def _gramine(root: Path, kind: str = "dcap") -> Path:
    root.mkdir()
    (root / "attestation_type").write_text(kind + "\n")
    (root / "user_report_data").write_bytes(bytes(64))
    (root / "quote").write_bytes(QUOTE)
    return root


def test_gramine_writes_report_data_and_reads_quote(tmp_path: Path) -> None:
    root = _gramine(tmp_path / "attestation")
    evidence = GramineProvider(root).evidence(REPORT_DATA)
    assert evidence.tee is TeeType.SGX_DCAP
    assert evidence.quote == QUOTE
    assert (root / "user_report_data").read_bytes() == REPORT_DATA


def test_gramine_without_dcap_is_refused(tmp_path: Path) -> None:
    root = _gramine(tmp_path / "attestation", kind="none")
    assert not GramineProvider.available(root)
    with pytest.raises(AttestationError, match="'none' attestation, not dcap"):
        GramineProvider(root).evidence(REPORT_DATA)


def test_gramine_missing_device_is_an_attestation_error(tmp_path: Path) -> None:
    with pytest.raises(AttestationError, match="Gramine quote"):
        GramineProvider(tmp_path / "absent").evidence(REPORT_DATA)


def test_gramine_empty_quote_is_refused(tmp_path: Path) -> None:
    root = _gramine(tmp_path / "attestation")
    (root / "quote").write_bytes(b"")
    with pytest.raises(AttestationError, match="empty quote"):
        GramineProvider(root).evidence(REPORT_DATA)


def test_report_data_length_is_checked(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="64 bytes"):
        GramineProvider(tmp_path).evidence(b"short")
    with pytest.raises(UsageError, match="64 bytes"):
        ConfigfsTsmProvider(tmp_path).evidence(b"short")


class FakeTsmKernel:
    """Does what configfs-tsm does on mkdir and on a write to inblob."""

    def __init__(self, provider: str = "tdx_guest", generation_step: int = 1) -> None:
        self.provider = provider
        self.step = generation_step
        self.entries: list[Path] = []

    def make_entry(self, path: Path) -> None:
        path.mkdir()
        self.entries.append(path)
        (path / "provider").write_text(self.provider + "\n")
        (path / "generation").write_text("0\n")
        (path / "outblob").write_bytes(b"")

    def write_blob(self, path: Path, data: bytes) -> None:
        assert path.name == "inblob"
        path.write_bytes(data)
        generation = path.parent / "generation"
        generation.write_text(f"{int(generation.read_text()) + self.step}\n")
        (path.parent / "outblob").write_bytes(QUOTE + data)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_providers, "_make_entry", self.make_entry)
        monkeypatch.setattr(_providers, "_write_blob", self.write_blob)


def test_configfs_tsm_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = FakeTsmKernel()
    kernel.install(monkeypatch)
    evidence = ConfigfsTsmProvider(tmp_path).evidence(REPORT_DATA)
    assert evidence.tee is TeeType.TDX_DCAP
    assert evidence.quote == QUOTE + REPORT_DATA
    (entry,) = kernel.entries
    assert entry.parent == tmp_path
    assert (entry / "inblob").read_bytes() == REPORT_DATA


def test_configfs_tsm_detects_a_concurrent_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FakeTsmKernel(generation_step=2).install(monkeypatch)
    with pytest.raises(AttestationError, match=r"someone else meanwhile \(generation 0 -> 2\)"):
        ConfigfsTsmProvider(tmp_path).evidence(REPORT_DATA)


def test_configfs_tsm_refuses_unsupported_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FakeTsmKernel(provider="arm_cca_guest").install(monkeypatch)
    with pytest.raises(AttestationError, match="provider .arm_cca_guest. is not supported"):
        ConfigfsTsmProvider(tmp_path).evidence(REPORT_DATA)


def test_configfs_tsm_without_configfs_is_an_attestation_error(tmp_path: Path) -> None:
    with pytest.raises(AttestationError, match="cannot create configfs-tsm report"):
        ConfigfsTsmProvider(tmp_path / "absent").evidence(REPORT_DATA)


def test_select_refuses_software_evidence_unless_asked(tmp_path: Path) -> None:
    roots = {"gramine_root": tmp_path / "no-gramine", "tsm_root": tmp_path / "no-tsm"}
    with pytest.raises(AttestationError, match="no TEE found"):
        select_provider(simulation_measurement="ab" * 32, **roots)
    provider = select_provider(simulation_measurement="ab" * 32, allow_simulation=True, **roots)
    assert isinstance(provider, SimulationProvider)
    with pytest.raises(UsageError, match="no simulated measurement"):
        select_provider(allow_simulation=True, **roots)


def test_select_prefers_hardware(tmp_path: Path) -> None:
    gramine = _gramine(tmp_path / "attestation")
    tsm = tmp_path / "tsm"
    tsm.mkdir()
    chosen = select_provider(allow_simulation=True, gramine_root=gramine, tsm_root=tsm)
    assert isinstance(chosen, GramineProvider)
    chosen = select_provider(allow_simulation=True, gramine_root=tmp_path / "absent", tsm_root=tsm)
    assert isinstance(chosen, ConfigfsTsmProvider)
