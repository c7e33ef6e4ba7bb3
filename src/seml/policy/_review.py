"""What a party reviews before it approves a session version, as data (`--json`) and words.

Pure: the session, optionally the version it updates and what the caller could learn about the
sessions it exports to or imports from, in; a `Review` out. Per service: its command, code
(allowed measurements), machines, evidence requirements, the secrets and volumes it receives.
Per secret and volume: who generates or provides it, who reads it, where it is exported to or
imported from (pinned hashes). The tolerated weaknesses, the approval rules, and with a
predecessor the changes from it (`seml.policy._review_diff`).

The JSON form (`Review.model_dump(mode="json")`) is a stable interface: fields are only ever
added; `format` names the version.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from seml.policy._document import session_hash
from seml.policy._keys import fingerprint, parse_public_key
from seml.policy._model import Export, SecretKind, Service, Session
from seml.policy._requirements import describe_requirements
from seml.policy._review_diff import Change, changes_between

__all__ = [
    "ExportTarget",
    "Review",
    "review_session",
]

FORMAT = "seml-review/1"

WEAKNESS_WORDS = {
    "simulation": "simulated evidence: made in software by anyone who runs seml; it proves "
    "nothing about where the code runs, and nothing protects the secrets from the machine's owner",
    "debug": "debug enclaves or VMs: the host can read and change their memory",
    "sw-hardening-needed": "platforms that need software mitigations for known CPU advisories",
    "configuration-needed": "platforms whose configuration (BIOS, hyper-threading, ...) leaves "
    "known advisories open",
    "out-of-date": "platforms whose TCB is out of date: known vulnerabilities are not patched",
    "revocation-unchecked": "evidence whose certificates were not checked for revocation",
    "measurements-unchecked": "GPUs whose firmware measurements were not compared with NVIDIA's "
    "reference values",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartyReview(_Model):
    name: str
    key: str
    fingerprint: str


class RuleReview(_Model):
    rule: Any  # the rule's canonical data: a list of parties or {require, of, veto}
    words: str


class SecretUse(_Model):
    secret: str
    where: list[str]  # "environment VAR", "file /path"


class VolumeUse(_Model):
    volume: str
    path: str
    owner: str  # the session that owns the volume (this one unless imported)
    owner_volume: str


class TargetService(_Model):
    name: str
    command: list[str]
    measurements: list[str]
    platforms: list[str] | None


class ExportReview(_Model):
    session: str
    session_hash: str
    services: list[str]
    target: str | None  # what the pinned hash is ("version 2 of shared"), when it could be read
    target_services: list[TargetService]  # the receiving services, as the pinned version says


class ImportReview(_Model):
    session: str
    item: str  # the exporter's secret or volume
    pinned: list[str] | None  # hashes of this session the exporter's latest version exports to
    exported_here: bool | None  # whether one of them is this version


class ServiceReview(_Model):
    name: str
    command: list[str]
    measurements: list[str]
    platforms: list[str] | None  # None: any machine whose evidence passes
    requirements: list[str]
    environment: dict[str, str]
    files: dict[str, str]
    secrets: list[SecretUse]
    volumes: list[VolumeUse]


class SecretReview(_Model):
    name: str
    kind: str | None
    size: int | None
    source: str  # in words
    provided_by: str | None
    readers: list[str]
    exported_to: list[ExportReview]
    imported_from: ImportReview | None


class VolumeReview(_Model):
    name: str
    mounted_by: dict[str, str]  # service: path
    exported_to: list[ExportReview]
    imported_from: ImportReview | None


class WeaknessReview(_Model):
    weakness: str
    words: str


class Review(_Model):
    format: str = FORMAT
    session: str
    hash: str
    predecessor: str | None
    status: str | None  # what the version is, when known ("active version 2", "open proposal")
    parties: list[PartyReview]
    approval: dict[str, RuleReview]  # create, update
    tolerated: list[WeaknessReview]
    ignore_advisories: list[str]
    services: list[ServiceReview]
    secrets: list[SecretReview]
    volumes: list[VolumeReview]
    storage: str | None
    notes: list[str]
    compared_with: str | None  # the predecessor's hash, when it was available to compare
    changes: list[Change] | None  # None: nothing compared


@dataclass(frozen=True)
class ExportTarget:
    """A version an export pins, as the reviewer could read it, and what it is in words."""

    session: Session
    label: str


def _uses(service: Service) -> list[SecretUse]:
    where: dict[str, list[str]] = {}
    for place, p in service.placeholders():
        # "environment.VAR", or "files['/path']" (the path as a Python literal)
        if place.startswith("environment."):
            text = f"environment {place.removeprefix('environment.')}"
        else:
            text = f"file {ast.literal_eval(place.removeprefix('files[').removesuffix(']'))}"
        if text not in where.setdefault(p.name, []):
            where[p.name].append(text)
    return [SecretUse(secret=n, where=w) for n, w in sorted(where.items())]


def _volume_uses(session: Session, service: Service) -> list[VolumeUse]:
    out = []
    for name, path in service.volumes.items():
        volume = session.volume(name)
        imported = volume.import_ if volume is not None else None
        out.append(
            VolumeUse(
                volume=name,
                path=path,
                owner=imported.session if imported else session.name,
                owner_volume=imported.volume if imported else name,
            )
        )
    return out


def _exports(exports: list[Export], targets: Mapping[str, ExportTarget]) -> list[ExportReview]:
    out = []
    for e in exports:
        target = targets.get(e.session_hash)
        receiving = []
        if target is not None:
            for name in e.services:
                s = target.session.service(name)
                if s is not None:
                    receiving.append(
                        TargetService(
                            name=s.name,
                            command=list(s.command),
                            measurements=list(s.measurements),
                            platforms=None if s.platforms is None else list(s.platforms),
                        )
                    )
        out.append(
            ExportReview(
                session=e.session,
                session_hash=e.session_hash,
                services=list(e.services),
                target=target.label if target is not None else None,
                target_services=receiving,
            )
        )
    return out


def _import(session: str, item: str, h: str, pins: Mapping[str, list[str]]) -> ImportReview:
    pinned = pins.get(session)
    return ImportReview(
        session=session,
        item=item,
        pinned=None if pinned is None else list(pinned),
        exported_here=None if pinned is None else h in pinned,
    )


def _secret_source(kind: SecretKind | None, provided_by: str | None) -> str:
    if kind is SecretKind.PROVIDED:
        return f"provided by {provided_by} (sealed to the attestation service)"
    if kind in (SecretKind.ED25519, SecretKind.X509):
        return "a key pair generated by the attestation service; nobody sees the private key"
    return "generated by the attestation service; nobody sees it"


def review_session(
    session: Session,
    *,
    predecessor: Session | None = None,
    status: str | None = None,
    targets: Mapping[str, ExportTarget] | None = None,
    pins: Mapping[str, list[str]] | None = None,
) -> Review:
    """The review of `session`: `predecessor` the version it updates (for the changes),
    `targets` the versions its exports pin (by hash) and `pins` which hashes of this session
    each session it imports from exports to (both as far as the reviewer could read them)."""
    targets = targets or {}
    pins = pins or {}
    h = session_hash(session)
    services = [
        ServiceReview(
            name=s.name,
            command=list(s.command),
            measurements=list(s.measurements),
            platforms=None if s.platforms is None else list(s.platforms),
            requirements=describe_requirements(s, session.security),
            environment=dict(s.environment),
            files=dict(s.files),
            secrets=_uses(s),
            volumes=_volume_uses(session, s),
        )
        for s in session.services
    ]
    secrets = []
    for x in session.secrets:
        imported = x.import_
        secrets.append(
            SecretReview(
                name=x.name,
                kind=None if x.kind is None else x.kind.value,
                size=x.size,
                source=(
                    f"imported from session {imported.session} (its secret {imported.secret})"
                    if imported is not None
                    else _secret_source(x.kind, x.provided_by)
                ),
                provided_by=x.provided_by,
                readers=list(x.readers),
                exported_to=_exports(x.export, targets),
                imported_from=(
                    _import(imported.session, imported.secret, h, pins) if imported else None
                ),
            )
        )
    volumes = []
    for v in session.volumes:
        vi = v.import_
        volumes.append(
            VolumeReview(
                name=v.name,
                mounted_by={
                    s.name: s.volumes[v.name] for s in session.services if v.name in s.volumes
                },
                exported_to=_exports(v.export, targets),
                imported_from=_import(vi.session, vi.volume, h, pins) if vi else None,
            )
        )
    return Review(
        session=session.name,
        hash=h,
        predecessor=session.predecessor,
        status=status,
        parties=[
            PartyReview(name=p, key=k, fingerprint=fingerprint(parse_public_key(k)))
            for p, k in session.parties.items()
        ],
        approval={
            "create": RuleReview(
                rule=session.approval.create.to_data(), words=session.approval.create.describe()
            ),
            "update": RuleReview(
                rule=session.approval.update.to_data(), words=session.approval.update.describe()
            ),
        },
        tolerated=[
            WeaknessReview(weakness=w, words=WEAKNESS_WORDS.get(w, w))
            for w in session.security.tolerate
        ],
        ignore_advisories=list(session.security.ignore_advisories),
        services=services,
        secrets=secrets,
        volumes=volumes,
        storage=session.storage.location if session.storage else None,
        notes=_notes(session, secrets, volumes),
        compared_with=session_hash(predecessor) if predecessor is not None else None,
        changes=changes_between(predecessor, session) if predecessor is not None else None,
    )


def _notes(session: Session, secrets: list[SecretReview], volumes: list[VolumeReview]) -> list[str]:
    notes = []
    if "simulation" in session.security.tolerate:
        notes.append(
            "This session accepts SIMULATED evidence: nothing protects its secrets from the "
            "owners of the machines its services run on."
        )
    for s in session.services:
        if s.platforms is None:
            notes.append(
                f"Service {s.name} may run on any machine whose evidence passes (it lists no "
                "platforms)."
            )
    items: list[tuple[str, SecretReview | VolumeReview]] = [
        *(("secret", x) for x in secrets),
        *(("volume", v) for v in volumes),
    ]
    for what, x in items:
        for e in x.exported_to:
            notes.append(
                f"The {what} {x.name} leaves this session: it goes to {', '.join(e.services)} of "
                f"session {e.session}, pinned at {e.session_hash}"
                + (f" ({e.target})." if e.target else " (that version was not readable here).")
            )
        if x.imported_from is not None and x.imported_from.exported_here is False:
            notes.append(
                f"Session {x.imported_from.session} does not export {x.imported_from.item} to "
                f"this version yet (it pins {', '.join(x.imported_from.pinned or []) or 'none'}): "
                f"its {what} is refused to this version until {x.imported_from.session} is "
                "re-pinned."
            )
    for secret in secrets:
        if not secret.readers and not secret.exported_to:
            notes.append(f"The secret {secret.name} is read by no service and exported nowhere.")
    return notes
