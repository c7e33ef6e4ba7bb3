"""Evidence that a workload runs the agreed code in a TEE, and how it is checked.

`EvidenceProvider`s make evidence (simulation in software; Gramine for SGX, configfs-tsm for TDX
and SEV-SNP, NVML for NVIDIA GPUs on real hardware); `Verifier`s check it (simulation, SGX/TDX
DCAP quotes with dcap-qvl, SEV-SNP reports, Azure SNP+vTPM, NVIDIA GPU SPDM evidence with its
RIMs, and composite CPU+GPU evidence) and return a `Verdict`; `check_weaknesses` and
`expect_report_data` apply a session's rules. Simulation evidence proves nothing about hardware
and is always marked with the weakness ``simulation``.
"""

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
