"""`seml session propose / approve / reject / withdraw / status`: proposals held by the service.

A party proposes a version; the others approve or reject it from their own machines; the
service accepts it when its approval rule is met. No signature file travels between them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml.cli._cas import AsJson, CasFingerprint, CasUrl, key_option
from seml.errors import PolicyError, UsageError

if TYPE_CHECKING:
    from seml.cas import CasClient, ProposalView, SessionStatus
    from seml.cas._proposal_models import ExporterPins
    from seml.policy import PartyKey, Session

__all__ = ["add_commands", "pick_proposal", "print_view", "repin_imported", "status_lines"]

_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")

Key = Annotated[
    Path,
    key_option("Your party's private key (NAME.key)"),
]
Party = Annotated[
    str | None,
    typer.Option("--party", help="Your party's name (default: the party whose key --key is)."),
]
Subject = Annotated[
    str,
    typer.Argument(
        help="The session's name (its one open proposal), a proposal's hash, or a session file "
        "(the proposal of exactly that document: its hash)."
    ),
]
SecretFiles = Annotated[
    list[str] | None,
    typer.Option(
        "--secret-file",
        help="NAME=PATH: attach provided secret NAME, read from PATH, sealed to the service and "
        "signed with --key (you must be its provider; repeatable).",
    ),
]
Repin = Annotated[
    bool,
    typer.Option(
        "--repin",
        help="Also re-pin your sessions that export to this one (your private sessions) to it, "
        "proposing their next versions.",
    ),
]


def add_commands(session: typer.Typer) -> None:
    for name, fn in (
        ("propose", propose),
        ("approve", approve),
        ("reject", reject),
        ("withdraw", withdraw),
        ("status", status),
    ):
        session.command(name)(fn)


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def view_lines(v: ProposalView) -> list[str]:
    from seml.cas import ProposalState

    what = "a first version" if v.predecessor is None else f"update of {v.predecessor}"
    lines = [f"proposal {v.hash} of {v.name} ({what}), by {v.proposer} at {_when(v.created)}"]
    if v.state is ProposalState.ACCEPTED:
        lines.append(f"  state: ACCEPTED as version {v.version}")
    elif v.state is ProposalState.OPEN:
        lines.append(f"  state: OPEN, missing: {'; '.join(v.needs)}")
    else:
        lines.append(f"  state: {v.state.value.upper()}: {v.reason}")
    lines.append(f"  rule: {v.rule}")
    lines.append(f"  approved: {', '.join(v.approved) or '-'}")
    lines.append(f"  rejected: {', '.join(v.rejected) or '-'}")
    counted = set(v.approved) | set(v.rejected)
    others = [
        f"{d.decision.party} {d.decision.decision.value}d"
        for d in v.decisions
        if d.decision.party not in counted and d.decision.decision.value != "withdraw"
    ]
    if others:
        lines.append(f"  also decided (not counted by the rule): {', '.join(others)}")
    if v.provided:
        lines.append(f"  provided secrets attached: {', '.join(v.provided)}")
    if v.note:
        lines.append(f"  note: {v.note}")
    return lines


def print_view(v: ProposalView, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(v.model_dump(mode="json", by_alias=True), indent=2))
        return
    from seml.cas import ProposalState

    if v.state is ProposalState.ACCEPTED:
        typer.echo(f"accepted {v.name} version {v.version}: {v.hash}")
    for line in view_lines(v):
        typer.echo(line)


def status_lines(s: SessionStatus) -> list[str]:
    lines = [f"session {s.name}"]
    if s.active is not None:
        a = s.active
        lines.append(
            f"active: version {a.version} {a.hash}, accepted {_when(a.accepted)}, signed by "
            f"{', '.join(a.signers)}"
        )
    else:
        lines.append("active: none that you are a party of")
    if s.proposals:
        lines.append("proposals:")
        for v in s.proposals:
            if v.state.closed:  # one line each: what became of it
                what = "first version" if v.predecessor is None else "update"
                outcome = (
                    f"ACCEPTED as version {v.version}"
                    if v.version is not None
                    else f"{v.state.value.upper()}: {v.reason}"
                )
                lines.append(f"  {v.hash} ({what}) by {v.proposer}: {outcome}")
            else:
                lines += [f"  {line}" for line in view_lines(v)]
    else:
        lines.append("proposals: none")
    labels = {
        v.hash: f"version {v.version}"
        if v.version is not None
        else f"proposal {v.hash[:19]}... ({v.state.value})"
        for v in s.proposals
    }
    if s.active is not None:
        labels[s.active.hash] = "the active version"
    for e in s.exporters:
        if not e.exists:
            lines.append(f"imports from {e.session}: that session does not exist yet")
            continue
        pins = ", ".join(f"{h} ({labels.get(h, 'not a current version')})" for h in e.pinned)
        lines.append(f"imports from {e.session} (version {e.version}): it exports to {pins or '-'}")
        if s.active is not None and s.active.hash not in e.pinned:
            owners = ", ".join(e.parties)
            lines.append(
                f"  the active version does not receive {e.session}'s exports until {owners} "
                f"re-pin it: seml session update {e.session} --key KEY --repin --propose"
            )
    return lines


def _file_hash(subject: str) -> str:
    """A session file stands for its hash, so a party approves exactly the document it holds."""
    path = Path(subject)
    if _HASH.match(subject) or not path.is_file():
        return subject
    from seml.cli._session import _load_session
    from seml.policy import session_hash

    return session_hash(_load_session(path))


def pick_proposal(
    client: CasClient, subject: str, key: PartyKey
) -> tuple[SessionStatus, ProposalView]:
    """The proposal `subject` names: the one with that hash (or that session file's hash), or
    the session's one open one."""
    subject = _file_hash(subject)
    status = client.session_status(subject, key)
    if _HASH.match(subject):
        found = [p for p in status.proposals if p.hash == subject]
        if found:
            return status, found[0]
        if status.active is not None and status.active.hash == subject:
            raise UsageError(
                f"{subject} is version {status.active.version} of {status.name}, not a proposal"
            )
        raise UsageError(f"no proposal {subject} of {status.name} that you are a party of")
    still_open = [p for p in status.proposals if not p.state.closed]
    if not still_open:
        last = status.proposals[-1] if status.proposals else None
        was = f" (the last, {last.hash}, is {last.state.value}: {last.reason})" if last else ""
        raise UsageError(f"no open proposal for {subject}{was}")
    if len(still_open) > 1:
        listed = "; ".join(f"{p.hash} by {p.proposer}" for p in still_open)
        raise UsageError(f"{len(still_open)} open proposals for {subject}: {listed}; give a hash")
    return status, still_open[0]


def _party_for(status: SessionStatus, view: ProposalView, key: PartyKey, party: str | None) -> str:
    from seml.policy import decision_party

    if party is not None:
        return party
    previous = None
    if status.active is not None and status.active.hash == view.predecessor:
        previous = status.active.document
    return decision_party(previous, view.document, key.public)


def _sealed(
    client: CasClient, session: Session, secret_files: list[str] | None, key: PartyKey
) -> dict[str, str]:
    from seml.cli._session import _pairs, _read_bytes

    return {
        name: client.seal_provided(session, name, _read_bytes(path, f"secret {name}"), key)
        for name, path in _pairs(secret_files, "--secret-file")
    }


def propose(
    file: Annotated[Path, typer.Argument(help="The proposed session (YAML).", dir_okay=False)],
    key: Key,
    party: Party = None,
    secret_file: SecretFiles = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Propose a session version (first version or update), with your approval.

    It becomes the active version when its approval rule is met.
    """
    from seml.cas import client_from_env
    from seml.cli._session import _load_session
    from seml.policy import (
        Decision,
        load_private_key,
        parse_public_key,
        session_hash,
        sign_decision,
    )

    s = _load_session(file)
    k = load_private_key(key)
    with client_from_env(cas_url, cas_fingerprint) as client:
        if party is None:
            mine = [p for p, text in s.parties.items() if parse_public_key(text) == k.public]
            if not mine and s.predecessor is not None:
                active = client.session_status(s.name, k).active
                if active is not None:
                    mine = [
                        p
                        for p, text in active.document.parties.items()
                        if parse_public_key(text) == k.public
                    ]
            if len(mine) != 1:
                raise UsageError(
                    f"key {key} ({k.fingerprint}) is "
                    + ("not a party's key" if not mine else "several parties' key")
                    + f" in session {s.name}: only its parties can propose it"
                    + ("" if not mine else "; say which with --party")
                )
            party = mine[0]
        provided = _sealed(client, s, secret_file, k)
        signed = sign_decision(session_hash(s), s.name, party, k, Decision.APPROVE)
        view = client.propose(s, signed, provided)
    print_view(view, as_json)


def _decide(
    subject: str,
    key: Path,
    party: str | None,
    decision: str,
    secret_file: list[str] | None,
    repin: bool,
    cas_url: str | None,
    cas_fingerprint: str | None,
    as_json: bool,
) -> None:
    from seml.cas import client_from_env
    from seml.policy import Decision, load_private_key, sign_decision

    k = load_private_key(key)
    with client_from_env(cas_url, cas_fingerprint) as client:
        status, view = pick_proposal(client, subject, k)
        who = _party_for(status, view, k, party)
        provided = _sealed(client, view.document, secret_file, k)
        signed = sign_decision(view.hash, view.name, who, k, Decision(decision))
        result = client.decide(signed, provided)
        print_view(result, as_json)
        if repin:
            # Pin the proposal and, until it is accepted, the active version too: the active
            # version keeps its data meanwhile.
            active = client.session_status(view.name, k).active
            hashes = [active.hash] if active is not None else []
            pins = [*hashes, view.hash]
            for line in repin_imported(client, k, view.document, pins, status.exporters):
                typer.echo(line)


def approve(
    subject: Subject,
    key: Annotated[
        Path | None,
        key_option("Your party's private key (NAME.key)"),
    ] = None,
    party: Party = None,
    secret_file: SecretFiles = None,
    signature: Annotated[
        Path | None,
        typer.Option(
            "--signature",
            help="Upload this approval signature (from `seml session sign`, made offline) "
            "instead of signing with --key.",
        ),
    ] = None,
    repin: Repin = False,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Approve a proposal: sign its hash and upload the signature (checked on arrival)."""
    if signature is not None:
        from seml.cas import client_from_env
        from seml.cli._session import _read
        from seml.policy import SessionSignature, SignedDecision

        if secret_file or repin:  # a --key (or the profile's) is not used
            raise UsageError(
                "--signature uploads a signature as it is: no --secret-file or --repin with it"
            )
        sig = SessionSignature.from_json(_read(signature), source=str(signature))
        if subject not in (sig.session, sig.hash):
            raise UsageError(f"{signature} signs {sig.session} {sig.hash}, not {subject}")
        with client_from_env(cas_url, cas_fingerprint) as client:
            print_view(client.decide(SignedDecision.approval(sig)), as_json)
        return
    if key is None:
        raise UsageError("approve needs --key (or --signature FILE, signed offline)")
    _decide(subject, key, party, "approve", secret_file, repin, cas_url, cas_fingerprint, as_json)


def reject(
    subject: Subject,
    key: Key,
    party: Party = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Reject a proposal (signed; final). A veto party's rejection defeats it."""
    _decide(subject, key, party, "reject", None, False, cas_url, cas_fingerprint, as_json)


def withdraw(
    subject: Subject,
    key: Key,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Withdraw your own proposal (signed; only its proposer can)."""
    _decide(subject, key, None, "withdraw", None, False, cas_url, cas_fingerprint, as_json)


def status(
    name: Annotated[str, typer.Argument(help="The session's name (or a proposal's hash).")],
    key: Key,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Show the active version and the proposals: who approved, rejected, is missing.

    Also the sessions it imports from and which versions they export to; only what your party
    may see.
    """
    from seml.cas import client_from_env
    from seml.policy import load_private_key

    with client_from_env(cas_url, cas_fingerprint) as client:
        answer = client.session_status(name, load_private_key(key))
    if as_json:
        typer.echo(json.dumps(answer.model_dump(mode="json", by_alias=True), indent=2))
        return
    for line in status_lines(answer):
        typer.echo(line)


def repin_imported(
    client: CasClient,
    key: PartyKey,
    importer: Session,
    hashes: list[str],
    known: Sequence[ExporterPins] = (),
) -> list[str]:
    """Propose, for every session `importer` imports from whose party `key` is, the next version
    whose exports to `importer` pin exactly `hashes`; say what must be done for the others.
    `known` (from a status read) says whose sessions they are, saving a refused read."""
    from seml.policy import (
        Decision,
        changes_between,
        parse_public_key,
        repin_exports,
        session_hash,
        sign_decision,
    )

    lines = []
    hashes = list(dict.fromkeys(hashes))
    sources = sorted(
        {x.import_.session for x in importer.secrets if x.import_ is not None}
        | {v.import_.session for v in importer.volumes if v.import_ is not None}
    )
    owners = {e.session: set(e.parties.values()) for e in known if e.exists}
    for name in sources:
        active = None
        if key.fingerprint in owners.get(name, {key.fingerprint}):
            try:
                active = client.session_status(name, key).active
            except PolicyError:
                active = None
        if active is None:
            lines.append(
                f"{name}: not yours to re-pin; its party re-pins it with "
                f"`seml session approve {importer.name} --key KEY --repin` or "
                f"`seml session update {name} --key KEY --repin --propose`"
            )
            continue
        exporter = active.document
        mine = [p for p, t in exporter.parties.items() if parse_public_key(t) == key.public]
        following = repin_exports(exporter, importer.name, hashes)
        if not changes_between(exporter, following):
            lines.append(f"{name}: already exports to {', '.join(hashes)}")
            continue
        signed = sign_decision(session_hash(following), name, mine[0], key, Decision.APPROVE)
        view = client.propose(following, signed)
        lines.append(f"{name}: re-pinned to {', '.join(hashes)}")
        lines += view_lines(view)
    return lines
