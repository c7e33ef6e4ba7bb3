"""Evidence that a workload runs the agreed code in a TEE, and how it is checked.

`EvidenceProvider`s make evidence (simulation in software; Gramine for SGX and configfs-tsm for
TDX on real hardware); `Verifier`s check it (simulation, and SGX/TDX DCAP quotes with dcap-qvl)
and return a `Verdict`; `check_weaknesses` and `expect_report_data` apply a session's rules.
Simulation evidence proves nothing about hardware and is always marked with the weakness
``simulation``.
"""

from seml.attest._dcap import DcapVerifier, weaknesses_for_status
from seml.attest._evidence import (
    TCB_WEAKNESSES,
    Evidence,
    EvidenceProvider,
    TeeType,
    Verdict,
    Verifier,
    check_weaknesses,
    expect_report_data,
    parse_evidence,
    report_data_for,
)
from seml.attest._providers import ConfigfsTsmProvider, GramineProvider, select_provider
from seml.attest._simulation import (
    SIMULATED_TCB_STATUS,
    SimulationProvider,
    SimulationVerifier,
    platform_id,
)
from seml.attest._verifier import DispatchingVerifier, default_verifier

__all__ = [
    "SIMULATED_TCB_STATUS",
    "TCB_WEAKNESSES",
    "ConfigfsTsmProvider",
    "DcapVerifier",
    "DispatchingVerifier",
    "Evidence",
    "EvidenceProvider",
    "GramineProvider",
    "SimulationProvider",
    "SimulationVerifier",
    "TeeType",
    "Verdict",
    "Verifier",
    "check_weaknesses",
    "default_verifier",
    "expect_report_data",
    "parse_evidence",
    "platform_id",
    "report_data_for",
    "select_provider",
    "weaknesses_for_status",
]
