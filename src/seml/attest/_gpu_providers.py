"""GPU evidence behind an interface: NVML on real NVIDIA GPUs, simulation in software, and the
provider that puts a CPU TEE's evidence and the GPUs' together.

NVML's confidential-computing calls (``nvmlDeviceGetConfComputeGpuAttestationReport`` with a
32-byte nonce, ``nvmlDeviceGetConfComputeGpuCertificate`` for the device chain) are reached
through the small `Nvml` interface; `PynvmlBackend` implements it with NVIDIA's ``pynvml``
module (package ``nvidia-ml-py``, installed on GPU machines, not a dependency of SEML). No
machine here has a GPU: the provider is tested against a fake `Nvml`, the backend is not.
"""

from __future__ import annotations

from typing import Any, Protocol

from seml.attest._evidence import (
    Evidence,
    EvidenceProvider,
    TeeType,
    gpu_nonce_for,
)
from seml.attest._simulation import SimulatedGpuProvider
from seml.errors import AttestationError

__all__ = [
    "CompositeProvider",
    "GpuEvidenceProvider",
    "Nvml",
    "NvmlGpuProvider",
    "PynvmlBackend",
    "select_gpu_provider",
]


class GpuEvidenceProvider(Protocol):
    """Evidence from every GPU of the machine, each answering `nonce` (32 bytes)."""

    def gpu_evidence(self, nonce: bytes) -> list[Evidence]: ...


class Nvml(Protocol):
    """The part of NVML that GPU attestation uses."""

    def device_count(self) -> int: ...

    def cc_ready(self) -> bool:
        """Confidential computing is on and the GPUs accept work."""
        ...

    def attestation_report(self, index: int, nonce: bytes) -> bytes: ...

    def certificate_chain(self, index: int) -> bytes: ...


class PynvmlBackend:
    """`Nvml` over NVIDIA's pynvml. Untested here: no machine of this project has a GPU."""

    def __init__(self) -> None:
        import pynvml

        self._nvml: Any = pynvml
        pynvml.nvmlInit()

    def device_count(self) -> int:
        return int(self._nvml.nvmlDeviceGetCount())

    def cc_ready(self) -> bool:
        state = self._nvml.nvmlSystemGetConfComputeState()
        ready = self._nvml.nvmlSystemGetConfComputeGpusReadyState()
        return bool(state.ccFeature) and bool(ready)

    def attestation_report(self, index: int, nonce: bytes) -> bytes:
        import ctypes

        handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
        request = self._nvml.c_nvmlConfComputeGpuAttestationReport_t()
        ctypes.memmove(request.nonce, nonce, len(nonce))
        report = self._nvml.nvmlDeviceGetConfComputeGpuAttestationReport(handle, request)
        return bytes(report.attestationReport[: report.attestationReportSize])

    def certificate_chain(self, index: int) -> bytes:
        handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
        cert = self._nvml.nvmlDeviceGetConfComputeGpuCertificate(handle)
        return bytes(cert.attestationCertChain[: cert.attestationCertChainSize])


class NvmlGpuProvider:
    """Real GPU evidence: one SPDM report and device chain per GPU, through NVML."""

    def __init__(self, nvml: Nvml) -> None:
        self._nvml = nvml

    @staticmethod
    def available(nvml: Nvml | None) -> bool:
        try:
            return nvml is not None and nvml.device_count() > 0 and nvml.cc_ready()
        except Exception:
            return False

    def gpu_evidence(self, nonce: bytes) -> list[Evidence]:
        if len(nonce) != 32:
            raise AttestationError(f"a GPU nonce is 32 bytes, got {len(nonce)}")
        from seml.attest._nvidia import gpu_collateral  # the verifier's module: only with GPUs

        out: list[Evidence] = []
        try:
            if not self._nvml.cc_ready():
                raise AttestationError("the GPUs are not in confidential-computing mode")
            for index in range(self._nvml.device_count()):
                report = self._nvml.attestation_report(index, nonce)
                chain = self._nvml.certificate_chain(index)
                if not report or not chain:
                    raise AttestationError(f"NVML returned no evidence for GPU {index}")
                out.append(
                    Evidence(tee=TeeType.NVIDIA_GPU, quote=report, collateral=gpu_collateral(chain))
                )
        except AttestationError:
            raise
        except Exception as e:  # NVML raises its own NVMLError family
            raise AttestationError(f"NVML GPU attestation failed: {e}") from e
        if not out:
            raise AttestationError("NVML reports no GPU")
        return out


class CompositeProvider:
    """CPU TEE evidence for the report data, and each GPU's answering the derived nonce."""

    def __init__(self, cpu: EvidenceProvider, gpus: GpuEvidenceProvider) -> None:
        self.cpu = cpu
        self.gpus = gpus

    def evidence(self, report_data: bytes) -> Evidence:
        cpu = self.cpu.evidence(report_data)
        gpus = self.gpus.gpu_evidence(gpu_nonce_for(report_data))
        return Evidence(tee=TeeType.COMPOSITE, parts=(cpu, *gpus))


def _pynvml() -> Nvml | None:
    try:
        return PynvmlBackend()
    except Exception:
        return None


def select_gpu_provider(
    *,
    mode: str = "auto",
    nvml: Nvml | None = None,
    platform_key: bytes | None = None,
) -> GpuEvidenceProvider | None:
    """`auto`: NVML when a GPU in CC mode is present, else none; `required`: NVML or an error;
    `simulate`: software GPU evidence (labelled simulation); `none`: no GPU evidence."""
    if mode == "none":
        return None
    if mode == "simulate":
        return SimulatedGpuProvider(platform_key=platform_key)
    backend = nvml if nvml is not None else _pynvml()
    if backend is not None and NvmlGpuProvider.available(backend):
        return NvmlGpuProvider(backend)
    if mode == "required":
        raise AttestationError(
            "no NVIDIA GPU in confidential-computing mode found through NVML (pynvml)"
        )
    if mode != "auto":
        raise AttestationError(f"unknown GPU evidence mode {mode!r}")
    return None
