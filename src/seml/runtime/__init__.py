"""The confidential runtime: measure a workload, attest it, and run it with its secrets."""

from seml.runtime._measure import NOT_COVERED, Explanation, explain, measure, runtime_identity
from seml.runtime._platform import (
    default_platform_key,
    init_platform_key,
    load_platform_key,
    platform_of,
)
from seml.runtime._run import SIMULATION_BANNER, RunOptions, RunResult, run_service

__all__ = [
    "NOT_COVERED",
    "SIMULATION_BANNER",
    "Explanation",
    "RunOptions",
    "RunResult",
    "default_platform_key",
    "explain",
    "init_platform_key",
    "load_platform_key",
    "measure",
    "platform_of",
    "run_service",
    "runtime_identity",
]
