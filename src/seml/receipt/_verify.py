"""Verifying a receipt offline: no service, no network; bytes and keys in, a verdict out.

`verify_receipt` never raises for a bad receipt: it returns a `ReceiptCheck` listing every check
it made (passed, failed, skipped) with the reason, JSON-serialisable, so a command line, a web
page and a test read the same answer. The caller decides what to pass: the service identity key
it pinned, and any of the model files it holds, the session document it approved, and the
manifest records of the pushes it made (its sync state, `sync-versions.json`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from seml.errors import SemlError
from seml.policy import (
    Session,
    SessionSignature,
    check_creation,
    check_update,
    fingerprint,
    parse_public_key,
    session_hash,
    verify_ed25519,
)
from seml.receipt._model import SignedReceipt, model_digest, receipt_message

__all__ = [
    "Check",
    "CheckStatus",
    "LocalFile",
    "ManifestSeen",
    "ReceiptCheck",
    "parse_sync_state",
    "verify_receipt",
]

_MAX_RECEIPT = 4 << 20


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    SKIPPED = "skipped"


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    status: CheckStatus
    detail: str


class ReceiptCheck(BaseModel):
    """The verdict: `ok` when no check failed. `simulated` and `notice` repeat what the receipt
    says about its evidence (trust them only when `ok`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ok: bool
    receipt: str | None  # its id, sha256:...
    session: str | None
    session_hash: str | None
    model: str | None  # the model digest
    simulated: bool | None
    notice: str
    checks: list[Check]

    @property
    def problems(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if c.status is CheckStatus.FAIL]


@dataclass(frozen=True)
class LocalFile:
    """A model file the verifier holds: what it calls it, its SHA-256 (hex) and size."""

    label: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ManifestSeen:
    """One manifest a party's machine pushed or pulled (its sync state records these)."""

    remote: str
    version: int
    digest: str


def parse_sync_state(data: bytes, *, source: str = "sync state") -> list[ManifestSeen]:
    """The manifest records of a sync state file (`sync-versions.json` in `SEML_STATE_DIR`)."""
    from seml.errors import UsageError

    try:
        doc = json.loads(data)
    except ValueError:
        raise UsageError(f"{source}: not JSON (expected a sync-versions.json)") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{source}: not a sync state (expected an object)")
    out = []
    for remote, rec in doc.items():
        if isinstance(rec, dict):
            version, digest = rec.get("version"), rec.get("digest")
            if isinstance(version, int) and isinstance(digest, str):
                out.append(ManifestSeen(str(remote), version, digest))
    return out


class _Checks:
    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.items.append(
            Check(name=name, status=CheckStatus.PASS if ok else CheckStatus.FAIL, detail=detail)
        )
        return ok

    def skip(self, name: str, detail: str) -> None:
        self.items.append(Check(name=name, status=CheckStatus.SKIPPED, detail=detail))


def _parse(
    data: bytes | Mapping[str, Any],
) -> tuple[SignedReceipt | None, dict[str, Any] | None, str]:
    if isinstance(data, bytes | bytearray):
        if len(data) > _MAX_RECEIPT:
            return None, None, f"larger than {_MAX_RECEIPT} bytes"
        try:
            raw = json.loads(data)
        except ValueError as e:
            return None, None, f"not JSON ({e})"
    else:
        raw = dict(data)
    if not isinstance(raw, dict):
        return None, None, "not a JSON object"
    try:
        return SignedReceipt.model_validate(raw), raw, ""
    except ValidationError as e:
        where = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in e.errors(include_url=False, include_input=False)[:3]
        )
        return None, raw, f"not a seml receipt ({where})"


def _signature(c: _Checks, r: SignedReceipt, raw: dict[str, Any], identity_key: bytes) -> None:
    try:
        key = base64.b64decode(r.key, validate=True)
        sig = base64.b64decode(r.signature, validate=True)
    except (binascii.Error, ValueError):
        c.add("signature", False, "the key or signature is not base64")
        return
    if key != identity_key:
        c.add(
            "signature",
            False,
            f"signed by key {fingerprint(key)}, not the pinned service key "
            f"{fingerprint(identity_key)}",
        )
        return
    # The signature covers the body exactly as it is in the file (canonically re-serialised),
    # so a field the schema would normalise still counts.
    body = raw.get("receipt")
    if not isinstance(body, dict) or not verify_ed25519(key, sig, receipt_message(body)):
        c.add(
            "signature", False, "the service's signature does not verify (the receipt was altered)"
        )
        return
    if r.receipt.issuer != fingerprint(key):
        c.add("signature", False, f"issuer {r.receipt.issuer} is not the signing key")
        return
    c.add("signature", True, f"signed by the service key {fingerprint(key)}")


def _consistency(c: _Checks, r: SignedReceipt) -> None:
    b = r.receipt
    problems = []
    if model_digest(b.model.files) != b.model.digest:
        problems.append("the model digest does not match its files")
    published = {(f.path, f.sha256, f.size) for f in b.model.files}
    for m in b.training.models:
        if (m.path, m.sha256, m.size) not in published:
            problems.append(f"trained model {m.path} is not among the published files")
    roles = [s.role for s in b.services]
    if sorted(roles) != ["fetch", "publish", "train"]:
        problems.append(f"the run's services are {roles}, not one fetch, train and publish")
    if b.simulated != any(s.simulated for s in b.services):
        problems.append("`simulated` disagrees with the services' evidence")
    if b.simulated and not b.notice.startswith("SIMULATED"):
        problems.append("simulated evidence without the SIMULATED notice")
    parties = [i.party for i in b.inputs]
    if len(set(parties)) != len(parties):
        problems.append("an input party is listed twice")
    for i in b.inputs:
        if i.party not in b.session.parties:
            problems.append(f"input party {i.party} is not a party of the session")
    c.add("consistency", not problems, "; ".join(problems) or "the receipt's parts agree")


