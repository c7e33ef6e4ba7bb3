"""Completion reports: what an attested service says it did, sent by `seml run` after its
command exits 0, with the capability the attestation service sealed into its configuration.

The workload writes its claims to the file the runtime names in ``SEML_REPORT``
(`seml._claims.add_claims`, which loads nothing heavy);
the runtime adds what it saw itself (the volume versions it opened and sealed) and posts the
report. Only attested code holds the capability, so the claims are exactly as trustworthy as the
evidence that admitted it: with simulated evidence, they prove nothing about hardware.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from seml.receipt._model import InputRecord, ModelFile, SpecRecord, VolumeStep

__all__ = [
    "Claims",
    "CompletionReport",
    "InputClaim",
    "PushClaim",
    "TrainClaim",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


InputClaim = InputRecord


class TrainClaim(_Strict):
    specs: list[SpecRecord] = Field(max_length=256)
    models: list[ModelFile] = Field(max_length=4096)
    metrics: dict[str, dict[str, float]]


class PushClaim(_Strict):
    remote: str = Field(max_length=4096)
    manifest_version: int = Field(ge=1)
    manifest_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    files: list[ModelFile] = Field(max_length=100_000)


class Claims(_Strict):
    inputs: list[InputClaim] | None = Field(default=None, max_length=256)
    training: TrainClaim | None = None
    pushed: PushClaim | None = None


class CompletionReport(_Strict):
    capability: str = Field(max_length=100)
    session: str = Field(max_length=64)
    session_hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    service: str = Field(max_length=64)
    volumes: list[VolumeStep] = Field(default_factory=list, max_length=64)
    claims: Claims = Field(default_factory=Claims)
