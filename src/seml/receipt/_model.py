"""The receipt: one signed document that says what a training run used and produced.

The attestation service issues it when the publish step of a run completes (see
`seml.cas._receipts`). It is plain JSON: ``{"receipt": BODY, "signature": B64, "key": B64}``,
where the signature is Ed25519, by the service's identity key, over
``b"SEML receipt v1\\n" + canonical_json(BODY)``. The receipt's id is ``sha256:`` and the
SHA-256 of the same canonical bytes. Everything a reader may check is inside BODY; the schema
is strict (unknown keys are errors), so a field cannot be smuggled past a verifier that does
not know it.

Pure: models, canonical bytes, signing with a callable, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from seml.policy import SessionSignature, canonical_json

__all__ = [
    "FORMAT",
    "SIMULATED_NOTICE",
    "AuditRef",
    "InputRecord",
    "ModelFile",
    "ModelRecord",
    "PrivateSession",
    "ReceiptBody",
    "ReleaseTerms",
    "ServiceRecord",
    "SessionBinding",
    "SignedReceipt",
    "SpecRecord",
    "TrainingRecord",
    "VolumeStep",
    "model_digest",
    "receipt_id",
    "receipt_message",
    "sign_receipt",
]

FORMAT: Literal["seml-receipt/1"] = "seml-receipt/1"
_DOMAIN = b"SEML receipt v1\n"
SIMULATED_NOTICE = (
    "SIMULATED: the evidence of {services} was made in software (no TEE); this receipt "
    "records what the attested code reported, and proves nothing about hardware protection"
)

Hash = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
Path_ = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Role = Literal["fetch", "train", "publish"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SessionBinding(_Strict):
    """The collaboration session the run ran under, and the signatures that activated it."""

    name: Name
    hash: Hash
    version: int = Field(ge=1)
    parties: dict[Name, Hash]  # party -> fingerprint of its key in this version
    signatures: list[SessionSignature]


class PrivateSession(_Strict):
    """A session that exported data keys to the run's fetch service (a party's own session)."""

    name: Name
    hash: Hash
    secrets: list[Name]  # the secrets it exported to fetch


class VolumeStep(_Strict):
    """A protected volume as the runtime opened and sealed it (what ties the steps together)."""

    owner: Name
    volume: Name
    opened: int = Field(ge=0)
    sealed: int = Field(ge=1)


class ServiceRecord(_Strict):
    """One service of the run: the evidence verdict it was admitted with, and its completion."""

    service: Name
    role: Role
    tee: str
    simulated: bool
    evidence: str  # in words: "SIMULATED (made in software, no TEE)" or "hardware (tdx)"
    measurement: str
    platform: str | None
    platform_measurement: str | None
    tcb_status: str | None
    weaknesses: list[str]
    attested: float  # unix time of the secret release
    completed: float  # unix time of the completion report
    volumes: list[VolumeStep]


class InputRecord(_Strict):
    """One party's dataset as the fetch service's `seml pull` verified it."""

    party: Name
    remote: str
    manifest_version: int = Field(ge=1)
    manifest_digest: Hex64  # sha256 of the authenticated manifest (as in the push's sync state)
    files: int = Field(ge=0)
    bytes: int = Field(ge=0)


class SpecRecord(_Strict):
    name: Name
    sha256: Hex64


class ModelFile(_Strict):
    path: Path_
    sha256: Hex64
    size: int = Field(ge=0)


class TrainingRecord(_Strict):
    specs: list[SpecRecord]
    measurement: str  # the train service's code measurement
    models: list[ModelFile]  # the model files train wrote
    metrics: dict[str, dict[str, float]]


class ModelRecord(_Strict):
    """What the publish service pushed: `digest` names the model (its files, canonically)."""

    digest: Hash
    files: list[ModelFile]
    remote: str
    manifest_version: int = Field(ge=1)
    manifest_digest: Hex64


class AuditRef(_Strict):
    seq: int = Field(ge=1)
    hash: Hash
    event: str


class ReleaseTerms(_Strict):
    """Whether the model's key waits for its owners (`release.approve` on a secret)."""

    required: bool
    secret: Name | None = None
    rule: str = ""  # the rule in words
    owners: list[Name] = Field(default_factory=list)


class ReceiptBody(_Strict):
    format: Literal["seml-receipt/1"]
    issued: float
    issuer: Hash  # fingerprint of the identity key that signs
    simulated: bool
    notice: str  # "SIMULATED: ..." in words whenever `simulated`
    session: SessionBinding
    private_sessions: list[PrivateSession]
    services: list[ServiceRecord]
    inputs: list[InputRecord]
    training: TrainingRecord
    model: ModelRecord
    release: ReleaseTerms
    audit: list[AuditRef]


class SignedReceipt(_Strict):
    receipt: ReceiptBody
    signature: str = Field(max_length=200)
    key: str = Field(max_length=100)  # base64 Ed25519 public key (compare with your pin!)

    @property
    def id(self) -> str:
        return receipt_id(self.receipt)

    def to_json(self) -> str:
        return canonical_json(self.model_dump(mode="json")).decode() + "\n"


def _body(body: ReceiptBody | dict[str, Any]) -> bytes:
    data = body.model_dump(mode="json") if isinstance(body, ReceiptBody) else body
    return canonical_json(data)


def receipt_message(body: ReceiptBody | dict[str, Any]) -> bytes:
    """What the service signs (domain-separated from audit entries and session signatures)."""
    return _DOMAIN + _body(body)


def receipt_id(body: ReceiptBody | dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(_body(body)).hexdigest()


def model_digest(files: list[ModelFile]) -> str:
    """The model's name: sha256 over the canonical list of its files (path, sha256, size)."""
    rows = sorted((f.model_dump(mode="json") for f in files), key=lambda f: f["path"])
    return "sha256:" + hashlib.sha256(canonical_json(rows)).hexdigest()


def sign_receipt(
    body: ReceiptBody, sign: Callable[[bytes], bytes], public_key: bytes
) -> SignedReceipt:
    return SignedReceipt(
        receipt=body,
        signature=base64.b64encode(sign(receipt_message(body))).decode(),
        key=base64.b64encode(public_key).decode(),
    )
