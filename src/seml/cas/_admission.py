"""Whether a verified verdict may run a service: the session's evidence rules, applied.

Pure: the service's rules, the verifier's verdict and the workload the evidence claims in; the
admitted workload measurement out, or an `AttestationError` naming the rule that failed. The
weaknesses (simulation, debug, TCB, unchecked revocation) are judged separately by
`seml.attest.check_weaknesses`, and the report-data binding by `expect_report_data`.

Confidential VMs are judged in two layers, like Confidential Space and CoCo: the hardware's
platform measurement (SNP MEASUREMENT; TDX MRTD and RTMRs) must be one the service allows for
that TEE type, and the workload measurement that the VM's own `seml run` bound into the report
data must be one of the service's `measurements`. SGX enclaves, TDX quotes without a
`confidential_vm.tdx` rule, and simulation keep the one-layer rule: the measured value itself
must be listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from seml.attest import Tcb, TeeType, Verdict
from seml.errors import AttestationError
from seml.policy import AzureSnpPlatform, Service, SnpPlatform, TdxPlatform

__all__ = ["Admission", "admit"]


@dataclass(frozen=True)
class Admission:
    workload: str  # the measurement the service's configuration is released for
    platform_measurement: str | None  # the confidential VM's, when there is one
    gpus: int


def _refuse(service: Service, message: str) -> AttestationError:
    return AttestationError(f"service {service.name}: {message}")


def _check_snp(service: Service, rules: SnpPlatform, verdict: Verdict) -> None:
    details = verdict.details
    if verdict.measurement not in rules.measurements:
        raise _refuse(
            service, f"{verdict.tee.value} launch measurement {verdict.measurement} is not allowed"
        )
    vmpl = int(details.get("vmpl", "-1"))
    if vmpl not in rules.vmpl:
        raise _refuse(
            service,
            f"the report comes from VMPL {vmpl}, allowed: {', '.join(map(str, rules.vmpl))}",
        )
    if rules.min_tcb is not None:
        reported = Tcb(*(int(x) for x in details["reported_tcb"].split("/")))
        minimum = Tcb(**rules.min_tcb.model_dump())
        low = reported.below(minimum)
        if low:
            raise _refuse(
                service, f"platform TCB {reported} is below the minimum: {', '.join(low)}"
            )
    if rules.host_data is not None and details.get("host_data") not in rules.host_data:
        raise _refuse(service, f"host data {details.get('host_data')} is not allowed")
    if isinstance(rules, AzureSnpPlatform):
        for index, allowed in sorted(rules.pcrs.items()):
            value = details.get(f"pcr{index}")
            if value not in allowed:
                raise _refuse(service, f"vTPM PCR {index} is {value}, not an allowed value")


def _check_tdx(service: Service, rules: TdxPlatform, verdict: Verdict) -> None:
    if verdict.measurement not in rules.mrtd:
        raise _refuse(service, f"TDX MRTD {verdict.measurement} is not allowed")
    for index, allowed in sorted(rules.rtmr.items()):
        value = verdict.details.get(f"rtmr{index}")
        if value not in allowed:
            raise _refuse(service, f"TDX RTMR{index} is {value}, not an allowed value")


def _check_gpus(service: Service, verdict: Verdict) -> None:
    gpus = verdict.gpus
    rules = service.nvidia_gpu
    need = rules.min_count if rules is not None else 1
    if len(gpus) < need:
        raise _refuse(
            service,
            f"requires {need} NVIDIA GPU(s) in confidential-computing mode; the evidence "
            f"has {len(gpus)} (send composite evidence: CPU TEE and GPU)",
        )
    if rules is None:
        return
    for i, gpu in enumerate(gpus):
        if gpu.simulated:  # stands in for hardware only where simulation is tolerated
            continue
        driver, vbios = gpu.details.get("driver_version"), gpu.details.get("vbios_version")
        if rules.driver_versions is not None and driver not in rules.driver_versions:
            allowed = ", ".join(rules.driver_versions)
            raise _refuse(service, f"GPU {i} runs driver {driver}, allowed: {allowed}")
        if rules.vbios_versions is not None and vbios not in rules.vbios_versions:
            allowed = ", ".join(rules.vbios_versions)
            raise _refuse(service, f"GPU {i} runs VBIOS {vbios}, allowed: {allowed}")


def admit(service: Service, verdict: Verdict, workload: str | None) -> Admission:
    """The workload measurement `service` is released for, given this verdict and the workload
    the evidence claims (bound into its report data), or an AttestationError saying why not."""
    if verdict.tee is TeeType.NVIDIA_GPU:
        raise _refuse(
            service,
            "GPU evidence alone attests no workload: send it with the CPU TEE's (composite)",
        )
    if "nvidia-gpu" in service.requires:
        _check_gpus(service, verdict)
    cpu = verdict.cpu
    cvm = service.confidential_vm
    rules: SnpPlatform | TdxPlatform | None = None
    if cvm is not None:
        rules = {
            TeeType.SNP: cvm.snp,
            TeeType.AZURE_SNP: cvm.azure_snp,
            TeeType.TDX_DCAP: cvm.tdx,
        }.get(cpu.tee)
    if cpu.tee in (TeeType.SNP, TeeType.AZURE_SNP) and rules is None:
        raise _refuse(service, f"no {cpu.tee.value} confidential VM is allowed for it")
    if rules is None:
        # One layer: the measured value is the workload (SGX, TDX without VM rules, simulation).
        if cpu.measurement not in service.measurements:
            raise AttestationError(
                f"measurement {cpu.measurement} is not allowed for service {service.name}"
            )
        return Admission(
            workload=cpu.measurement, platform_measurement=None, gpus=len(verdict.gpus)
        )
    if isinstance(rules, TdxPlatform):
        _check_tdx(service, rules, cpu)
    else:
        _check_snp(service, rules, cpu)
    if workload is None:
        raise _refuse(
            service,
            f"the {cpu.tee.value} evidence claims no workload measurement (seml run inside the "
            "VM binds one into the report data)",
        )
    if workload not in service.measurements:
        raise _refuse(service, f"workload measurement {workload} is not allowed")
    return Admission(
        workload=workload, platform_measurement=cpu.measurement, gpus=len(verdict.gpus)
    )
