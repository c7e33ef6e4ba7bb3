"""Verifiers that trust the stand-in hardware of _fake_hw (and simulation), for tests only."""

from __future__ import annotations

from _fake_hw import FakeAmd, FakeGpu
from seml.attest import (
    AzureSnpVerifier,
    CompositeVerifier,
    DispatchingVerifier,
    NvidiaGpuVerifier,
    SimulationVerifier,
    SnpVerifier,
    TeeType,
    Verifier,
)


def fake_verifier(amd: FakeAmd, gpu: FakeGpu) -> Verifier:
    cpu: dict[TeeType, Verifier] = {
        TeeType.SIMULATION: SimulationVerifier(),
        TeeType.SNP: SnpVerifier(roots=amd.roots, chain=amd.chain),
        TeeType.AZURE_SNP: AzureSnpVerifier(roots=amd.roots, chain=amd.chain),
    }
    gpus = NvidiaGpuVerifier(device_root=gpu.device_root)
    return DispatchingVerifier(
        {
            **cpu,
            TeeType.NVIDIA_GPU: gpus,
            TeeType.COMPOSITE: CompositeVerifier(DispatchingVerifier(cpu), gpus),
        }
    )
