"""Composite evidence: a CPU TEE's evidence and one or more GPUs', accepted only together.

A confidential VM with a GPU attests both: the CPU TEE (SEV-SNP, TDX, ...) binds the workload's
nonce and key into its report data, and each GPU answers an SPDM nonce derived from that same
report data (`gpu_nonce_for`). A GPU report made for another attestation therefore fails here,
and the verdict is the CPU's with every GPU verdict attached and every weakness merged.
"""

from __future__ import annotations

from seml.attest._evidence import Evidence, TeeType, Verdict, Verifier, gpu_nonce_for
from seml.errors import AttestationError

__all__ = ["CompositeVerifier"]


class CompositeVerifier:
    """`cpu` verifies the first part; `gpu(nonce)` gives the verifier for each GPU part,
    expecting that nonce."""

    def __init__(self, cpu: Verifier, gpu: Verifier) -> None:
        self._cpu = cpu
        self._gpu = gpu

    def verify(self, evidence: Evidence, *, now: int) -> Verdict:
        if evidence.tee is not TeeType.COMPOSITE or len(evidence.parts) < 2:
            raise AttestationError(f"not composite evidence: {evidence.tee.value}")
        cpu_part, *gpu_parts = evidence.parts
        cpu = self._cpu.verify(cpu_part, now=now)
        if cpu.tee is not cpu_part.tee or cpu.tee in (TeeType.COMPOSITE, TeeType.NVIDIA_GPU):
            raise AttestationError("the first part of composite evidence is not a CPU TEE's")
        nonce = gpu_nonce_for(cpu.report_data)
        gpus: list[Verdict] = []
        for i, part in enumerate(gpu_parts):
            try:
                gpu = self._gpu.verify(part, now=now)
            except AttestationError as e:
                raise AttestationError(f"GPU {i}: {e}") from e
            if gpu.tee is not TeeType.NVIDIA_GPU:
                raise AttestationError(f"GPU {i}: not GPU evidence ({gpu.tee.value})")
            if gpu.report_data != nonce:
                raise AttestationError(
                    f"GPU {i} evidence answers nonce {gpu.report_data.hex()}, not the one bound "
                    f"to the {cpu.tee.value} report ({nonce.hex()}): not part of this attestation"
                )
            gpus.append(gpu)
        weaknesses = set(cpu.weaknesses)
        for gpu in gpus:
            weaknesses |= gpu.weaknesses
        details = dict(cpu.details)
        details["cpu_tee"] = cpu.tee.value
        details["gpus"] = str(len(gpus))
        return Verdict(
            tee=TeeType.COMPOSITE,
            measurement=cpu.measurement,
            report_data=cpu.report_data,
            tcb_status=cpu.tcb_status,
            weaknesses=frozenset(weaknesses),
            advisories=cpu.advisories,
            details=details,
            parts=(cpu, *gpus),
        )
