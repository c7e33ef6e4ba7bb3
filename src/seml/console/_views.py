"""What each page shows, as plain data: pure functions from the service's answers (and the
party's public key) to view models the templates render. No I/O, no HTML: tested directly.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seml.cas import AuditEntry, ProposalView, SessionStatus
    from seml.cas._receipt_models import ReceiptEntry, ReleaseStatus
    from seml.policy import Review, Session
    from seml.receipt import ReceiptCheck

__all__ = [
    "AuditRow",
    "AuditView",
    "ProposalRow",
    "ReceiptView",
    "ReleaseView",
    "ReviewView",
    "SessionRow",
    "StatusView",
    "audit_view",
    "my_parties",
    "proposal_status",
    "receipt_view",
    "release_view",
    "review_view",
    "session_rows",
    "status_view",
    "when",
]


def when(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def my_parties(session: Session, public_key: bytes) -> list[str]:
    """The names under which `public_key` is a party of `session`."""
    from seml.policy import parse_public_key

    return sorted(p for p, text in session.parties.items() if parse_public_key(text) == public_key)


def _simulated(session: Session) -> bool:
    return "simulation" in session.security.tolerate


@dataclass(frozen=True)
class StatusView:
    """Who approved a proposal, who rejected it, who is missing; what this party may do."""

    name: str
    hash: str
    kind: str  # "first version" | "update"
    proposer: str
    created: str
    state: str
    state_label: str
    is_open: bool
    version: int | None
    rule: str
    approved: list[str]
    rejected: list[str]
    waiting: list[str]
    needs: list[str]
    reason: str
    me: list[str]  # this party's names in the proposal (or the version it updates)
    my_decision: str | None  # approve | reject, if this party decided
    can_decide: bool


def status_view(
    view: ProposalView, public_key: bytes, previous: Session | None = None
) -> StatusView:
    me = sorted(
        set(my_parties(view.document, public_key))
        | set(my_parties(previous, public_key) if previous is not None else [])
    )
    mine = [
        d.decision.decision.value
        for d in view.decisions
        if d.decision.party in me and d.decision.decision.value != "withdraw"
    ]
    state = view.state.value
    if view.version is not None:
        label = f"ACCEPTED: active as version {view.version}"
    elif not view.state.closed:
        label = "OPEN: waiting for approvals" if state == "open" else "APPROVED: " + view.reason
    else:
        label = f"{state.upper()}: {view.reason}"
    is_open = not view.state.closed
    return StatusView(
        name=view.name,
        hash=view.hash,
        kind="first version" if view.predecessor is None else "update",
        proposer=view.proposer,
        created=when(view.created),
        state=state,
        state_label=label,
        is_open=is_open,
        version=view.version,
        rule=view.rule,
        approved=list(view.approved),
        rejected=list(view.rejected),
        waiting=list(view.waiting),
        needs=list(view.needs),
        reason=view.reason,
        me=me,
        my_decision=mine[-1] if mine else None,
        can_decide=is_open and bool(me) and not mine,
    )


def proposal_status(status: SessionStatus, view: ProposalView, public_key: bytes) -> StatusView:
    """`status_view` of one of `status`'s proposals: an update is judged with the active
    version it follows too (a party of that version may decide about it)."""
    previous = status.active.document if status.active is not None else None
    return status_view(view, public_key, previous if view.predecessor else None)


@dataclass(frozen=True)
class ProposalRow:
    hash: str
    kind: str
    proposer: str
    state: str
    needs: list[str]
    waiting_on_me: bool


@dataclass(frozen=True)
class SessionRow:
    name: str
    active_version: int | None
    active_hash: str | None
    active_since: str
    signers: list[str]
    simulated: bool
    me: list[str]
    open: list[ProposalRow]
    closed: int


def session_rows(statuses: Iterable[SessionStatus], public_key: bytes) -> list[SessionRow]:
    """One row per session: its active version and its still-open proposals."""
    rows = []
    for s in statuses:
        docs = [s.active.document] if s.active is not None else []
        still_open = []
        for p in s.proposals:
            if p.state.closed:
                continue
            docs.append(p.document)
            st = proposal_status(s, p, public_key)
            still_open.append(
                ProposalRow(
                    hash=p.hash,
                    kind=st.kind,
                    proposer=p.proposer,
                    state=p.state.value,
                    needs=list(p.needs),
                    waiting_on_me=st.can_decide and any(m in p.waiting for m in st.me),
                )
            )
        me = sorted({n for d in docs for n in my_parties(d, public_key)})
        rows.append(
            SessionRow(
                name=s.name,
                active_version=s.active.version if s.active is not None else None,
                active_hash=s.active.hash if s.active is not None else None,
                active_since=when(s.active.accepted) if s.active is not None else "-",
                signers=list(s.active.signers) if s.active is not None else [],
                simulated=any(_simulated(d) for d in docs),
                me=me,
                open=still_open,
                closed=sum(1 for p in s.proposals if p.state.closed),
            )
        )
    return sorted(rows, key=lambda r: (not any(p.waiting_on_me for p in r.open), r.name))


@dataclass(frozen=True)
class ReviewView:
    review: Review
    simulated: bool
    status: StatusView | None  # when the reviewed version is a proposal
    active_version: int | None  # when it is the active version


def review_view(status: SessionStatus, review: Review, public_key: bytes) -> ReviewView:
    st = None
    for p in status.proposals:
        if p.hash == review.hash:
            st = proposal_status(status, p, public_key)
    active = (
        status.active.version
        if status.active is not None and status.active.hash == review.hash
        else None
    )
    return ReviewView(
        review=review,
        simulated=any(w.weakness == "simulation" for w in review.tolerated),
        status=st,
        active_version=active,
    )


@dataclass(frozen=True)
class AuditRow:
    seq: int
    time: str
    event: str
    session: str
    details: list[tuple[str, str]]
    refused: bool


@dataclass(frozen=True)
class AuditView:
    total: int  # entries in the whole (verified) chain
    rows: list[AuditRow]  # the ones this party may read, newest first
    refusals: list[tuple[str, str, int]] = field(default_factory=list)  # request, reason, count
    sessions: list[str] = field(default_factory=list)


def _text(v: object) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def audit_view(entries: Sequence[AuditEntry], sessions: Iterable[str]) -> AuditView:
    """The entries about `sessions` (those the party is in), newest first, and their refusals
    counted by request and reason. `entries` is the whole chain, already verified."""
    names = sorted(set(sessions))
    wanted = set(names)
    rows = []
    refusals: Counter[tuple[str, str]] = Counter()
    for e in entries:
        details = dict(e.details or {})
        session = str(details.get("session", ""))
        if session not in wanted:
            continue
        refused = e.event in ("refused", "refused.repeated")
        if refused:  # a repeated refusal's entry counts the repeats of one kind in a minute
            count = int(details.get("count", 1)) if e.event == "refused.repeated" else 1
            refusals[(str(details.get("request", "?")), str(details.get("reason", "?")))] += count
        rows.append(
            AuditRow(
                seq=e.seq,
                time=when(e.time),
                event=str(e.event),
                session=session,
                details=[(k, _text(v)) for k, v in sorted(details.items()) if k != "session"],
                refused=refused,
            )
        )
    rows.reverse()
    return AuditView(
        total=len(entries),
        rows=rows,
        refusals=[(r, why, n) for (r, why), n in refusals.most_common()],
        sessions=names,
    )


@dataclass(frozen=True)
class ReleaseView:
    """Where the release of a receipt's model stands, and what this party may do."""

    required: bool
    state: str
    summary: str
    rule: str
    approved: list[str]
    rejected: list[str]
    needs: list[str]
    me: str | None  # this party's name in the receipt's session
    my_decision: str | None
    can_decide: bool


