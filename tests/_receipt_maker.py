"""A realistic signed receipt for unit tests, built from a flow session and fresh keys."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from seml.flow import collaboration_session
from seml.flow._plan import training_specs
from seml.policy import PartyKey, Session, new_key_pair, public_key_text, session_hash, sign_session
from seml.receipt import (
    SIMULATED_NOTICE,
    AuditRef,
    InputRecord,
    ModelFile,
    ModelRecord,
    PrivateSession,
    ReceiptBody,
    ReleaseTerms,
    ServiceRecord,
    SessionBinding,
    SignedReceipt,
    SpecRecord,
    TrainingRecord,
    VolumeStep,
    model_digest,
    sign_receipt,
)

MEASUREMENT = "ab" * 32
MODEL = b"a trained model, pretend"
METRICS = b'{"accuracy": 0.97}'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Made:
    receipt: SignedReceipt
    session: Session
    service_key: PartyKey
    parties: dict[str, PartyKey]


def _service(name: str, role: str, opened: int, sealed: int, t: float) -> ServiceRecord:
    return ServiceRecord(
        service=name,
        role=role,  # type: ignore[arg-type]
        tee="simulation",
        simulated=True,
        evidence="SIMULATED (made in software, no TEE)",
        measurement=MEASUREMENT,
        platform="sha256:" + "cd" * 32,
        platform_measurement=None,
        tcb_status=None,
        weaknesses=["simulation"],
        attested=t,
        completed=t + 1,
        volumes=[VolumeStep(owner="iris", volume="training", opened=opened, sealed=sealed)],
    )


def make_receipt(model: bytes = MODEL, *, run: int = 1) -> Made:
    parties = {p: new_key_pair() for p in ("alice", "bob")}
    session = collaboration_session(
        name="iris",
        parties={p: public_key_text(k.public) for p, k in parties.items()},
        measurement=MEASUREMENT,
        storage="s3://bucket/iris",
        specs=training_specs(["classification"]),
    )
    h = session_hash(session)
    files = [
        ModelFile(path="classification/model.skops", sha256=sha(model), size=len(model)),
        ModelFile(path="classification/metrics.json", sha256=sha(METRICS), size=len(METRICS)),
    ]
    base = 2 * run
    body = ReceiptBody(
        format="seml-receipt/1",
        issued=1_790_000_000.0 + run,
        issuer="sha256:" + "00" * 32,  # replaced below
        simulated=True,
        notice=SIMULATED_NOTICE.format(services="fetch, train, publish"),
        session=SessionBinding(
            name="iris",
            hash=h,
            version=1,
            parties={p: k.fingerprint for p, k in parties.items()},
            signatures=[sign_session(session, p, k) for p, k in parties.items()],
        ),
        private_sessions=[
            PrivateSession(name=f"iris-{p}", hash="sha256:" + sha(p.encode()), secrets=["data_key"])
            for p in parties
        ],
        services=[
            _service("fetch", "fetch", base - 2, base - 1, 1.0),
            _service("train", "train", base - 1, base, 2.0),
            _service("publish", "publish", base, base + 1, 3.0),
        ],
        inputs=[
            InputRecord(
                party=p,
                remote=f"s3://bucket/iris/datasets/{p}",
                manifest_version=1,
                manifest_digest=sha(f"manifest of {p}".encode()),
                files=1,
                bytes=1000,
            )
            for p in parties
        ],
        training=TrainingRecord(
            specs=[SpecRecord(name="classification", sha256=sha(b"spec"))],
            measurement=MEASUREMENT,
            models=[files[0]],
            metrics={"classification": {"accuracy": 0.97}},
        ),
        model=ModelRecord(
            digest=model_digest(files),
            files=files,
            remote="s3://bucket/iris/model",
            manifest_version=run,
            manifest_digest=sha(b"model manifest %d" % run),
        ),
        release=ReleaseTerms(required=False),
        audit=[AuditRef(seq=i, hash="sha256:" + sha(b"%d" % i), event="x") for i in (1, 2, 3)],
    )
    service_key = new_key_pair()
    body = body.model_copy(update={"issuer": service_key.fingerprint})
    return Made(
        sign_receipt(body, service_key.sign, service_key.public), session, service_key, parties
    )


def update_receipt(made: Made, signers: tuple[str, ...]) -> tuple[SignedReceipt, Session]:
    """A receipt of a run under an update of `made.session` (one more secret), activated by
    `signers`, signed by the same service."""
    previous = made.session
    doc = previous.model_dump(mode="json", exclude_none=True)
    doc["predecessor"] = session_hash(previous)
    doc["secrets"].append({"name": "extra", "kind": "ascii", "readers": ["train"]})
    update = Session.model_validate(doc)
    body = made.receipt.receipt
    binding = body.session.model_copy(
        update={
            "hash": session_hash(update),
            "version": 2,
            "signatures": [sign_session(update, p, made.parties[p]) for p in signers],
        }
    )
    signed = sign_receipt(
        body.model_copy(update={"session": binding}),
        made.service_key.sign,
        made.service_key.public,
    )
    return signed, update