def _models(c: _Checks, r: SignedReceipt, models: Sequence[LocalFile]) -> None:
    files = r.receipt.model.files
    for m in models:
        match = next((f for f in files if (f.sha256, f.size) == (m.sha256, m.size)), None)
        if match is None:
            c.add(
                f"model {m.label}",
                False,
                f"{m.label} (sha256 {m.sha256[:16]}..., {m.size} bytes) is not a file of the "
                f"model this run trained ({r.receipt.model.digest})",
            )
        else:
            c.add(f"model {m.label}", True, f"{m.label} is {match.path} of the published model")


def _session(c: _Checks, r: SignedReceipt, session: Session, predecessor: Session | None) -> None:
    b = r.receipt.session
    h = session_hash(session)
    if h != b.hash or session.name != b.name:
        c.add(
            "session",
            False,
            f"the session file is {session.name} {h}, the run ran under {b.name} {b.hash}",
        )
        return
    listed = {p: fingerprint(parse_public_key(k)) for p, k in session.parties.items()}
    if listed != b.parties:
        c.add("session", False, "the receipt's party keys differ from the session's")
        return
    signers = ", ".join(sorted({s.party for s in b.signatures}))
    if session.predecessor is not None and predecessor is not None:
        _update(c, b.signatures, session, predecessor, signers)
        return
    if predecessor is not None:
        c.add(
            "session",
            False,
            f"{b.name} {h} is a first version (no predecessor), yet a predecessor was given",
        )
        return
    bad = []
    for s in b.signatures:
        key = session.parties.get(s.party)
        if key is None or not s.valid_for(h, parse_public_key(key)):
            bad.append(s.party)
    if bad:
        c.add("session", False, f"activating signature of {', '.join(bad)} does not verify")
        return
    if session.predecessor is None:
        try:
            check_creation(session, b.signatures)
        except SemlError as e:
            c.add("session", False, f"the activating signatures do not meet its rule: {e}")
            return
        c.add("session", True, f"{b.name} {h}, activated by {signers} (its creation rule is met)")
    else:
        c.add(
            "session",
            True,
            f"{b.name} {h} (an update), signatures of {signers} verify; that they meet the "
            "predecessor's update rule is not checked: give the version before it "
            "(--predecessor) for that",
        )


def _update(
    c: _Checks,
    signatures: Sequence[SessionSignature],
    session: Session,
    predecessor: Session,
    signers: str,
) -> None:
    """An update, with the version before it: the signatures that activated it must meet that
    version's update rule with that version's keys (and newly enrolled approvers consent)."""
    ph = session_hash(predecessor)
    if ph != session.predecessor:
        c.add(
            "session",
            False,
            f"the predecessor file is {predecessor.name} {ph}; {session.name} follows "
            f"{session.predecessor}",
        )
        return
    try:
        check_update(predecessor, session, signatures)
    except SemlError as e:
        c.add(
            "session",
            False,
            f"the activating signatures do not meet the predecessor's update rule: {e}",
        )
        return
    c.add(
        "session",
        True,
        f"{session.name} {session_hash(session)}, an update of {ph}, activated by {signers} "
        "(the predecessor's update rule is met)",
    )


def _manifests(
    c: _Checks, r: SignedReceipt, manifests: Mapping[str, Sequence[ManifestSeen]]
) -> None:
    inputs = {i.party: i for i in r.receipt.inputs}
    for party, seen in manifests.items():
        name = f"input {party}"
        i = inputs.get(party)
        if i is None:
            c.add(name, False, f"the run used no input of {party} (inputs: {', '.join(inputs)})")
            continue
        match = any((s.version, s.digest) == (i.manifest_version, i.manifest_digest) for s in seen)
        if match:
            c.add(name, True, f"{party}'s manifest v{i.manifest_version} is the one {party} pushed")
        else:
            c.add(
                name,
                False,
                f"the run used {party}'s manifest v{i.manifest_version} "
                f"({i.manifest_digest[:16]}...), which is not in the records given for {party}",
            )


def verify_receipt(
    data: bytes | Mapping[str, Any],
    identity_key: bytes,
    *,
    models: Sequence[LocalFile] = (),
    session: Session | None = None,
    predecessor: Session | None = None,
    manifests: Mapping[str, Sequence[ManifestSeen]] | None = None,
) -> ReceiptCheck:
    """Check a receipt against the pinned service identity key and what the caller holds.

    `predecessor` is the session version before `session` (for an update): with it, the
    update's signatures are checked against that version's update rule too."""
    c = _Checks()
    r, raw, why = _parse(data)
    if r is None or raw is None:
        c.add("format", False, why)
        return ReceiptCheck(
            ok=False,
            receipt=None,
            session=None,
            session_hash=None,
            model=None,
            simulated=None,
            notice="",
            checks=c.items,
        )
    c.add("format", True, "a seml-receipt/1 document")
    _signature(c, r, raw, identity_key)
    _consistency(c, r)
    if models:
        _models(c, r, models)
    else:
        c.skip("model", "no model file given (--model)")
    if session is not None:
        _session(c, r, session, predecessor)
    else:
        c.skip("session", "no session file given (--session)")
    if manifests:
        _manifests(c, r, manifests)
    else:
        c.skip("inputs", "no manifest records given (--manifest PARTY=FILE)")
    b = r.receipt
    return ReceiptCheck(
        ok=all(x.status is not CheckStatus.FAIL for x in c.items),
        receipt=r.id,
        session=b.session.name,
        session_hash=b.session.hash,
        model=b.model.digest,
        simulated=b.simulated,
        notice=b.notice,
        checks=c.items,
    )