def release_view(status: ReleaseStatus, me: str | None) -> ReleaseView:
    mine = [d.decision.value for d in status.decisions if d.party == me]
    can = status.state.value == "awaiting" and me is not None and me in status.waiting
    return ReleaseView(
        required=status.required,
        state=status.state.value,
        summary=status.summary,
        rule=status.rule,
        approved=list(status.approved),
        rejected=list(status.rejected),
        needs=list(status.needs),
        me=me,
        my_decision=mine[-1] if mine else None,
        can_decide=can and not mine,
    )


_MODEL_NOT_HERE = (
    "not checked here: the published model stays encrypted in your protected volume "
    "(`seml receipt verify --model FILE` checks a copy)"
)


@dataclass(frozen=True)
class ReceiptView:
    """One receipt as this party checked it in place."""

    session: str
    id: str
    issued: str
    session_hash: str
    version: int
    model: str
    model_files: list[tuple[str, str, int]]  # path, sha256, size
    metrics: list[tuple[str, str, str]]  # task, metric, value
    inputs: list[tuple[str, int, str, int, int]]  # party, manifest version, digest, files, bytes
    services: list[tuple[str, str, str, str]]  # role, service, evidence, measurement
    simulated: bool
    notice: str
    ok: bool
    checks: list[tuple[str, str, str]]  # name, pass|fail|skipped, detail
    key_source: str
    release: ReleaseView | None


def receipt_view(
    entry: ReceiptEntry | None, check: ReceiptCheck, key_source: str, fingerprint: str
) -> ReceiptView:
    """A receipt (from the service, with its release status, or only checked: `entry` None
    means a receipt the party opened itself) and the verdict of checking it here."""
    checks = [
        (
            c.name,
            c.status.value,
            _MODEL_NOT_HERE if (c.name, c.status.value) == ("model", "skipped") else c.detail,
        )
        for c in check.checks
    ]
    if entry is None:
        return ReceiptView(
            session=check.session or "?",
            id=check.receipt or "?",
            issued="-",
            session_hash=check.session_hash or "-",
            version=0,
            model=check.model or "-",
            model_files=[],
            metrics=[],
            inputs=[],
            services=[],
            simulated=bool(check.simulated),
            notice=check.notice,
            ok=check.ok,
            checks=checks,
            key_source=key_source,
            release=None,
        )
    body = entry.receipt.receipt
    me = next((p for p, fp in body.session.parties.items() if fp == fingerprint), None)
    return ReceiptView(
        session=body.session.name,
        id=entry.receipt.id,
        issued=when(body.issued),
        session_hash=body.session.hash,
        version=body.session.version,
        model=body.model.digest,
        model_files=[(f.path, f.sha256, f.size) for f in body.model.files],
        metrics=[
            (task, name, f"{value:.4g}")
            for task, values in sorted(body.training.metrics.items())
            for name, value in sorted(values.items())
        ],
        inputs=[
            (i.party, i.manifest_version, i.manifest_digest, i.files, i.bytes) for i in body.inputs
        ],
        services=[(s.role, s.service, s.evidence, s.measurement) for s in body.services],
        simulated=body.simulated,
        notice=body.notice,
        ok=check.ok,
        checks=checks,
        key_source=key_source,
        release=release_view(entry.status, me),
    )
