"""The attestation service's logic, independent of HTTP: sessions, reads, attestation, volumes.

Every method takes `now` explicitly. Every accepted change and every secret release is written
to the audit log in the same transaction as the change itself; refusals are logged by the caller
through `log_refusal`, bounded by a `RefusalBook`.

Who may read what: a session's documents and its audit entries only a party of its latest
version, after signing a fresh challenge; an outsider learns the audit chain's shape (numbers,
links, signatures), never content. Refusals do not tell an unknown session from one the caller
may not read, nor an unknown session from an unknown service, and never carry a session's hash.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nacl.bindings import crypto_box_seal

from seml.attest import (
    Evidence,
    Verifier,
    check_weaknesses,
    expect_report_data,
    report_data_for,
)
from seml.cas._admission import admit
from seml.cas._audit import AuditEntry
from seml.cas._identity import CasIdentity
from seml.cas._nonce import NonceBook
from seml.cas._protocol import audit_challenge, error_kind, read_challenge
from seml.cas._provided import open_provided
from seml.cas._refusals import RefusalBook
from seml.cas._resolve import (
    parse_volume_token,
    resolve_config,
    volume_secret_name,
    volume_token,
)
from seml.cas._results import ServiceInfo
from seml.cas._secrets import generate_secret, open_secret, seal_secret
from seml.cas._state import SessionRecord, StateStore
from seml.errors import AttestationError, PolicyError, SemlError, UsageError
from seml.policy import (
    SecretKind,
    Service,
    Session,
    SessionSignature,
    check_creation,
    check_update,
    fingerprint,
    parse_public_key,
    session_from_document,
    session_hash,
    verify_ed25519,
)

if TYPE_CHECKING:
    from seml.cas._receipts import ReceiptDesk

__all__ = ["CasService", "NotFoundError"]


class NotFoundError(UsageError):
    """What a request names does not exist (a session's service, or the session itself: the
    two are not told apart)."""


class CasService:
    def __init__(
        self,
        identity: CasIdentity,
        store: StateStore,
        verifier: Verifier,
        *,
        refusals: RefusalBook | None = None,
    ) -> None:
        self.identity = identity
        self.store = store
        self.verifier = verifier
        self.nonces = NonceBook()
        self.refusals = refusals or RefusalBook()
        self._secrets_key = identity.secrets_key
        self._token_key = identity.token_key
        self._receipts: ReceiptDesk | None = None

    # -- info / audit ---------------------------------------------------------------------

    def info(self) -> ServiceInfo:
        return ServiceInfo(
            service="seml-cas",
            identity_key=base64.b64encode(self.identity.identity_public).decode(),
            box_key=base64.b64encode(bytes(self.identity.box_key.public_key)).decode(),
            fingerprint=self.identity.fingerprint,
        )

    def log_refusal(
        self,
        request: str,
        error: SemlError,
        now: float,
        *,
        session: str | None = None,
        service: str | None = None,
        volume: str | None = None,
    ) -> None:
        """Record a refusal in the audit log, bounded (see `RefusalBook`)."""
        self._write(
            self.refusals.refuse(
                now,
                request=request,
                kind=error_kind(error),
                reason=str(error),
                session=session,
                service=service,
                volume=volume,
            ),
            now,
        )

    def flush_refusals(self, now: float, *, force: bool = False) -> None:
        """Write the refusal counts of a window that has ended (all of them, with `force`)."""
        self._write(self.refusals.due(now, force=force), now)

    def _write(self, entries: list[tuple[str, dict[str, Any]]], now: float) -> None:
        if entries:
            with self.store.transaction() as db:
                for event, details in entries:
                    self.store.append_audit(db, event, details, now)

    def _party_history(
        self,
        name: str,
        party: str | None,
        nonce: bytes | None,
        signature: bytes | None,
        now: float,
        *,
        what: str,
        challenge: Callable[[str, bytes], bytes],
    ) -> list[SessionRecord]:
        """Every version of `name`, for a party of its latest version that signed
        `challenge(name, nonce)` over a fresh nonce of this service. One refusal for an
        unknown session, a caller that is not a party and a bad signature alike."""
        refusal = PolicyError(
            f"reading {what} of session {name} needs a fresh challenge signed by one of its "
            "parties (check the session name, the party and its key)"
        )
        if party is None or nonce is None or signature is None:
            raise refusal
        self.nonces.consume(nonce, now)
        history = self.store.history(name)
        key = history[-1].session.parties.get(party) if history else None
        if key is None or not verify_ed25519(
            parse_public_key(key), signature, challenge(name, nonce)
        ):
            raise refusal
        return history

    def audit(
        self,
        after: int,
        limit: int,
        *,
        session: str | None,
        party: str | None,
        nonce: bytes | None,
        signature: bytes | None,
        now: float,
    ) -> list[AuditEntry]:
        """Audit entries after `after`: without a session, the chain only (no content); for a
        party of `session` (signed challenge), with the content of the entries naming it."""
        self.flush_refusals(now)
        readable: frozenset[str] = frozenset()
        if session is not None:
            self._party_history(
                session,
                party,
                nonce,
                signature,
                now,
                what="the audit entries",
                challenge=audit_challenge,
            )
            readable = frozenset({session})
        return self.store.audit(after, limit, readable=readable)

    # -- sessions -------------------------------------------------------------------------

    def submit(
        self,
        document: Any,
        signatures: list[SessionSignature],
        provided: dict[str, bytes],
        now: float,
        *,
        proposal: dict[str, Any] | None = None,
    ) -> SessionRecord:
        """Accept a version carrying the signatures its rules need. `proposal` (details for the
        audit log) says it is a proposal whose approvals met its rule: its activation is logged
        in the same transaction as the version."""
        session = session_from_document(document, source="submitted session")
        h = session_hash(session)
        previous = self.store.latest(session.name)
        if previous is None:
            check_creation(session, signatures)
        else:
            # Said here, without the latest hash: the submitter may be anyone.
            if session.predecessor != previous.hash:
                raise PolicyError(
                    f"session {session.name} exists and this is not an update of its latest "
                    f"version (a party reads it with `seml session show {session.name} --key`)"
                )
            check_update(previous.session, session, signatures)
        values = self._provided_values(session, provided)
        record = SessionRecord(
            session=session,
            hash=h,
            version=1 if previous is None else previous.version + 1,
            signatures=tuple(s for s in signatures if s.hash == h),
            accepted=now,
        )
        sealed = self._secrets_for(session, h, previous, values, now)
        with self.store.transaction() as db:
            self.store.add_session(db, record, sealed)
            self.store.append_audit(
                db,
                "session.create" if previous is None else "session.update",
                {
                    "session": session.name,
                    "hash": h,
                    "version": record.version,
                    "predecessor": session.predecessor,
                    "signers": sorted({s.party for s in record.signatures}),
                    "provided": sorted(values),
                },
                now,
            )
            if proposal is not None:
                self.store.append_audit(
                    db,
                    "proposal.activate",
                    {"session": session.name, "hash": h, "version": record.version, **proposal},
                    now,
                )
        self.store.committed(record)
        return record

    def _provided_values(self, session: Session, provided: dict[str, bytes]) -> dict[str, bytes]:
        return {
            name: open_provided(self.identity.box_key, session, name, sealed)
            for name, sealed in provided.items()
        }

    def _secrets_for(
        self,
        session: Session,
        h: str,
        previous: SessionRecord | None,
        provided: dict[str, bytes],
        now: float,
    ) -> dict[str, tuple[str, bytes]]:
        """Seal every owned secret and volume key under the new hash.

        A secret (or volume) that the predecessor already had with the same definition keeps its
        value: data encrypted under the old version stays readable after an update.
        """
        old = self.store.sealed_secrets(previous.hash) if previous is not None else {}
        old_session = previous.session if previous is not None else None
        sealed: dict[str, tuple[str, bytes]] = {}

        def inherit(name: str, same: bool) -> bytes | None:
            if previous is None or not same or name not in old:
                return None
            return open_secret(self._secrets_key, previous.hash, name, old[name][1])

        when = dt.datetime.fromtimestamp(now, dt.UTC)
        for secret in session.secrets:
            if secret.import_ is not None or secret.kind is None:
                continue
            before = old_session.secret(secret.name) if old_session else None
            same = before is not None and (before.kind, before.size, before.common_name) == (
                secret.kind,
                secret.size,
                secret.common_name,
            )
            value: bytes | None
            if secret.kind is SecretKind.PROVIDED:
                value = provided.get(secret.name)
                if value is None:
                    value = inherit(secret.name, same)
                if value is None:
                    raise PolicyError(
                        f"secret {secret.name} must be provided by {secret.provided_by} "
                        "with the submission"
                    )
            else:
                value = inherit(secret.name, same) or generate_secret(
                    secret.kind,
                    size=secret.size,
                    common_name=secret.common_name or secret.name,
                    now=when,
                )
            sealed[secret.name] = (
                secret.kind.value,
                seal_secret(self._secrets_key, h, secret.name, value),
            )
        for volume in session.volumes:
            if volume.import_ is not None:
                continue
            name = volume_secret_name(volume.name)
            had = old_session is not None and old_session.volume(volume.name) is not None
            key = inherit(name, had and old_session is not None) or generate_secret(
                SecretKind.KEY, size=32, common_name="", now=when
            )
            sealed[name] = (SecretKind.KEY.value, seal_secret(self._secrets_key, h, name, key))
        return sealed

    def read(
        self,
        name: str,
        *,
        hash_: str | None,
        party: str | None,
        nonce: bytes | None,
        signature: bytes | None,
        now: float,
    ) -> list[SessionRecord]:
        """Versions of `name`, for a party of its latest version (signed challenge): all of
        them, or with `hash_` that version and its ancestors. A hash alone grants nothing: it
        appears in signatures, logs and configurations, so it cannot be a credential."""
        history = self._party_history(
            name, party, nonce, signature, now, what="the documents", challenge=read_challenge
        )
        if hash_ is None:
            return history
        for i, r in enumerate(history):
            if hmac.compare_digest(r.hash, hash_):
                return history[: i + 1]
        raise NotFoundError(f"{hash_[:80]} is not a version of session {name}")

    # -- attestation ----------------------------------------------------------------------

    def attest(
        self,
        *,
        session_name: str,
        service_name: str,
        session_hash_: str | None,
        nonce: bytes,
        public_key: bytes,
        evidence: Evidence,
        now: float,
    ) -> bytes:
        """Verify evidence and return the service's configuration sealed to `public_key`."""
        self.nonces.consume(nonce, now)
        if len(public_key) != 32:
            raise UsageError("public_key must be a 32-byte X25519 key")
        record = self.store.latest(session_name)
        service = record.session.service(service_name) if record is not None else None
        if record is None or service is None:
            raise NotFoundError(
                f"no service {service_name} in a session named {session_name} (check both names)"
            )
        if session_hash_ is not None and session_hash_ != record.hash:
            raise PolicyError(
                f"session {session_name} has changed since the version pinned with "
                f"--session-hash {session_hash_[:80]} (a party reads the latest one)"
            )
        session = record.session
        verdict = self.verifier.verify(evidence, now=int(now))
        expect_report_data(verdict, report_data_for(nonce, public_key, evidence.workload))
        try:
            admitted = admit(service, verdict, evidence.workload)
        except AttestationError as e:
            raise AttestationError(f"{e} (session {session_name})") from None
        platform = verdict.details.get("platform")
        if service.platforms is not None and platform not in service.platforms:
            raise AttestationError(
                f"evidence comes from platform {platform or '(unknown)'}; service {service_name} "
                f"of session {session_name} runs only on {', '.join(service.platforms)}"
            )
        check_weaknesses(
            verdict,
            tolerate=session.security.tolerate,
            ignore_advisories=session.security.ignore_advisories,
        )
        weaknesses = sorted(verdict.weaknesses)
        # Receipts and model releases (`seml.cas._receipts`): a model key waits for its owners,
        # and the attested service gets the capability for its completion report.
        from seml.cas._receipts import (
            attestation_facts,
            check_release,
            new_capability,
            record_attestation,
        )

        released = check_release(self.receipts, record, service_name)
        added: dict[str, str] = {}
        if released is not None:
            from seml._claims import RELEASED_VARIABLE

            added[RELEASED_VARIABLE] = released
        capability = new_capability()
        config = resolve_config(
            record,
            service_name,
            (self.store.latest, self._value),
            token_key=self._token_key,
            measurement=admitted.workload,
            tee=verdict.tee.value,
            weaknesses=weaknesses,
            now=now,
            completion=capability,
            environment=added,
        )
        # What SealedBox(PublicKey(public_key)).encrypt gives, without the two objects.
        sealed: bytes = crypto_box_seal(config.to_json().encode(), public_key)
        details: dict[str, Any] = {
            "session": session_name,
            "hash": record.hash,
            "service": service_name,
            "tee": verdict.tee.value,
            "measurement": admitted.workload,
            "platform_measurement": admitted.platform_measurement,
            "gpus": admitted.gpus,
            "tcb_status": verdict.tcb_status,
            "weaknesses": weaknesses,
            "platform": platform,
            "secrets": config.secrets,
            "volumes": sorted(config.volumes),
            "key": fingerprint(public_key),
        }
        facts = attestation_facts(self.store, record, service_name, details)
        with self.store.transaction() as db:
            self.store.append_audit(
                db,
                "attest.release",
                details,
                now,
                # The parties of a session whose secret or volume this release hands on read
                # the entry too: who got my data key is theirs to know.
                sessions=(session_name, *_sources(record, service)),
            )
            record_attestation(self.store, db, capability, record, service_name, facts, now)
        return sealed

    @property
    def receipts(self) -> ReceiptDesk:
        """Completions, receipts and model releases (`seml.cas._receipts`)."""
        if self._receipts is None:
            from seml.cas._receipts import ReceiptDesk

            self._receipts = ReceiptDesk(self)
        return self._receipts

    def _value(self, record: SessionRecord, name: str) -> tuple[SecretKind, bytes]:
        row = self.store.sealed_secrets(record.hash).get(name)
        if row is None:
            raise PolicyError(f"session {record.session.name} {record.hash} holds no {name}")
        kind, blob = row
        return SecretKind(kind), open_secret(self._secrets_key, record.hash, name, blob)

    # -- volumes --------------------------------------------------------------------------

    def _check_token(self, owner: str, volume: str, token: str, now: float) -> None:
        """The token must be one this service released for this volume, unexpired, and the
        sessions it was released under (holder and owner) must still be at the versions it
        names. One refusal for every failure: a guesser learns nothing."""
        refusal = PolicyError(
            f"no valid capability for volume {volume[:64]} of session {owner[:64]} (a token "
            "ends when it expires or either session gets a new version: attest again)"
        )
        claim = parse_volume_token(token)
        if claim is None or claim.expires < now:
            raise refusal
        holder, owning = self.store.latest(claim.holder), self.store.latest(owner)
        if holder is None or owning is None:
            raise refusal
        expected = volume_token(
            self._token_key,
            owner=owner,
            volume=volume,
            owner_hash=owning.hash,
            holder_hash=holder.hash,
            claim=claim,
        )
        if not hmac.compare_digest(expected.encode(), token.encode()):
            raise refusal

    def volume_get(
        self, owner: str, volume: str, token: str, *, now: float
    ) -> tuple[int, str | None]:
        self._check_token(owner, volume, token, now)
        return self.store.volume_version(owner, volume)

    def volume_set(
        self,
        owner: str,
        volume: str,
        token: str,
        *,
        expected: int,
        version: int,
        tag: str,
        now: float,
    ) -> tuple[int, str]:
        """Compare-and-set: only from the current version, only forwards."""
        self._check_token(owner, volume, token, now)
        current, _ = self.store.volume_version(owner, volume)
        if expected != current:
            raise PolicyError(
                f"volume {volume} of session {owner} is at version {current}, not {expected}"
            )
        if version <= current:
            raise PolicyError(
                f"volume {volume} of session {owner}: version {version} does not move forward "
                f"from {current} (rollback refused)"
            )
        with self.store.transaction() as db:
            self.store.set_volume_version(db, owner, volume, version, tag, now)
            self.store.append_audit(
                db,
                "volume.version",
                {"session": owner, "volume": volume, "version": version, "tag": tag},
                now,
            )
        return version, tag


def _sources(record: SessionRecord, service: Service) -> list[str]:
    """The sessions `service` (of `record`) imports a secret or volume from."""
    session = record.session
    names = {p.name for _, p in record.placeholders(service.name)}
    imported = [
        s.import_.session for s in session.secrets if s.name in names and s.import_ is not None
    ]
    imported += [
        v.import_.session
        for v in session.volumes
        if v.name in service.volumes and v.import_ is not None
    ]
    return sorted(set(imported))
