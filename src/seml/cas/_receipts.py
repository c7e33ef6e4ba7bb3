"""Completion reports, receipts and model releases at the attestation service.

- Each attestation gets a capability (sealed into the service's configuration); its hash is kept
  with the evidence verdict (`attestations`). After the command exits 0, `seml run` posts the
  completion report with it: a report without a valid capability, for another session, service
  or session hash, or a second report for the same attestation (a replay) is refused (and the
  refusal logged by the caller).
- **A run** is a fetch, a train and a publish under one session hash, tied together by a
  protected volume: train opened the version fetch sealed, publish opened the version train
  sealed. The completion of a service that pushed (`pushed` claims) after a training under the
  same session hash completes the run, and the service issues ONE receipt for it, in the same
  transaction as the completion's audit entry. A publish whose volume chain does not lead back
  to the last training and its fetch (a mixed run) gets no receipt; the refusal is logged.
- A model key with a release rule (`release.approve` on a secret) is given to readers other than
  its producers only once the owners' decisions about the latest receipt's model meet the
  rule. Decisions are signed (`seml.policy.ModelDecision`), final, kept in the approvals ledger
  (subject kind `model`) and the audit log.

Every method takes `now`; nothing here speaks HTTP.
"""

from __future__ import annotations

import hashlib
import json
import secrets as _random
import sqlite3
from typing import Any

from seml.cas._receipt_models import (
    CompletionAnswer,
    ReceiptEntry,
    ReceiptList,
    ReleaseState,
    ReleaseStatus,
    receipts_challenge,
)
from seml.cas._runs import Attested, Completed, assemble_run, build_receipt, release_secret
from seml.cas._service import CasService, NotFoundError
from seml.cas._state import SessionRecord, StateStore
from seml.errors import IntegrityError, PolicyError, UsageError
from seml.policy import (
    Decision,
    ModelDecision,
    RuleState,
    Session,
    fingerprint,
    parse_public_key,
    verify_ed25519,
)
from seml.receipt import (
    CompletionReport,
    SignedReceipt,
)

__all__ = [
    "MODEL",
    "ReceiptDesk",
    "attestation_facts",
    "capability_id",
    "check_release",
    "new_capability",
    "record_attestation",
]

MODEL = "model"  # the approvals ledger's subject kind for model releases
_PAST = {Decision.APPROVE: "approved", Decision.REJECT: "rejected"}


def new_capability() -> str:
    return _random.token_urlsafe(32)


def capability_id(capability: str) -> str:
    """What the service keeps of a capability: its hash (a database reader cannot report)."""
    return hashlib.sha256(capability.encode()).hexdigest()


def attestation_facts(
    store: StateStore, record: SessionRecord, service: str, details: dict[str, Any]
) -> dict[str, Any]:
    """The verdict as the audit entry has it, plus the sessions this service's imported
    secrets come from (their latest versions: what `resolve_config` just used)."""
    exporters: dict[str, tuple[str, list[str]]] = {}
    used = {p.name for _, p in record.placeholders(service)}
    for secret in record.session.secrets:
        if secret.import_ is None or secret.name not in used:
            continue
        source = store.latest(secret.import_.session)
        if source is not None:
            entry = exporters.setdefault(source.session.name, (source.hash, []))
            entry[1].append(secret.import_.secret)
    return {
        **details,
        "exporters": [
            {"name": n, "hash": h, "secrets": sorted(s)} for n, (h, s) in sorted(exporters.items())
        ],
    }


def record_attestation(
    store: StateStore,
    db: sqlite3.Connection,
    capability: str,
    record: SessionRecord,
    service: str,
    facts: dict[str, Any],
    now: float,
) -> None:
    """Inside the attestation's transaction, after its audit entry."""
    seq, h = store.audit_head
    db.execute(
        "INSERT INTO attestations (capability, session, hash, service, verdict, seq, time) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            capability_id(capability),
            record.session.name,
            record.hash,
            service,
            json.dumps({**facts, "audit_hash": h}, sort_keys=True),
            seq,
            now,
        ),
    )


# -- the desk -----------------------------------------------------------------------------


