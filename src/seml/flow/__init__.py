"""The end-to-end SEML flow: sessions, services and their programs, the demo.

Names are imported on first use (PEP 562): the flow's programs (`seml flow train`, `predict`,
`fetch`, `copy-in`, `copy-out`) run once per phase of every flow, in both modes, and need
only `seml.flow._programs`; importing the flow driver with them would add the attestation
service's client, the session models (pydantic) and HTTP to every one of those processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seml._lazy import lazy_exports

if TYPE_CHECKING:
    from seml.flow._demo import Check, run_demo, verify_flow
    from seml.flow._flow import Flow, FlowConfig, Mode, PhaseResult
    from seml.flow._plan import FlowLayout, collaboration_session, private_session, remote
    from seml.flow._programs import (
        copy_in,
        copy_out,
        fetch,
        key_variable,
        predict_all,
        train_all,
    )
    from seml.flow._runner import StepFailed, StepResult, run_measured

_HOME = {
    "Check": "_demo",
    "run_demo": "_demo",
    "verify_flow": "_demo",
    "Flow": "_flow",
    "FlowConfig": "_flow",
    "Mode": "_flow",
    "PhaseResult": "_flow",
    "FlowLayout": "_plan",
    "collaboration_session": "_plan",
    "private_session": "_plan",
    "remote": "_plan",
    "copy_in": "_programs",
    "copy_out": "_programs",
    "fetch": "_programs",
    "key_variable": "_programs",
    "predict_all": "_programs",
    "train_all": "_programs",
    "StepFailed": "_runner",
    "StepResult": "_runner",
    "run_measured": "_runner",
}

__all__ = [
    "Check",
    "Flow",
    "FlowConfig",
    "FlowLayout",
    "Mode",
    "PhaseResult",
    "StepFailed",
    "StepResult",
    "collaboration_session",
    "copy_in",
    "copy_out",
    "fetch",
    "key_variable",
    "predict_all",
    "private_session",
    "remote",
    "run_demo",
    "run_measured",
    "train_all",
    "verify_flow",
]


__getattr__, __dir__ = lazy_exports(globals(), _HOME)
