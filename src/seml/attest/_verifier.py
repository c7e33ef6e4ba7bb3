"""One verifier for every evidence type: dispatch on the envelope's `tee`."""

from __future__ import annotations

from seml.attest._dcap import DcapVerifier
from seml.attest._evidence import Evidence, TeeType, Verdict, Verifier
from seml.attest._simulation import SimulationVerifier
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


def default_verifier(collateral_fetch: bool = False) -> Verifier:
    """Simulation, SGX DCAP and TDX DCAP; `collateral_fetch` lets DCAP fetch missing collateral
    from Intel's PCS (network I/O, off by default)."""
    dcap = DcapVerifier(collateral_fetch=collateral_fetch)
    return DispatchingVerifier(
        {TeeType.SIMULATION: SimulationVerifier(), TeeType.SGX_DCAP: dcap, TeeType.TDX_DCAP: dcap}
    )
