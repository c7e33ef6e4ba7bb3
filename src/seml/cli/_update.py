"""`seml session update` (the next version, predecessor and pins filled in) and `seml session
review` (what a party reads before it approves)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from seml.cli._cas import AsJson, CasFingerprint, CasUrl, key_option
from seml.errors import PolicyError, UsageError

if TYPE_CHECKING:
    from seml.cas import CasClient, SessionStatus, SessionVersion
    from seml.policy import ExportTarget, PartyKey, Session

__all__ = ["add_commands"]

_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


def add_commands(session: typer.Typer) -> None:
    session.command("update")(update)
    session.command("review")(review)


class _Dumper:
    """YAML for people: block style, multi-line text (training specs, files) as `|` blocks."""

    @staticmethod
    def dump(document: dict[str, Any]) -> str:
        import yaml

        class Dumper(yaml.SafeDumper):
            def ignore_aliases(self, data: Any) -> bool:
                return True

        def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
            style = "|" if "\n" in value else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        Dumper.add_representer(str, text)
        return yaml.dump(document, Dumper=Dumper, sort_keys=False, width=100)


def _setting(item: str) -> tuple[str, Any]:
    import yaml

    from seml.cli._session import _read

    path, sep, raw = item.partition("=")
    if not sep or not path:
        raise UsageError(f"--set wants PATH=VALUE, got {item!r}")
    if raw.startswith("@"):
        return path, _read(Path(raw[1:]))
    try:
        return path, yaml.safe_load(raw)
    except yaml.YAMLError:
        raise UsageError(f"--set {path}: the value is not valid YAML: {raw!r}") from None


def _document(path: Path) -> dict[str, Any]:
    import yaml

    from seml.cli._session import _read

    try:
        data = yaml.safe_load(_read(path))
    except yaml.YAMLError:
        raise UsageError(f"{path}: not valid YAML") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a session is a mapping")
    return data


def _follow_targets(
    client: CasClient, key: PartyKey, session: Session, document: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """`document` with its exports re-pinned to where each target session stands now: its
    active version and its open proposals that import from this session."""
    from seml.policy import exported_to, repin_document

    notes = []
    for target in sorted(exported_to(session)):
        try:
            st = client.session_status(target, key)
        except (PolicyError, UsageError) as e:
            notes.append(f"exports to {target} kept as they are: {e}")
            continue
        hashes = [st.active.hash] if st.active is not None else []
        hashes += [
            p.hash
            for p in st.proposals
            if not p.state.closed and session.name in _sources(p.document)
        ]
        if hashes:
            document = repin_document(document, target, hashes)
            notes.append(f"exports to {target} pinned to {', '.join(hashes)}")
    return document, notes


def _sources(session: Session) -> set[str]:
    return {x.import_.session for x in session.secrets if x.import_ is not None} | {
        v.import_.session for v in session.volumes if v.import_ is not None
    }


def update(
    name: Annotated[str, typer.Argument(help="The session to update (its active version).")],
    key: Annotated[
        Path,
        key_option("Your party's private key (NAME.key)"),
    ],
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="An edited copy of the session (predecessor filled in)."),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="PATH=VALUE: change one field (repeatable). PATH goes through mappings by key "
            "and lists by item name: services.train.command='\\[seml, flow, train]', "
            "services.train.files\\[/specs/a.yaml]=@new-spec.yaml (@FILE: the file's text). "
            "VALUE is YAML.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write it (default NAME.next.yaml)."),
    ] = None,
    propose_it: Annotated[
        bool, typer.Option("--propose", help="Propose it at the service, with your approval.")
    ] = False,
    repin: Annotated[
        bool,
        typer.Option(
            "--repin",
            help="Keep export pins consistent: this version's exports follow where their target "
            "sessions stand; with --propose, your sessions this one imports from are re-pinned "
            "to it too (proposed).",
        ),
    ] = False,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
) -> None:
    """Make the next version of the active session, predecessor filled in.

    From an edited file (--from) or changes by path (--set); says what changes and which
    sessions must re-pin their exports; --propose proposes it, --repin re-pins.
    """
    from seml._fs import write_atomic
    from seml.cas import client_from_env
    from seml.cli._proposals import print_view, repin_imported
    from seml.policy import (
        Decision,
        changes_between,
        decision_party,
        load_private_key,
        session_hash,
        sign_decision,
        successor,
    )

    k = load_private_key(key)
    with client_from_env(cas_url, cas_fingerprint) as client:
        status = client.session_status(name, k)
        active = status.active
        if active is None:
            raise UsageError(f"session {name} has no active version that you are a party of")
        document = _document(from_file) if from_file else active.document.document()
        notes: list[str] = []
        if repin:
            document, notes = _follow_targets(client, k, active.document, document)
        new = successor(active.document, document, [_setting(x) for x in settings or []])
        changes = changes_between(active.document, new)
        if not changes:
            raise UsageError(
                f"nothing changes from version {active.version} of {name}: give --from FILE or "
                "--set PATH=VALUE"
            )
        h = session_hash(new)
        out = output or Path(f"{name}.next.yaml")
        write_atomic(out, _Dumper.dump(new.document()))
        typer.echo(f"next version of {name} (after version {active.version} {active.hash}): {h}")
        typer.echo(f"written to {out}")
        typer.echo("changes:")
        for c in changes:
            typer.echo(f"  - {c.words}")
        for n in notes:
            typer.echo(f"note: {n}")
        pins = {e.session: e for e in status.exporters}
        for source in sorted(_sources(new)):
            e = pins.get(source)
            owners = ", ".join(e.parties) if e is not None and e.parties else f"{source}'s parties"
            typer.echo(
                f"re-pin: {source} must also export to {h} for this version to get its data "
                f"(by {owners}: `seml session approve {name} --key KEY --repin`)"
            )
        if not propose_it:
            typer.echo(f"to propose it: seml session propose {out} --key {key}")
            return
        party = decision_party(active.document, new, k.public)
        view = client.propose(new, sign_decision(h, name, party, k, Decision.APPROVE))
        print_view(view, False)
        if repin and _sources(new):
            for line in repin_imported(client, k, new, [active.hash, h], status.exporters):
                typer.echo(line)


def _read_version(client: CasClient, key: PartyKey, name: str, hash_: str) -> SessionVersion | None:
    """Version `hash_` of session `name` as the party holding `key` reads it (the service shows
    a session's versions to its parties only); None when it cannot."""
    from seml.policy import parse_public_key

    try:
        active = client.session_status(name, key).active
    except (PolicyError, UsageError):
        return None
    if active is None:
        return None
    if active.hash == hash_:
        return active
    party = next(
        (p for p, text in active.document.parties.items() if parse_public_key(text) == key.public),
        None,
    )
    if party is None:
        return None
    try:
        return client.get_session(name, party=(party, key), hash_=hash_)
    except (PolicyError, UsageError):
        return None


def _targets(client: CasClient, key: PartyKey | None, session: Session) -> dict[str, ExportTarget]:
    """The versions `session`'s exports pin, as far as the reader (`key`) may read them: an
    accepted version or a proposal of a session it is a party of, through its signed
    challenge (a hash alone reads nothing)."""
    from seml.policy import ExportTarget

    out: dict[str, ExportTarget] = {}
    pinned = {(e.session, e.session_hash) for x in session.secrets for e in x.export}
    pinned |= {(e.session, e.session_hash) for v in session.volumes for e in v.export}
    for target, h in sorted(pinned):
        if key is None:
            continue
        v = _read_version(client, key, target, h)
        if v is not None:
            out[h] = ExportTarget(v.document, f"version {v.version} of {target}")
            continue
        try:
            st = client.session_status(h, key)
        except (PolicyError, UsageError):
            continue
        for p in st.proposals:
            if p.hash == h:
                out[h] = ExportTarget(p.document, f"{p.state.value} proposal of {target}")
    return out


def _pick_for_review(status: SessionStatus, subject: str) -> tuple[Session, str, str | None]:
    """(session, what it is, its predecessor's hash) for a name or a hash."""
    if _HASH.match(subject):
        for p in status.proposals:
            if p.hash == subject:
                return p.document, f"{p.state.value} proposal by {p.proposer}", p.predecessor
        if status.active is not None and status.active.hash == subject:
            a = status.active
            return a.document, f"active version {a.version}", a.predecessor
        raise UsageError(f"{subject} is no version or proposal of {status.name} you may read")
    still_open = [p for p in status.proposals if not p.state.closed]
    if len(still_open) > 1:
        listed = "; ".join(f"{p.hash} by {p.proposer}" for p in still_open)
        raise UsageError(f"{len(still_open)} open proposals for {subject}: {listed}; give a hash")
    if still_open:
        p = still_open[0]
        what = f"open proposal by {p.proposer}, missing: {'; '.join(p.needs) or 'nothing'}"
        return p.document, what, p.predecessor
    if status.active is None:
        raise UsageError(f"{subject}: no open proposal and no active version you may read")
    a = status.active
    return a.document, f"active version {a.version}", a.predecessor


def review(
    subject: Annotated[
        str, typer.Argument(help="A session file, or a session's name or hash at the service.")
    ],
    key: Annotated[
        Path | None,
        key_option("Your party's private key (to read at the service)"),
    ] = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Say in plain words what a session version does, and what it changes.

    Per service its command, code, machines, evidence, secrets and volumes; per secret who makes
    it, who reads it, where it goes; the tolerated weaknesses and approval rules; the changes
    from the version it updates.
    """
    from seml.cas import client_from_env
    from seml.cli._session import _load_session
    from seml.policy import load_private_key, render_review, review_session

    k = load_private_key(key) if key is not None else None
    path = Path(subject)
    if path.is_file():
        session = _load_session(path)
        what = f"file {path}"
        reachable = bool(cas_url or os.environ.get("SEML_CAS"))
        if not reachable:
            result = review_session(session, status=what)
        else:
            with client_from_env(cas_url, cas_fingerprint) as client:
                predecessor = None
                if session.predecessor is not None and k is not None:
                    v = _read_version(client, k, session.name, session.predecessor)
                    predecessor = v.document if v is not None else None
                pins: dict[str, list[str]] = {}
                if k is not None:
                    try:
                        st = client.session_status(session.name, k)
                        pins = {e.session: e.pinned for e in st.exporters if e.exists}
                    except (PolicyError, UsageError):
                        pins = {}
                result = review_session(
                    session,
                    predecessor=predecessor,
                    status=what,
                    targets=_targets(client, k, session),
                    pins=pins,
                )
    else:
        if k is None:
            raise UsageError(
                f"{subject} is not a file; reviewing a session at the service needs --key "
                "(your party's key)"
            )
        with client_from_env(cas_url, cas_fingerprint) as client:
            status = client.session_status(subject, k)
            session, what, previous_hash = _pick_for_review(status, subject)
            predecessor = None
            if previous_hash is not None:
                if status.active is not None and status.active.hash == previous_hash:
                    predecessor = status.active.document
                else:
                    v = _read_version(client, k, session.name, previous_hash)
                    if v is None:
                        raise PolicyError(
                            f"cannot read version {previous_hash} of {session.name}: only its "
                            "parties read a session's versions"
                        )
                    predecessor = v.document
            result = review_session(
                session,
                predecessor=predecessor,
                status=what,
                targets=_targets(client, k, session),
                pins={e.session: e.pinned for e in status.exporters if e.exists},
            )
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
        return
    for line in render_review(result):
        typer.echo(line)
