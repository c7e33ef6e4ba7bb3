"""Resolving a service's configuration: which secrets it may read, and the text they fill in.

Pure apart from the lookups passed in: imported secrets and volumes come from the exporting
session's latest version, and only if that version exports them to exactly this session hash
and this service.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from seml.cas._protocol import ServiceConfig, VolumeGrant, volume_subject
from seml.cas._secrets import render_secret
from seml.cas._state import SessionRecord
from seml.errors import PolicyError
from seml.policy import PLACEHOLDER, Export, Placeholder, SecretKind

__all__ = [
    "VOLUME_TOKEN_TTL",
    "Lookup",
    "TokenClaim",
    "parse_volume_token",
    "resolve_config",
    "volume_secret_name",
    "volume_token",
]

# A volume capability lasts as long as one run may (it is used at the start and at the seal).
VOLUME_TOKEN_TTL = 7 * 24 * 3600

# (session name) -> latest record, and (record, secret name) -> (kind, value)
Lookup = tuple[
    Callable[[str], SessionRecord | None],
    Callable[[SessionRecord, str], tuple[SecretKind, bytes]],
]


def volume_secret_name(volume: str) -> str:
    # ':' cannot appear in a secret name, so a volume key never collides with a user secret.
    return f"volume:{volume}"


@dataclass(frozen=True)
class TokenClaim:
    """What a volume capability says about itself: who holds it and until when."""

    expires: int
    holder: str  # the session whose service was given the volume
    service: str


def volume_token(
    token_key: bytes,
    *,
    owner: str,
    volume: str,
    owner_hash: str,
    holder_hash: str,
    claim: TokenClaim,
) -> str:
    """The capability to read and move forward the version of `owner`'s `volume`: bound to the
    service it was released to, to the versions of the holding and the owning sessions at
    release (a new version of either ends it) and to an expiry. Anyone may read the claim;
    only the service can make the MAC."""
    subject = b"\x00".join(
        [
            b"seml-volume-token v2",
            volume_subject(owner, volume),
            owner_hash.encode(),
            claim.holder.encode(),
            holder_hash.encode(),
            claim.service.encode(),
            str(claim.expires).encode(),
        ]
    )
    mac = hmac.new(token_key, subject, hashlib.sha256).hexdigest()
    return f"v2.{claim.expires}.{claim.holder}.{claim.service}.{mac}"


def parse_volume_token(token: str) -> TokenClaim | None:
    """The claim of a token of the form `volume_token` makes, or None."""
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != "v2" or not parts[1].isdigit() or len(parts[1]) > 12:
        return None
    return TokenClaim(expires=int(parts[1]), holder=parts[2], service=parts[3])


def _exported(exports: list[Export], record: SessionRecord, service: str) -> bool:
    return any(
        e.session == record.session.name and e.session_hash == record.hash and service in e.services
        for e in exports
    )


def _source(lookup: Lookup, record: SessionRecord, what: str, session: str) -> SessionRecord:
    latest, _ = lookup
    source = latest(session)
    if source is None:
        raise PolicyError(f"{what} is imported from session {session}, which does not exist")
    if source.session.name == record.session.name:
        raise PolicyError(f"{what} cannot be imported from its own session")
    return source


def resolve_config(
    record: SessionRecord,
    service_name: str,
    lookup: Lookup,
    *,
    token_key: bytes,
    measurement: str,
    tee: str,
    weaknesses: list[str],
    now: float,
    completion: str | None = None,
    environment: dict[str, str] | None = None,
) -> ServiceConfig:
    """The configuration `service_name` of `record` gets: its placeholders filled in with the
    secrets it may read, its volumes granted; `completion` (its completion report's
    capability) and `environment` (variables the service adds) set as given."""
    session = record.session
    service = session.service(service_name)
    if service is None:  # checked by the caller already; kept for a clear error
        raise PolicyError(f"session {session.name} has no service {service_name}")
    _, value_of = lookup
    values: dict[str, tuple[SecretKind, bytes]] = {}
    for _where, p in record.placeholders(service_name):
        if p.name in values:
            continue
        secret = session.secret(p.name)
        if secret is None or service_name not in secret.readers:  # schema guarantees; defensive
            raise PolicyError(f"service {service_name} may not read secret {p.name}")
        if secret.import_ is None:
            values[p.name] = value_of(record, p.name)
            continue
        imp = secret.import_
        what = f"secret {p.name} of session {session.name}"
        source = _source(lookup, record, what, imp.session)
        exported = source.session.secret(imp.secret)
        if exported is None or exported.import_ is not None:
            raise PolicyError(f"{what}: session {imp.session} owns no secret {imp.secret}")
        if not _exported(exported.export, record, service_name):
            raise PolicyError(
                f"{what}: session {imp.session} does not export {imp.secret} to service "
                f"{service_name} of {session.name} {record.hash}"
            )
        values[p.name] = value_of(source, imp.secret)

    def one(m: re.Match[str]) -> str:
        kind, value = values[m["name"]]
        return render_secret(kind, value, Placeholder.model_validate(m.groupdict()))

    def fill(text: str) -> str:
        return PLACEHOLDER.sub(one, text)

    grants: dict[str, VolumeGrant] = {}
    for vol_name, path in service.volumes.items():
        volume = session.volume(vol_name)
        if volume is None:  # schema guarantees; defensive
            raise PolicyError(f"service {service_name} mounts unknown volume {vol_name}")
        owner_record, owner_volume = record, vol_name
        if volume.import_ is not None:
            what = f"volume {vol_name} of session {session.name}"
            imp_v = volume.import_
            owner_record = _source(lookup, record, what, imp_v.session)
            exported_v = owner_record.session.volume(imp_v.volume)
            if exported_v is None or exported_v.import_ is not None:
                raise PolicyError(f"{what}: session {imp_v.session} owns no volume {imp_v.volume}")
            if not _exported(exported_v.export, record, service_name):
                raise PolicyError(
                    f"{what}: session {imp_v.session} does not export {imp_v.volume} to service "
                    f"{service_name} of {session.name} {record.hash}"
                )
            owner_volume = imp_v.volume
        _, key = value_of(owner_record, volume_secret_name(owner_volume))
        owner = owner_record.session.name
        grants[vol_name] = VolumeGrant(
            path=path,
            key=key.hex(),
            owner=owner,
            volume=owner_volume,
            token=volume_token(
                token_key,
                owner=owner,
                volume=owner_volume,
                owner_hash=owner_record.hash,
                holder_hash=record.hash,
                claim=TokenClaim(int(now) + VOLUME_TOKEN_TTL, session.name, service_name),
            ),
        )
    return ServiceConfig(
        session=session.name,
        session_hash=record.hash,
        service=service_name,
        measurement=measurement,
        tee=tee,
        simulated="simulation" in weaknesses,
        weaknesses=weaknesses,
        command=[fill(a) for a in service.command],
        environment={k: fill(v) for k, v in service.environment.items()} | (environment or {}),
        files={k: fill(v) for k, v in service.files.items()},
        volumes=grants,
        storage=session.storage.location if session.storage else None,
        secrets=sorted(values),
        completion=completion,
    )
