"""Evidence that a workload runs the agreed code in a TEE, and how it is checked.

`EvidenceProvider`s make evidence (simulation in software; Gramine for SGX, configfs-tsm for TDX
and SEV-SNP, NVML for NVIDIA GPUs on real hardware); `Verifier`s check it (simulation, SGX/TDX
DCAP quotes with dcap-qvl, SEV-SNP reports, Azure SNP+vTPM, NVIDIA GPU SPDM evidence with its
RIMs, and composite CPU+GPU evidence) and return a `Verdict`; `check_weaknesses` and
`expect_report_data` apply a session's rules. Simulation evidence proves nothing about hardware
and is always marked with the weakness ``simulation``.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seml.attest._azure import AzureSnpVerifier, azure_collateral, tpm_nonce_for
    from seml.attest._composite import CompositeVerifier
    from seml.attest._dcap import DcapVerifier, weaknesses_for_status
    from seml.attest._evidence import (
        CPU_TEES,
        CVM_TEES,
        TCB_WEAKNESSES,
        Evidence,
        EvidenceProvider,
        TeeType,
        Verdict,
        Verifier,
        check_weaknesses,
        expect_report_data,
        gpu_nonce_for,
        parse_evidence,
        report_data_for,
    )
    from seml.attest._gpu_providers import (
        CompositeProvider,
        GpuEvidenceProvider,
        NvmlGpuProvider,
        select_gpu_provider,
    )
    from seml.attest._nvidia import (
        NVIDIA_DEVICE_ROOT_FINGERPRINT,
        NVIDIA_RIM_ROOT_FINGERPRINT,
        NvidiaGpuVerifier,
        NvidiaServices,
        compare_measurements,
        gpu_collateral,
        parse_gpu_report,
        verify_gpu_report,
        verify_rim,
    )
    from seml.attest._providers import ConfigfsTsmProvider, GramineProvider, select_provider
    from seml.attest._simulation import (
        SIMULATED_TCB_STATUS,
        SimulatedGpuProvider,
        SimulationProvider,
        SimulationVerifier,
        platform_id,
    )
    from seml.attest._snp import (
        AMD_ARK_FINGERPRINTS,
        SnpVerifier,
        Tcb,
        parse_report,
        snp_collateral,
        verify_report,
    )
    from seml.attest._verifier import DispatchingVerifier, default_verifier
    from seml.attest._x509 import pem_certificates

# Each name loads its own module on first use: a workload under `seml run` makes simulated
# or TEE evidence and never loads the verifiers (DCAP, SNP, Azure, NVIDIA, X.509 chains).
_LAZY = {
    "AMD_ARK_FINGERPRINTS": "seml.attest._snp",
    "AzureSnpVerifier": "seml.attest._azure",
    "CPU_TEES": "seml.attest._evidence",
    "CVM_TEES": "seml.attest._evidence",
    "CompositeProvider": "seml.attest._gpu_providers",
    "CompositeVerifier": "seml.attest._composite",
    "ConfigfsTsmProvider": "seml.attest._providers",
    "DcapVerifier": "seml.attest._dcap",
    "DispatchingVerifier": "seml.attest._verifier",
    "Evidence": "seml.attest._evidence",
    "EvidenceProvider": "seml.attest._evidence",
    "GpuEvidenceProvider": "seml.attest._gpu_providers",
    "GramineProvider": "seml.attest._providers",
    "NVIDIA_DEVICE_ROOT_FINGERPRINT": "seml.attest._nvidia",
    "NVIDIA_RIM_ROOT_FINGERPRINT": "seml.attest._nvidia",
    "NvidiaGpuVerifier": "seml.attest._nvidia",
    "NvidiaServices": "seml.attest._nvidia",
    "NvmlGpuProvider": "seml.attest._gpu_providers",
    "SIMULATED_TCB_STATUS": "seml.attest._simulation",
    "SimulatedGpuProvider": "seml.attest._simulation",
    "SimulationProvider": "seml.attest._simulation",
    "SimulationVerifier": "seml.attest._simulation",
    "SnpVerifier": "seml.attest._snp",
    "TCB_WEAKNESSES": "seml.attest._evidence",
    "Tcb": "seml.attest._snp",
    "TeeType": "seml.attest._evidence",
    "Verdict": "seml.attest._evidence",
    "Verifier": "seml.attest._evidence",
    "azure_collateral": "seml.attest._azure",
    "check_weaknesses": "seml.attest._evidence",
    "compare_measurements": "seml.attest._nvidia",
    "default_verifier": "seml.attest._verifier",
    "expect_report_data": "seml.attest._evidence",
    "gpu_collateral": "seml.attest._nvidia",
    "gpu_nonce_for": "seml.attest._evidence",
    "parse_evidence": "seml.attest._evidence",
    "parse_gpu_report": "seml.attest._nvidia",
    "parse_report": "seml.attest._snp",
    "pem_certificates": "seml.attest._x509",
    "platform_id": "seml.attest._simulation",
    "report_data_for": "seml.attest._evidence",
    "select_gpu_provider": "seml.attest._gpu_providers",
    "select_provider": "seml.attest._providers",
    "snp_collateral": "seml.attest._snp",
    "tpm_nonce_for": "seml.attest._azure",
    "verify_gpu_report": "seml.attest._nvidia",
    "verify_report": "seml.attest._snp",
    "verify_rim": "seml.attest._nvidia",
    "weaknesses_for_status": "seml.attest._dcap",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'seml.attest' has no attribute {name!r}")


__all__ = [
    "AMD_ARK_FINGERPRINTS",
    "CPU_TEES",
    "CVM_TEES",
    "NVIDIA_DEVICE_ROOT_FINGERPRINT",
    "NVIDIA_RIM_ROOT_FINGERPRINT",
    "SIMULATED_TCB_STATUS",
    "TCB_WEAKNESSES",
    "AzureSnpVerifier",
    "CompositeProvider",
    "CompositeVerifier",
    "ConfigfsTsmProvider",
    "DcapVerifier",
    "DispatchingVerifier",
    "Evidence",
    "EvidenceProvider",
    "GpuEvidenceProvider",
    "GramineProvider",
    "NvidiaGpuVerifier",
    "NvidiaServices",
    "NvmlGpuProvider",
    "SimulatedGpuProvider",
    "SimulationProvider",
    "SimulationVerifier",
    "SnpVerifier",
    "Tcb",
    "TeeType",
    "Verdict",
    "Verifier",
    "azure_collateral",
    "check_weaknesses",
    "compare_measurements",
    "default_verifier",
    "expect_report_data",
    "gpu_collateral",
    "gpu_nonce_for",
    "parse_evidence",
    "parse_gpu_report",
    "parse_report",
    "pem_certificates",
    "platform_id",
    "report_data_for",
    "select_gpu_provider",
    "select_provider",
    "snp_collateral",
    "tpm_nonce_for",
    "verify_gpu_report",
    "verify_report",
    "verify_rim",
    "weaknesses_for_status",
]