class ReceiptDesk:
    def __init__(self, service: CasService) -> None:
        self.service = service
        self.store = service.store

    # -- completions ------------------------------------------------------------------

    def _attested(self, capability: str) -> tuple[str, str, str, Attested] | None:
        row = self.store.db.execute(
            "SELECT session, hash, service, verdict, seq, time FROM attestations "
            "WHERE capability = ?",
            (capability_id(capability),),
        ).fetchone()
        if row is None:
            return None
        session, h, service, verdict, seq, time = row
        return session, h, service, Attested(service, json.loads(verdict), seq, time)

    def _completions(self, hash_: str) -> list[Completed]:
        rows = self.store.db.execute(
            "SELECT c.service, c.report, c.seq, c.time, a.verdict, a.seq, a.time "
            "FROM completions c JOIN attestations a ON a.capability = c.capability "
            "WHERE c.hash = ? ORDER BY c.seq",
            (hash_,),
        ).fetchall()
        out = []
        for service, report, seq, time, verdict, a_seq, a_time in rows:
            data = json.loads(report)
            out.append(
                Completed(
                    service,
                    CompletionReport.model_validate(data["report"]),
                    seq,
                    data["audit_hash"],
                    time,
                    Attested(service, json.loads(verdict), a_seq, a_time),
                )
            )
        return out

    def complete(self, report: CompletionReport, now: float) -> CompletionAnswer:
        found = self._attested(report.capability)
        if found is None:
            raise PolicyError(
                "completion report refused: no attestation holds this capability (forged)"
            )
        session, h, service, attested = found
        if (session, h, service) != (report.session, report.session_hash, report.service):
            raise PolicyError(
                f"completion report refused: its capability was issued to {service} of "
                f"{session} {h}, not {report.service} of {report.session} {report.session_hash}"
            )
        done = self.store.db.execute(
            "SELECT seq FROM completions WHERE capability = ?", (capability_id(report.capability),)
        ).fetchone()
        if done is not None:
            raise PolicyError(
                f"completion report refused: {service} of {session} already reported this "
                f"attestation's completion (audit entry {done[0]}): a replay"
            )
        kept = report.model_copy(update={"capability": ""})
        claims = report.claims
        answer: CompletionAnswer
        with self.store.transaction() as db:
            self.store.append_audit(
                db,
                "run.complete",
                {
                    "session": session,
                    "hash": h,
                    "service": service,
                    "attestation": attested.seq,
                    "claims": sorted(k for k, v in claims.model_dump().items() if v is not None),
                    "volumes": [v.model_dump() for v in report.volumes],
                },
                now,
            )
            seq, audit_hash = self.store.audit_head
            db.execute(
                "INSERT INTO completions (capability, session, hash, service, report, seq, time) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    capability_id(report.capability),
                    session,
                    h,
                    service,
                    json.dumps({"report": kept.model_dump(mode="json"), "audit_hash": audit_hash}),
                    seq,
                    now,
                ),
            )
            answer = CompletionAnswer(seq=seq)
            if claims.pushed is not None:
                this = Completed(service, kept, seq, audit_hash, now, attested)
                answer = self._issue(db, session, h, this, now) or answer
        return answer

    def _issue(
        self, db: sqlite3.Connection, session: str, h: str, publish: Completed, now: float
    ) -> CompletionAnswer | None:
        completed = self._completions(h)
        if not any(c.report.claims.training is not None for c in completed):
            return None  # a push outside a training run (an upload): no receipt to make
        try:
            fetch, train = assemble_run([*completed, publish], publish)
            record = self.store.by_hash(h)
            if record is None:
                raise IntegrityError(f"session {h} of a completed run is not stored")
            identity = self.service.identity
            signed = build_receipt(
                record,
                fetch,
                train,
                publish,
                now=now,
                public_key=identity.identity_public,
                sign=identity.sign,
            )
        except PolicyError as e:
            self.store.append_audit(
                db, "receipt.refused", {"session": session, "hash": h, "reason": str(e)}, now
            )
            return CompletionAnswer(seq=publish.seq, note=f"no receipt: {e}")
        body = signed.receipt
        self.store.append_audit(
            db,
            "receipt.issue",
            {"session": session, "hash": h, "receipt": signed.id, "model": body.model.digest},
            now,
        )
        seq, _ = self.store.audit_head
        db.execute(
            "INSERT INTO receipts (id, session, hash, model, document, seq, time) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (signed.id, session, h, body.model.digest, signed.to_json(), seq, now),
        )
        return CompletionAnswer(seq=publish.seq, receipt=signed.id)

    def _stored(self, where: str, args: tuple[Any, ...], last: bool = False) -> list[SignedReceipt]:
        order = "ORDER BY seq DESC LIMIT 1" if last else "ORDER BY seq"
        rows = self.store.db.execute(
            f"SELECT id, document FROM receipts WHERE {where} {order}",  # noqa: S608
            args,
        ).fetchall()
        out = []
        for rid, document in rows:
            r = SignedReceipt.model_validate_json(document)
            if r.id != rid:
                raise IntegrityError(f"stored receipt {rid} does not match its id (tampered store)")
            out.append(r)
        return out

    def latest_receipt(self, session: str) -> SignedReceipt | None:
        found = self._stored("session = ?", (session,), last=True)
        return found[0] if found else None

    def receipts(
        self, session: str, *, key: bytes, nonce: bytes, signature: bytes, now: float
    ) -> ReceiptList:
        """Every receipt of `session`, for one of its parties (signed challenge)."""
        self.service.nonces.consume(nonce, now)
        if len(key) != 32:
            raise UsageError("the reader's key must be a 32-byte Ed25519 public key")
        if not verify_ed25519(key, signature, receipts_challenge(session, nonce)):
            raise PolicyError(f"bad read challenge signature for the receipts of {session}")
        latest = self.store.latest(session)
        if latest is None:
            raise NotFoundError(f"no session named {session}")
        if not any(parse_public_key(k) == key for k in latest.session.parties.values()):
            raise PolicyError(f"key {fingerprint(key)} is not the key of a party of {session}")
        return ReceiptList(
            session=session,
            receipts=[
                ReceiptEntry(receipt=r, status=self.status(r, latest.session))
                for r in self._stored("session = ?", (session,))
            ],
        )

    # -- release ----------------------------------------------------------------------

    def _decisions(self, session: str, model: str) -> list[ModelDecision]:
        rows = self.store.db.execute(
            "SELECT signature FROM approvals WHERE subject_kind = ? AND subject = ? ORDER BY rowid",
            (MODEL, model),
        ).fetchall()
        out = []
        for (signed,) in rows:
            d = ModelDecision.model_validate_json(signed)
            if d.hash != model:
                raise IntegrityError(f"a stored decision about model {model} names {d.hash}")
            if d.session == session:
                out.append(d)
        return out

    def status(self, receipt: SignedReceipt, session: Session) -> ReleaseStatus:
        """Where the release of `receipt`'s model stands under `session` (its latest version)."""
        body = receipt.receipt
        model = body.model.digest
        decisions = self._decisions(session.name, model)
        secret = release_secret(session)
        common: dict[str, Any] = {
            "session": session.name,
            "receipt": receipt.id,
            "model": model,
            "decisions": decisions,
        }
        if secret is None or secret.release is None:
            return ReleaseStatus(
                **common,
                required=False,
                state=ReleaseState.RELEASED,
                summary=f"model {model} was released at publish (no release rule)",
                rule="",
                approved=[],
                rejected=[],
                needs=[],
                waiting=[],
            )
        rule = secret.release.approve
        counted = [d for d in decisions if self._counts(session, rule.parties(), d)]
        approved = sorted({d.party for d in counted if d.decision is Decision.APPROVE})
        rejected = sorted({d.party for d in counted if d.decision is Decision.REJECT})
        verdict = rule.evaluate(approved, rejected)
        if verdict.state is RuleState.SATISFIED:
            state, summary = (
                ReleaseState.RELEASED,
                f"model {model} released: approved by " + (", ".join(approved)),
            )
        elif verdict.state is RuleState.DEFEATED:
            state, summary = ReleaseState.REJECTED, f"model {model} was rejected: {verdict.reason}"
        else:
            state, summary = (
                ReleaseState.AWAITING,
                f"model {model} awaits approval by {verdict.signers}",
            )
        return ReleaseStatus(
            **common,
            required=True,
            state=state,
            summary=summary,
            rule=rule.describe(),
            approved=approved,
            rejected=rejected,
            needs=list(verdict.needs) if state is ReleaseState.AWAITING else [],
            waiting=sorted(verdict.waiting) if state is ReleaseState.AWAITING else [],
        )

    @staticmethod
    def _counts(session: Session, owners: frozenset[str], d: ModelDecision) -> bool:
        listed = session.parties.get(d.party)
        return (
            d.party in owners
            and listed is not None
            and d.decision in _PAST
            and d.valid_for(d.hash, parse_public_key(listed))
        )

    def decide(self, decision: ModelDecision, now: float) -> ReleaseStatus:
        """Record an owner's signed approval or rejection of a receipt's model. Final: an owner
        that approved cannot reject, nor the other way round."""
        if decision.decision not in _PAST:
            raise UsageError(f"a model is approved or rejected, not {decision.decision.value}d")
        name, model = decision.session, decision.hash
        receipts = self._stored("session = ? AND model = ?", (name, model))
        if not receipts:
            raise NotFoundError(f"no receipt of session {name} names model {model}")
        latest = self.store.latest(name)
        if latest is None:  # a receipt names it, so it exists
            raise IntegrityError(f"session {name} of a receipt is not stored")
        session = latest.session
        secret = release_secret(session)
        if secret is None or secret.release is None:
            raise PolicyError(
                f"session {name} has no release rule: model {model} was released at publish, "
                "there is nothing to approve"
            )
        owners = secret.release.approve.parties()
        if decision.party not in owners:
            raise PolicyError(
                f"{decision.party} is not an owner of model {model}: its release rule counts "
                f"{', '.join(sorted(owners))}"
            )
        listed = session.parties[decision.party]
        if decision.key != fingerprint(parse_public_key(listed)):
            raise PolicyError(f"key {decision.key} is not {decision.party}'s key in {name}")
        if not decision.valid_for(model, parse_public_key(listed)):
            raise PolicyError(f"{decision.party}'s decision about model {model} does not verify")
        mine = [d for d in self._decisions(name, model) if d.party == decision.party]
        other = next((d for d in mine if d.decision is not decision.decision), None)
        if other is not None:
            raise PolicyError(
                f"{decision.party} already {_PAST[other.decision]} model {model}: a decision is "
                "final"
            )
        if not mine:
            with self.store.transaction() as db:
                db.execute(
                    "INSERT INTO approvals (subject_kind, subject, party, key, decision, "
                    "signature, time) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        MODEL,
                        model,
                        decision.party,
                        decision.key,
                        decision.decision.value,
                        decision.model_dump_json(),
                        now,
                    ),
                )
                self.store.append_audit(
                    db,
                    f"model.{decision.decision.value}",
                    {
                        "session": name,
                        "model": model,
                        "receipt": receipts[-1].id,
                        "party": decision.party,
                        "key": decision.key,
                    },
                    now,
                )
        return self.status(receipts[-1], session)


def check_release(desk: ReceiptDesk, record: SessionRecord, service: str) -> str | None:
    """Refuse `service` a model key whose release its owners have not approved (yet); for a
    gated service that may have it, the manifest digest of the approved model (its `seml pull`
    takes that manifest only)."""
    svc = record.session.service(service)
    if svc is None:
        return None
    released: str | None = None
    used = {p.name for _, p in record.placeholders(service)}
    for secret in record.session.secrets:
        release = secret.release
        if release is None or secret.name not in used or service in release.producers:
            continue
        receipt = desk.latest_receipt(record.session.name)
        if receipt is None:
            raise PolicyError(
                f"{secret.name} of session {record.session.name} is released only after a run "
                f"completes with a receipt and {release.approve.describe()} approve its model; "
                "no run has completed"
            )
        status = desk.status(receipt, record.session)
        if status.state is not ReleaseState.RELEASED:
            raise PolicyError(status.summary)
        released = receipt.receipt.model.manifest_digest
    return released
