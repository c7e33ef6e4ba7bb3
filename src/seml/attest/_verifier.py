"""One verifier for every evidence type: dispatch on the envelope's `tee`."""

from __future__ import annotations

from collections.abc import Sequence

from seml.attest._azure import AzureSnpVerifier
from seml.attest._composite import CompositeVerifier
from seml.attest._dcap import DcapVerifier
from seml.attest._evidence import Evidence, TeeType, Verdict, Verifier
from seml.attest._nvidia import NvidiaGpuVerifier, NvidiaServices
from seml.attest._simulation import SimulationVerifier
from seml.attest._snp import SnpVerifier
from seml.errors import AttestationError

__all__ = ["DispatchingVerifier", "default_verifier"]


class DispatchingVerifier:
    """Sends each envelope to the verifier registered for its TEE type."""

    def __init__(self, verifiers: dict[TeeType, Verifier]) -> None:
        self._verifiers = dict(verifiers)

    def verify(self, evidence: Evidence, *, now: int) -> Verdict:
        verifier = self._verifiers.get(evidence.tee)
        if verifier is None:
            raise AttestationError(f"no verifier for {evidence.tee.value} evidence")
        verdict = verifier.verify(evidence, now=now)
        if verdict.tee is not evidence.tee:
            raise AttestationError(
                f"verifier for {evidence.tee.value} returned a {verdict.tee.value} verdict"
            )
        return verdict


def default_verifier(
    collateral_fetch: bool = False,
    *,
    snp_crl: bytes | None = None,
    rims: Sequence[bytes] = (),
    nvidia_services: NvidiaServices | None = None,
) -> Verifier:
    """Every evidence type SEML knows, offline unless asked otherwise.

    `collateral_fetch` lets DCAP fetch missing collateral from Intel's PCS; `snp_crl` is AMD's
    CRL to check SNP chains against when an envelope brings none; `rims` are NVIDIA RIMs to
    compare GPU measurements with; `nvidia_services` asks NVIDIA online (OCSP, RIMs). Without
    them the verdicts say what was not checked (``revocation-unchecked``,
    ``measurements-unchecked``), for a session to tolerate or refuse.
    """
    dcap = DcapVerifier(collateral_fetch=collateral_fetch)
    cpu: dict[TeeType, Verifier] = {
        TeeType.SIMULATION: SimulationVerifier(),
        TeeType.SGX_DCAP: dcap,
        TeeType.TDX_DCAP: dcap,
        TeeType.SNP: SnpVerifier(crl=snp_crl),
        TeeType.AZURE_SNP: AzureSnpVerifier(crl=snp_crl),
    }
    gpu = NvidiaGpuVerifier(rims=rims, services=nvidia_services)
    composite = CompositeVerifier(DispatchingVerifier(cpu), gpu)
    return DispatchingVerifier({**cpu, TeeType.NVIDIA_GPU: gpu, TeeType.COMPOSITE: composite})
