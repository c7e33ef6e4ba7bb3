"""A service's evidence requirements in plain words: what the parties sign up to.

Pure: a service and the session's security rules in, sentences out. `seml session check` shows
them; a review command can too. Every sentence says what is accepted, never only what is not.
"""

from __future__ import annotations

from seml.policy._model import AzureSnpPlatform, Security, Service, SnpPlatform, TdxPlatform

__all__ = ["describe_requirements"]


def _short(values: list[str], limit: int = 3) -> str:
    shown = [v[:16] + "…" if len(v) > 20 else v for v in values[:limit]]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(shown) + more


def _one_of(values: list[str]) -> str:
    return f"{_short(values)}" if len(values) == 1 else f"one of {_short(values)}"


def _snp(p: SnpPlatform, what: str) -> str:
    parts = [f"{what} whose launch measurement is {_one_of(p.measurements)}"]
    parts.append(f"at VMPL {' or '.join(map(str, p.vmpl))}")
    if p.min_tcb is not None:
        t = p.min_tcb
        parts.append(
            f"on a platform TCB of at least bootloader {t.bootloader}, TEE {t.tee}, "
            f"SNP {t.snp}, microcode {t.microcode}"
        )
    else:
        parts.append("on any platform TCB AMD certified")
    if p.host_data is not None:
        parts.append(f"with host data {_one_of(p.host_data)}")
    if isinstance(p, AzureSnpPlatform) and p.pcrs:
        pinned = "; ".join(f"PCR {i} {_one_of(v)}" for i, v in sorted(p.pcrs.items()))
        parts.append(f"and vTPM {pinned}")
    return ", ".join(parts) + " (signed by AMD's VCEK or VLEK, chained to AMD's pinned root)"


def _tdx(p: TdxPlatform) -> str:
    text = f"an Intel TDX confidential VM with MRTD {_one_of(p.mrtd)}"
    if p.rtmr:
        text += ", " + ", ".join(f"RTMR{i} {_one_of(v)}" for i, v in sorted(p.rtmr.items()))
    return text + " (quote verified against Intel's collateral)"


def describe_requirements(service: Service, security: Security) -> list[str]:
    """What evidence `service` accepts, one sentence per rule."""
    lines: list[str] = []
    workloads = _one_of(service.measurements)
    cvm = service.confidential_vm
    tolerated = set(security.tolerate)
    if cvm is None:
        lines.append(
            f"Runs as a workload measured as {workloads}: an SGX enclave's MRENCLAVE, a TDX "
            "quote's MRTD, or the value `seml measure` prints (simulation)."
        )
    else:
        lines.append(
            f"Runs a workload whose measurement, computed by `seml run` inside the VM and bound "
            f"into the report data with the key and nonce, is {workloads}."
        )
        vms = []
        if cvm.snp is not None:
            vms.append(_snp(cvm.snp, "an AMD SEV-SNP confidential VM"))
        if cvm.azure_snp is not None:
            vms.append(_snp(cvm.azure_snp, "an Azure confidential VM (SEV-SNP behind a vTPM)"))
        if cvm.tdx is not None:
            vms.append(_tdx(cvm.tdx))
        lines.append("Inside " + "; or ".join(vms) + ".")
    if "nvidia-gpu" in service.requires:
        gpu = service.nvidia_gpu
        count = gpu.min_count if gpu is not None else 1
        text = (
            f"Needs at least {count} NVIDIA GPU{'s' if count > 1 else ''} in confidential-"
            "computing mode, each answering the nonce bound to the CPU's report (device chain "
            "to NVIDIA's pinned root)"
        )
        if gpu is not None and gpu.driver_versions:
            text += f", driver {_one_of(gpu.driver_versions)}"
        if gpu is not None and gpu.vbios_versions:
            text += f", VBIOS {_one_of(gpu.vbios_versions)}"
        lines.append(text + ".")
    if service.platforms is not None:
        lines.append(f"Only on the machines {_short(service.platforms)}.")
    lines.append(
        "Simulated evidence: ACCEPTED (the session tolerates simulation; it proves nothing about "
        "hardware)."
        if "simulation" in tolerated
        else "Simulated evidence: refused."
    )
    lines.append(
        "Debug enclaves or VMs: accepted (tolerated)."
        if "debug" in tolerated
        else "Debug enclaves or VMs: refused."
    )
    for weakness, words in (
        (
            "revocation-unchecked",
            "Evidence whose revocation was not checked (no AMD CRL/NVIDIA OCSP)",
        ),
        ("measurements-unchecked", "GPUs whose measurements were not compared with NVIDIA's RIMs"),
    ):
        if weakness in tolerated:
            lines.append(f"{words}: accepted (tolerated).")
        elif cvm is not None or service.requires:
            lines.append(f"{words}: refused.")
    return lines
