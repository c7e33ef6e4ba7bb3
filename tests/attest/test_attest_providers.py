"""Hardware evidence providers on constructed /dev/attestation and configfs-tsm trees."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from _fake_hw import NOW, FakeAmd, FakeGpu
from seml.attest import (
    CompositeProvider,
    ConfigfsTsmProvider,
    GramineProvider,
    NvidiaGpuVerifier,
    NvmlGpuProvider,
    SimulatedGpuProvider,
    SimulationProvider,
    SnpVerifier,
    TeeType,
    _providers,
    gpu_nonce_for,
    select_gpu_provider,
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

    def __init__(
        self,
        provider: str = "tdx_guest",
        generation_step: int = 1,
        make_quote: Callable[[bytes], bytes] = lambda data: QUOTE + data,
        auxblob: bytes = b"",
    ) -> None:
        self.provider = provider
        self.step = generation_step
        self.make_quote = make_quote
        self.auxblob = auxblob
        self.entries: list[Path] = []
        self.privlevel: str | None = None

    def make_entry(self, path: Path) -> None:
        path.mkdir()
        self.entries.append(path)
        (path / "provider").write_text(self.provider + "\n")
        (path / "generation").write_text("0\n")
        (path / "outblob").write_bytes(b"")
        (path / "auxblob").write_bytes(b"")

    def write_blob(self, path: Path, data: bytes) -> None:
        if path.name == "privlevel":
            self.privlevel = data.decode().strip()
            return
        assert path.name == "inblob"
        path.write_bytes(data)
        generation = path.parent / "generation"
        generation.write_text(f"{int(generation.read_text()) + self.step}\n")
        (path.parent / "outblob").write_bytes(self.make_quote(data))
        (path.parent / "auxblob").write_bytes(self.auxblob)

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
    with pytest.raises(AttestationError, match=r"provider .arm_cca_guest. is not supported"):
        ConfigfsTsmProvider(tmp_path).evidence(REPORT_DATA)


def test_configfs_tsm_without_configfs_is_an_attestation_error(tmp_path: Path) -> None:
    with pytest.raises(AttestationError, match="cannot create configfs-tsm report"):
        ConfigfsTsmProvider(tmp_path / "absent").evidence(REPORT_DATA)


def test_select_refuses_software_evidence_unless_asked(tmp_path: Path) -> None:
    gramine, tsm = tmp_path / "no-gramine", tmp_path / "no-tsm"
    with pytest.raises(AttestationError, match="no TEE found"):
        select_provider(simulation_measurement="ab" * 32, gramine_root=gramine, tsm_root=tsm)
    provider = select_provider(
        simulation_measurement="ab" * 32, allow_simulation=True, gramine_root=gramine, tsm_root=tsm
    )
    assert isinstance(provider, SimulationProvider)
    with pytest.raises(UsageError, match="no simulated measurement"):
        select_provider(allow_simulation=True, gramine_root=gramine, tsm_root=tsm)


def test_select_prefers_hardware(tmp_path: Path) -> None:
    gramine = _gramine(tmp_path / "attestation")
    tsm = tmp_path / "tsm"
    tsm.mkdir()
    chosen = select_provider(allow_simulation=True, gramine_root=gramine, tsm_root=tsm)
    assert isinstance(chosen, GramineProvider)
    chosen = select_provider(allow_simulation=True, gramine_root=tmp_path / "absent", tsm_root=tsm)
    assert isinstance(chosen, ConfigfsTsmProvider)


def _cert_table(entries: list[tuple[str, bytes]]) -> bytes:
    """The GHCB certificate table the host hands an SNP guest (GUID, offset, length; zeros)."""
    header = 24 * (len(entries) + 1)
    table, blobs, offset = b"", b"", header
    for guid, der in entries:
        table += (
            uuid.UUID(guid).bytes_le + offset.to_bytes(4, "little") + len(der).to_bytes(4, "little")
        )
        blobs += der
        offset += len(der)
    return table + bytes(24) + blobs


VCEK_GUID = "63da758d-e664-4564-adc5-f4b93be8accd"
ASK_GUID = "4ab7b379-bbac-4fe4-a02f-05aef327c782"
ARK_GUID = "c0b406a4-a803-4952-9743-3fb6014cd0ae"


def test_configfs_tsm_sev_guest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    amd = FakeAmd()
    der = [c.public_bytes(Encoding.DER) for c in (amd.ark, amd.ask, amd.vcek)]
    kernel = FakeTsmKernel(
        provider="sev_guest",
        make_quote=lambda data: amd.report(data, vmpl=2),
        auxblob=_cert_table([(ARK_GUID, der[0]), (ASK_GUID, der[1]), (VCEK_GUID, der[2])]),
    )
    kernel.install(monkeypatch)
    evidence = ConfigfsTsmProvider(tmp_path, privlevel=2).evidence(REPORT_DATA)
    assert kernel.privlevel == "2"
    assert evidence.tee is TeeType.SNP
    verdict = SnpVerifier(roots=amd.roots).verify(evidence, now=NOW)  # chain from the envelope
    assert verdict.report_data == REPORT_DATA
    assert verdict.details["vmpl"] == "2"


def test_configfs_tsm_sev_guest_without_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    amd = FakeAmd()
    FakeTsmKernel(provider="sev_guest", make_quote=amd.report).install(monkeypatch)
    with pytest.raises(AttestationError, match="returned no certificates"):
        ConfigfsTsmProvider(tmp_path).evidence(REPORT_DATA)
    with pytest.raises(UsageError, match="privilege level is 0 to 3"):
        ConfigfsTsmProvider(tmp_path, privlevel=4)


class FakeNvml:
    """What NVML answers on a machine with `count` GPUs in CC mode (each the same FakeGpu)."""

    def __init__(self, gpu: FakeGpu, count: int = 2, ready: bool = True) -> None:
        self.gpu, self.count, self.ready = gpu, count, ready
        self.nonces: list[bytes] = []

    def device_count(self) -> int:
        return self.count

    def cc_ready(self) -> bool:
        return self.ready

    def attestation_report(self, index: int, nonce: bytes) -> bytes:
        self.nonces.append(nonce)
        return self.gpu.report(nonce)

    def certificate_chain(self, index: int) -> bytes:
        return self.gpu.chain


def test_nvml_gpu_evidence_verifies() -> None:
    gpu = FakeGpu()
    nvml = FakeNvml(gpu)
    provider = select_gpu_provider(nvml=nvml)
    assert isinstance(provider, NvmlGpuProvider)
    nonce = bytes(range(32))
    evidence = provider.gpu_evidence(nonce)
    assert len(evidence) == 2 and nvml.nonces == [nonce, nonce]
    verdict = NvidiaGpuVerifier(nonce=nonce, device_root=gpu.device_root).verify(
        evidence[0], now=NOW
    )
    assert verdict.details["driver_version"] == "550.90.07"


def test_gpu_provider_selection() -> None:
    gpu = FakeGpu()
    assert select_gpu_provider(nvml=FakeNvml(gpu, ready=False)) is None  # auto: no CC GPU, none
    with pytest.raises(AttestationError, match="no NVIDIA GPU in confidential-computing mode"):
        select_gpu_provider(mode="required", nvml=FakeNvml(gpu, count=0))
    assert isinstance(select_gpu_provider(mode="simulate"), SimulatedGpuProvider)
    assert select_gpu_provider(mode="none", nvml=FakeNvml(gpu)) is None
    with pytest.raises(AttestationError, match="not in confidential-computing mode"):
        NvmlGpuProvider(FakeNvml(gpu, ready=False)).gpu_evidence(bytes(32))


def test_composite_provider_binds_the_gpus_to_the_report_data() -> None:
    provider = CompositeProvider(SimulationProvider("ab" * 32), SimulatedGpuProvider())
    evidence = provider.evidence(REPORT_DATA)
    assert evidence.tee is TeeType.COMPOSITE
    cpu, gpu = evidence.parts
    assert cpu.tee is TeeType.SIMULATION
    assert gpu_nonce_for(REPORT_DATA) in gpu.quote


def test_a_workload_start_loads_no_verifier() -> None:
    """`seml run` makes evidence; the verifiers (DCAP, SNP, Azure, NVIDIA, X.509 chains) and
    their imports are start-up cost a workload never uses, so the runtime must not load them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from seml.runtime import run_service\n"
        "from seml.attest import SimulationProvider, select_gpu_provider, select_provider\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('seml.attest.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "seml.attest._providers" in loaded  # the names above did load their modules
    for verifier in ("_dcap", "_snp", "_azure", "_nvidia", "_x509", "_composite", "_verifier"):
        assert f"seml.attest.{verifier}" not in loaded, loaded
