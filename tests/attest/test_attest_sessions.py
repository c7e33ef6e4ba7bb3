"""Sessions that require confidential VMs (SEV-SNP, Azure SNP+vTPM, TDX) and NVIDIA GPUs,
judged by the attestation service in-process, with evidence from the stand-in hardware."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from nacl.public import PrivateKey, SealedBox

from _fake_hw import NOW, FakeAmd, FakeGpu, azure_evidence, pem
from seml.attest import (
    Evidence,
    SimulatedGpuProvider,
    SimulationProvider,
    TeeType,
    Verdict,
    azure_collateral,
    gpu_collateral,
    gpu_nonce_for,
    report_data_for,
    snp_collateral,
)
from seml.cas._admission import admit
from seml.cas._protocol import ServiceConfig
from seml.cas._service import CasService
from seml.errors import AttestationError
from seml.policy import (
    Service,
    describe_requirements,
    new_key_pair,
    public_key_text,
    session_from_document,
    sign_session,
)
from seml.policy._model import Security

WORKLOAD = "ab" * 32  # what `seml run` measured inside the VM
VM = "11" * 48  # the SNP launch measurement FakeAmd reports by default
AZURE_VM = "22" * 48
MIN_TCB = {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}


def _service(**extra: Any) -> dict[str, Any]:
    return {
        "name": "train",
        "measurements": [WORKLOAD],
        "environment": {"KEY": "$$SEML::model_key$$"},
        **extra,
    }


def _submit(
    cas: CasService, service: dict[str, Any], tolerate: list[str], name: str = "cvm"
) -> None:
    key = new_key_pair()
    document = {
        "version": 1,
        "name": name,
        "parties": {"alice": public_key_text(key.public)},
        "approval": {"create": ["alice"], "update": ["alice"]},
        "security": {"tolerate": tolerate},
        "secrets": [{"name": "model_key", "kind": "key", "readers": ["train"]}],
        "services": [service],
    }
    session = session_from_document(document, source="test")
    cas.submit(session.document(), [sign_session(session, "alice", key)], {}, NOW)


def _attest(
    cas: CasService, make: Any, *, workload: str | None = WORKLOAD, session: str = "cvm"
) -> ServiceConfig:
    """Nonce and key as `seml run` makes them; `make(report_data)` -> evidence."""
    nonce, _ = cas.nonces.issue(time.time())
    key = PrivateKey.generate()
    public = bytes(key.public_key)
    evidence = make(report_data_for(nonce, public, workload))
    if workload is not None:
        evidence = evidence.replace(workload=workload)
    sealed = cas.attest(
        session_name=session,
        service_name="train",
        session_hash_=None,
        nonce=nonce,
        public_key=public,
        evidence=evidence,
        now=NOW,
    )
    return ServiceConfig.from_json(SealedBox(key).decrypt(sealed))


def _snp(amd: FakeAmd, **report: Any) -> Callable[[bytes], Evidence]:
    def make(report_data: bytes) -> Evidence:
        return Evidence(
            tee=TeeType.SNP,
            quote=amd.report(report_data, **report),
            collateral=snp_collateral(pem(amd.vcek)),
        )

    return make


def _simulated(report_data: bytes) -> Evidence:
    return SimulationProvider(WORKLOAD).evidence(report_data)


SNP_SERVICE = _service(confidential_vm={"snp": {"measurements": [VM], "min_tcb": MIN_TCB}})
ACCEPT_OFFLINE = ["revocation-unchecked"]


def test_snp_service_accepts_its_vm_running_its_workload(
    cas_service: CasService, fake_amd: FakeAmd
) -> None:
    _submit(cas_service, SNP_SERVICE, ACCEPT_OFFLINE)
    config = _attest(cas_service, _snp(fake_amd))
    assert (config.tee, config.measurement, config.simulated) == ("snp", WORKLOAD, False)
    assert len(bytes.fromhex(config.environment["KEY"])) == 32
    release = [e for e in cas_service.store.audit(0, 100) if e.event == "attest.release"][-1]
    assert (release.details or {})["platform_measurement"] == VM


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        ({"measurement": b"\x33" * 48}, "snp launch measurement 3333.* is not allowed"),
        ({"vmpl": 2}, "the report comes from VMPL 2, allowed: 0"),
        ({"tcb": (3, 0, 7, 115)}, "platform TCB 3/0/7/115 is below the minimum: snp 7 < 8"),
    ],
)
def test_snp_service_refuses_other_vms(
    cas_service: CasService, report: dict[str, Any], reason: str
) -> None:
    _submit(cas_service, SNP_SERVICE, ACCEPT_OFFLINE)
    amd = FakeAmd(tcb=report.pop("tcb")) if "tcb" in report else FakeAmd()
    with pytest.raises(AttestationError, match=f"service train: {reason}"):
        _attest(cas_service, _snp(amd, **report))


def test_snp_service_refuses_another_workload(cas_service: CasService, fake_amd: FakeAmd) -> None:
    _submit(cas_service, SNP_SERVICE, ACCEPT_OFFLINE)
    with pytest.raises(AttestationError, match=f"workload measurement {'cd' * 32} is not allowed"):
        _attest(cas_service, _snp(fake_amd), workload="cd" * 32)
    with pytest.raises(AttestationError, match="claims no workload measurement"):
        _attest(cas_service, _snp(fake_amd), workload=None)


def test_a_workload_claim_not_bound_in_the_report_is_refused(
    cas_service: CasService, fake_amd: FakeAmd
) -> None:
    _submit(cas_service, SNP_SERVICE, ACCEPT_OFFLINE)

    def lying(report_data: bytes) -> Evidence:
        return _snp(fake_amd)(report_data).replace(workload="cd" * 32)

    with pytest.raises(AttestationError, match="bound to other report data"):
        _attest(cas_service, lying, workload=None)


def test_snp_service_refuses_simulation_unless_tolerated(
    cas_service: CasService, fake_amd: FakeAmd
) -> None:
    _submit(cas_service, SNP_SERVICE, ACCEPT_OFFLINE)
    with pytest.raises(AttestationError, match="does not tolerate: simulation"):
        _attest(cas_service, _simulated)
    _submit(cas_service, SNP_SERVICE, ["simulation"], name="tolerant")
    config = _attest(cas_service, _simulated, session="tolerant")
    assert config.simulated and config.tee == "simulation"


def test_snp_service_needs_revocation_checked_or_tolerated(
    cas_service: CasService, fake_amd: FakeAmd
) -> None:
    _submit(cas_service, SNP_SERVICE, [])
    with pytest.raises(AttestationError, match="does not tolerate: revocation-unchecked"):
        _attest(cas_service, _snp(fake_amd))


def test_debug_vm_refused_unless_tolerated(cas_service: CasService, fake_amd: FakeAmd) -> None:
    _submit(cas_service, SNP_SERVICE, ACCEPT_OFFLINE)
    debug = _snp(fake_amd, policy=0x30000 | 1 << 19)
    with pytest.raises(AttestationError, match="does not tolerate: debug"):
        _attest(cas_service, debug)
    _submit(cas_service, SNP_SERVICE, [*ACCEPT_OFFLINE, "debug"], name="tolerant")
    assert _attest(cas_service, debug, session="tolerant").tee == "snp"


def test_snp_evidence_for_a_service_without_snp_vms(
    cas_service: CasService, fake_amd: FakeAmd
) -> None:
    _submit(cas_service, _service(), ACCEPT_OFFLINE)
    with pytest.raises(AttestationError, match="no snp confidential VM is allowed for it"):
        _attest(cas_service, _snp(fake_amd))


def _azure(amd: FakeAmd, **kwargs: Any) -> Any:
    def make(report_data: bytes) -> Evidence:
        hcl, quote, signature, pcrs = azure_evidence(amd, report_data, **kwargs)
        return Evidence(
            tee=TeeType.AZURE_SNP,
            quote=hcl,
            collateral=azure_collateral(
                certs=pem(amd.vcek), tpm_quote=quote, tpm_signature=signature, pcrs=pcrs
            ),
        )

    return make


def test_azure_service_with_pinned_pcrs(cas_service: CasService, fake_amd: FakeAmd) -> None:
    import hashlib

    pcr7 = hashlib.sha256(bytes([7])).hexdigest()
    service = _service(
        confidential_vm={"azure_snp": {"measurements": [AZURE_VM], "pcrs": {7: [pcr7]}}}
    )
    _submit(cas_service, service, ACCEPT_OFFLINE)
    assert _attest(cas_service, _azure(fake_amd)).tee == "azure-snp"
    other = [hashlib.sha256(bytes([i if i != 7 else 99])).digest() for i in range(24)]
    with pytest.raises(AttestationError, match=r"vTPM PCR 7 is .* not an allowed value"):
        _attest(cas_service, _azure(fake_amd, pcrs=other))
    with pytest.raises(AttestationError, match=r"vTPM quote's nonce .* is not ours"):
        _attest(cas_service, _azure(fake_amd, quote_nonce=b"\x00" * 32))
    # Plain SNP evidence does not satisfy a service that allows only Azure's.
    with pytest.raises(AttestationError, match="no snp confidential VM is allowed"):
        _attest(cas_service, _snp(fake_amd))


GPU_SERVICE = _service(
    confidential_vm={"snp": {"measurements": [VM]}},
    requires=["nvidia-gpu"],
    nvidia_gpu={"driver_versions": ["550.90.07"]},
)
GPU_OFFLINE = ["revocation-unchecked", "measurements-unchecked"]


def _with_gpu(
    amd: FakeAmd, gpu: FakeGpu, *, nonce_for: bytes | None = None, driver: str | None = None
) -> Any:
    def make(report_data: bytes) -> Evidence:
        nonce = gpu_nonce_for(nonce_for or report_data)
        gpu_part = Evidence(
            tee=TeeType.NVIDIA_GPU,
            quote=gpu.report(nonce, driver=driver),
            collateral=gpu_collateral(gpu.chain),
        )
        return Evidence(tee=TeeType.COMPOSITE, parts=(_snp(amd)(report_data), gpu_part))

    return make


def test_snp_plus_gpu_service(
    cas_service: CasService, fake_amd: FakeAmd, fake_gpu: FakeGpu
) -> None:
    _submit(cas_service, GPU_SERVICE, GPU_OFFLINE)
    config = _attest(cas_service, _with_gpu(fake_amd, fake_gpu))
    assert (config.tee, config.measurement) == ("composite", WORKLOAD)
    with pytest.raises(AttestationError, match=r"requires 1 NVIDIA GPU\(s\) .* has 0"):
        _attest(cas_service, _snp(fake_amd))
    stale = report_data_for(b"old", bytes(32), WORKLOAD)
    with pytest.raises(AttestationError, match="not part of this attestation"):
        _attest(cas_service, _with_gpu(fake_amd, fake_gpu, nonce_for=stale))
    with pytest.raises(AttestationError, match=r"runs driver 575.32, allowed: 550.90.07"):
        _attest(cas_service, _with_gpu(fake_amd, fake_gpu, driver="575.32"))


def test_gpu_unchecked_measurements_must_be_tolerated(
    cas_service: CasService, fake_amd: FakeAmd, fake_gpu: FakeGpu
) -> None:
    _submit(cas_service, GPU_SERVICE, ["revocation-unchecked"])
    with pytest.raises(AttestationError, match="does not tolerate: measurements-unchecked"):
        _attest(cas_service, _with_gpu(fake_amd, fake_gpu))


def test_simulated_gpu_refused_unless_simulation_tolerated(
    cas_service: CasService, fake_amd: FakeAmd
) -> None:
    def make(report_data: bytes) -> Evidence:
        (gpu,) = SimulatedGpuProvider().gpu_evidence(gpu_nonce_for(report_data))
        return Evidence(tee=TeeType.COMPOSITE, parts=(_snp(fake_amd)(report_data), gpu))

    _submit(cas_service, GPU_SERVICE, GPU_OFFLINE)
    with pytest.raises(AttestationError, match="does not tolerate: simulation"):
        _attest(cas_service, make)
    _submit(cas_service, GPU_SERVICE, [*GPU_OFFLINE, "simulation"], name="tolerant")
    assert _attest(cas_service, make, session="tolerant").simulated


def test_gpu_evidence_alone_attests_no_workload(cas_service: CasService, fake_gpu: FakeGpu) -> None:
    _submit(cas_service, GPU_SERVICE, GPU_OFFLINE)

    def gpu_only(report_data: bytes) -> Evidence:
        return Evidence(
            tee=TeeType.NVIDIA_GPU,
            quote=fake_gpu.report(report_data[:32]),
            collateral=gpu_collateral(fake_gpu.chain),
        )

    with pytest.raises(AttestationError, match=r"bound to other report data|GPU evidence alone"):
        _attest(cas_service, gpu_only)


def _verdict(tee: TeeType, measurement: str, **details: str) -> Verdict:
    return Verdict(
        tee=tee,
        measurement=measurement,
        report_data=bytes(64),
        tcb_status="UpToDate",
        weaknesses=frozenset(),
        details=details,
    )


MRTD, RTMR1 = "44" * 48, "55" * 48


def test_tdx_plus_gpu_admission() -> None:
    service = Service.model_validate(
        _service(
            confidential_vm={"tdx": {"mrtd": [MRTD], "rtmr": {1: [RTMR1]}}},
            requires=["nvidia-gpu"],
        )
    )
    gpu = _verdict(TeeType.NVIDIA_GPU, "00" * 48, driver_version="550.90.07")
    tdx = _verdict(TeeType.TDX_DCAP, MRTD, rtmr1=RTMR1)
    both = Verdict(
        tee=TeeType.COMPOSITE,
        measurement=MRTD,
        report_data=bytes(64),
        tcb_status="UpToDate",
        weaknesses=frozenset(),
        parts=(tdx, gpu),
    )
    admitted = admit(service, both, WORKLOAD)
    assert (admitted.workload, admitted.platform_measurement, admitted.gpus) == (WORKLOAD, MRTD, 1)
    with pytest.raises(AttestationError, match="requires 1 NVIDIA GPU"):
        admit(service, tdx, WORKLOAD)
    other = Verdict(
        **{**both.__dict__, "parts": (_verdict(TeeType.TDX_DCAP, MRTD, rtmr1="66" * 48), gpu)}
    )
    with pytest.raises(AttestationError, match=r"TDX RTMR1 is 6666.* not an allowed value"):
        admit(service, other, WORKLOAD)


def test_tdx_without_vm_rules_keeps_the_one_layer_rule() -> None:
    service = Service.model_validate(_service(measurements=[MRTD]))
    assert admit(service, _verdict(TeeType.TDX_DCAP, MRTD), None).workload == MRTD


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"confidential_vm": {}}, "needs at least one of snp, azure_snp, tdx"),
        ({"confidential_vm": {"snp": {"measurements": []}}}, "at least 1 item"),
        ({"confidential_vm": {"snp": {"measurements": [VM], "vmpl": []}}}, "at least 1 item"),
        (
            {"confidential_vm": {"azure_snp": {"measurements": [VM], "pcrs": {7: []}}}},
            "empty allow-list",
        ),
        ({"confidential_vm": {"tdx": {"mrtd": [MRTD], "rtmr": {1: []}}}}, "empty allow-list"),
        ({"confidential_vm": {"snp": {"measurements": ["ab"]}}}, "pattern"),
        ({"nvidia_gpu": {"min_count": 1}}, "only with requires: [nvidia-gpu]"),
        ({"requires": ["amd-gpu"]}, "nvidia-gpu"),
        ({"confidential_vm": {"sev": {"measurements": [VM]}}}, "sev"),
    ],
)
def test_empty_allow_lists_and_typos_are_errors(extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match="validation error") as caught:
        Service.model_validate(_service(**extra))
    assert problem in str(caught.value)


def test_requirements_in_plain_words() -> None:
    service = Service.model_validate(
        {
            **GPU_SERVICE,
            "confidential_vm": {"snp": {"measurements": [VM], "min_tcb": MIN_TCB, "vmpl": [0, 1]}},
        }
    )
    lines = describe_requirements(service, Security(tolerate=["revocation-unchecked"]))
    text = "\n".join(lines)
    assert "computed by `seml run` inside the VM" in text
    assert "AMD SEV-SNP confidential VM whose launch measurement is 1111" in text
    assert "at VMPL 0 or 1" in text
    assert "bootloader 3, TEE 0, SNP 8, microcode 115" in text
    assert "at least 1 NVIDIA GPU" in text and "driver 550.90.07" in text
    assert "Simulated evidence: refused." in lines
    assert "Debug enclaves or VMs: refused." in lines
    assert any(
        line.startswith("Evidence whose revocation was not checked") and "accepted" in line
        for line in lines
    )
    assert any(line.startswith("GPUs whose measurements") and "refused" in line for line in lines)
    simulated = describe_requirements(service, Security(tolerate=["simulation"]))
    assert any("Simulated evidence: ACCEPTED" in line for line in simulated)


def test_session_check_shows_the_requirements(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from seml.cli import main

    key = new_key_pair()
    document = {
        "version": 1,
        "name": "cvm",
        "parties": {"alice": public_key_text(key.public)},
        "approval": {"create": ["alice"], "update": ["alice"]},
        "security": {"tolerate": ["revocation-unchecked"]},
        "secrets": [{"name": "model_key", "kind": "key", "readers": ["train"]}],
        "services": [GPU_SERVICE],
    }
    path = tmp_path / "cvm.yaml"
    path.write_text(yaml.safe_dump(document))
    assert main(["session", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "service train accepts evidence:" in out
    assert "  - Inside an AMD SEV-SNP confidential VM whose launch measurement is 1111" in out
    assert "Needs at least 1 NVIDIA GPU in confidential-computing mode" in out
    assert "Simulated evidence: refused." in out
