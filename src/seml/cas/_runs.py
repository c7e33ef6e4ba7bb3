"""Runs and their receipts: which completions make one run, and the receipt that says so.

A run is a fetch, a train and a publish under one session hash, where train opened a shared
protected volume at the version fetch sealed and publish opened one at the version train sealed
(the runtime reports the versions it opened and sealed). Pure: stored facts in, a receipt or a
PolicyError naming why there is none out; the service's key signs through a callable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seml.cas._state import SessionRecord
from seml.errors import PolicyError
from seml.policy import Secret, Session, fingerprint, parse_public_key
from seml.receipt import (
    FORMAT,
    SIMULATED_NOTICE,
    AuditRef,
    CompletionReport,
    InputRecord,
    ModelRecord,
    PrivateSession,
    ReceiptBody,
    ReleaseTerms,
    ServiceRecord,
    SessionBinding,
    SignedReceipt,
    TrainingRecord,
    VolumeStep,
    model_digest,
    sign_receipt,
)

__all__ = ["Attested", "Completed", "assemble_run", "build_receipt", "release_secret"]


@dataclass(frozen=True)
class Attested:
    service: str
    verdict: dict[str, Any]
    seq: int
    time: float


@dataclass(frozen=True)
class Completed:
    service: str
    report: CompletionReport
    seq: int
    audit_hash: str
    time: float
    attested: Attested

    def volumes(self) -> dict[tuple[str, str], VolumeStep]:
        return {(v.owner, v.volume): v for v in self.report.volumes}


def chained(before: Completed, after: Completed, what: str) -> None:
    """`after` opened a volume at the version `before` sealed: the same run."""
    shared = sorted(set(before.volumes()) & set(after.volumes()))
    if not shared:
        raise PolicyError(
            f"{after.service} and {what} {before.service} share no protected volume: nothing "
            "shows they are one run"
        )
    for key in shared:
        sealed, opened = before.volumes()[key].sealed, after.volumes()[key].opened
        if sealed != opened:
            raise PolicyError(
                f"{after.service} opened volume {key[1]} v{opened}, but {what} {before.service} "
                f"sealed v{sealed}: not one run (another step ran in between)"
            )


def assemble_run(completed: list[Completed], publish: Completed) -> tuple[Completed, Completed]:
    """(fetch, train) of the run `publish` completes, from the completions under its session
    hash (in audit order); PolicyError naming why they do not make one run."""
    earlier = [c for c in completed if c.seq < publish.seq]
    train = next((c for c in reversed(earlier) if c.report.claims.training is not None), None)
    if train is None:
        raise PolicyError("no training completed before this publish under the same session hash")
    fetch = next(
        (c for c in reversed(earlier) if c.seq < train.seq and c.report.claims.inputs is not None),
        None,
    )
    if fetch is None:
        raise PolicyError("no fetch completed before the training under the same session hash")
    chained(train, publish, "the last training")
    chained(fetch, train, "the fetch before it,")
    return fetch, train


def service_record(c: Completed, role: str) -> ServiceRecord:
    v = c.attested.verdict
    weaknesses = [str(w) for w in v.get("weaknesses", [])]
    simulated = "simulation" in weaknesses
    tee = str(v.get("tee", ""))
    return ServiceRecord(
        service=c.service,
        role=role,  # type: ignore[arg-type]
        tee=tee,
        simulated=simulated,
        evidence=(
            "SIMULATED (made in software, no TEE): proves nothing about hardware"
            if simulated
            else f"hardware ({tee})"
        ),
        measurement=str(v.get("measurement", "")),
        platform=v.get("platform"),
        platform_measurement=v.get("platform_measurement"),
        tcb_status=v.get("tcb_status"),
        weaknesses=weaknesses,
        attested=c.attested.time,
        completed=c.time,
        volumes=list(c.report.volumes),
    )


def release_secret(session: Session) -> Secret | None:
    """The secret that carries the session's release rule, if any."""
    return next((s for s in session.secrets if s.release is not None), None)


def build_receipt(
    record: SessionRecord,
    fetch: Completed,
    train: Completed,
    publish: Completed,
    *,
    now: float,
    public_key: bytes,
    sign: Callable[[bytes], bytes],
) -> SignedReceipt:
    """The signed receipt of one run (`assemble_run` chose its steps) under `record`."""
    h = record.hash
    inputs = fetch.report.claims.inputs or []
    training = train.report.claims.training
    pushed = publish.report.claims.pushed
    assert training is not None and pushed is not None  # noqa: S101 - assemble_run chose them
    published = {(f.path, f.sha256, f.size) for f in pushed.files}
    for m in training.models:
        if (m.path, m.sha256, m.size) not in published:
            raise PolicyError(
                f"publish pushed no file {m.path} with the SHA-256 and size train reported: "
                "it published another model"
            )
    services = [
        service_record(fetch, "fetch"),
        service_record(train, "train"),
        service_record(publish, "publish"),
    ]
    simulated = [s.service for s in services if s.simulated]
    secret = release_secret(record.session)
    release = ReleaseTerms(required=False)
    if secret is not None and secret.release is not None:
        rule = secret.release.approve
        release = ReleaseTerms(
            required=True,
            secret=secret.name,
            rule=rule.describe(),
            owners=sorted(rule.parties()),
        )
    audit: list[AuditRef] = []
    for c in (fetch, train, publish):
        audit.append(
            AuditRef(
                seq=c.attested.seq,
                hash=str(c.attested.verdict["audit_hash"]),
                event="attest.release",
            )
        )
        audit.append(AuditRef(seq=c.seq, hash=c.audit_hash, event="run.complete"))
    body = ReceiptBody(
        format=FORMAT,
        issued=now,
        issuer=fingerprint(public_key),
        simulated=bool(simulated),
        notice=SIMULATED_NOTICE.format(services=", ".join(simulated)) if simulated else "",
        session=SessionBinding(
            name=record.session.name,
            hash=h,
            version=record.version,
            parties={
                p: fingerprint(parse_public_key(k)) for p, k in record.session.parties.items()
            },
            signatures=list(record.signatures),
        ),
        private_sessions=[
            PrivateSession.model_validate(e) for e in fetch.attested.verdict.get("exporters", [])
        ],
        services=services,
        inputs=[InputRecord.model_validate(i.model_dump()) for i in inputs],
        training=TrainingRecord(
            specs=training.specs,
            measurement=services[1].measurement,
            models=training.models,
            metrics=training.metrics,
        ),
        model=ModelRecord(
            digest=model_digest(pushed.files),
            files=pushed.files,
            remote=pushed.remote,
            manifest_version=pushed.manifest_version,
            manifest_digest=pushed.manifest_digest,
        ),
        release=release,
        audit=sorted(audit, key=lambda a: a.seq),
    )
    return sign_receipt(body, sign, public_key)
