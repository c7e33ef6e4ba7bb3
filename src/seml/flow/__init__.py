"""The end-to-end SEML flow: sessions, services and their programs, the demo."""

from seml.flow._demo import Check, run_demo, verify_flow
from seml.flow._flow import Flow, FlowConfig, Mode, PhaseResult
from seml.flow._plan import FlowLayout, collaboration_session, private_session, remote
from seml.flow._programs import copy_in, copy_out, fetch, key_variable, predict_all, train_all
from seml.flow._runner import StepFailed, StepResult, run_measured

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
