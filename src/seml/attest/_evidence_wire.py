"""Reading evidence envelopes from JSON: the service's side (pydantic, with its error reports).

`Evidence` itself is a plain dataclass (a workload makes one at every start); this model is the
one the service and `seml attest verify` parse untrusted JSON with, field by field, and it
turns into an `Evidence` only once every field and the envelope's shape are right.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import pydantic

from seml.attest._evidence import (
    _WORKLOAD,
    MAX_COLLATERAL_CHARS,
    MAX_GPUS,
    MAX_QUOTE_BYTES,
    Evidence,
    TeeType,
)
from seml.errors import AttestationError

__all__ = ["EvidenceWire", "parse_wire"]


class EvidenceWire(pydantic.BaseModel):
    """An evidence envelope as JSON carries it; `to_evidence` gives the checked `Evidence`."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    tee: TeeType
    quote: bytes = pydantic.Field(default=b"", max_length=MAX_QUOTE_BYTES)
    collateral: str | None = pydantic.Field(default=None, max_length=MAX_COLLATERAL_CHARS)
    workload: str | None = None
    parts: tuple[EvidenceWire, ...] = pydantic.Field(default=(), max_length=1 + MAX_GPUS)

    @pydantic.field_validator("workload")
    @classmethod
    def _workload_hex(cls, value: str | None) -> str | None:
        if value is not None and not _WORKLOAD.fullmatch(value):
            raise ValueError("workload must be 32 to 128 lowercase hex digits")
        return value

    @pydantic.field_validator("quote", mode="before")
    @classmethod
    def _decode_quote(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return base64.b64decode(value.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError) as e:
                raise ValueError("quote must be base64") from e
        return value

    @pydantic.model_validator(mode="after")
    def _shape(self) -> EvidenceWire:
        self.to_evidence()  # the envelope's shape (ValueError, reported by pydantic)
        return self

    def to_evidence(self) -> Evidence:
        return Evidence(
            tee=self.tee,
            quote=self.quote,
            collateral=self.collateral,
            workload=self.workload,
            parts=tuple(p.to_evidence() for p in self.parts),
        )


def parse_wire(data: bytes | str) -> Evidence:
    """Parse an envelope from JSON, turning any malformation into one `AttestationError`."""
    try:
        return EvidenceWire.model_validate_json(data).to_evidence()
    except pydantic.ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'envelope'}: {err['msg']}"
            for err in e.errors(include_url=False, include_input=False)
        )
        raise AttestationError(f"malformed evidence envelope: {problems}") from e
