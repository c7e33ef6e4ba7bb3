"""The attestation service's logic, independent of HTTP: sessions, reads, attestation, volumes.

Every method takes `now` explicitly. Every accepted change and every secret release is written
to the audit log in the same transaction as the change itself; refusals are logged by the caller.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
from typing import TYPE_CHECKING, Any

from nacl.public import PublicKey, SealedBox

from seml.attest import (
    Evidence,
    Verifier,
    check_weaknesses,
    expect_report_data,
    report_data_for,
)
from seml.cas._admission import admit
from seml.cas._identity import CasIdentity
from seml.cas._nonce import NonceBook
from seml.cas._protocol import read_challenge
from seml.cas._provided import open_provided
from seml.cas._resolve import resolve_config, volume_secret_name, volume_token
from seml.cas._results import ServiceInfo
from seml.cas._secrets import generate_secret, open_secret, seal_secret
from seml.cas._state import SessionRecord, StateStore
from seml.errors import AttestationError, PolicyError, UsageError
from seml.policy import (
    SecretKind,
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
    """The named session (or version) does not exist."""


class CasService:
    def __init__(self, identity: CasIdentity, store: StateStore, verifier: Verifier) -> None:
        self.identity = identity
        self.store = store
        self.verifier = verifier
        self.nonces = NonceBook()
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

    def log_refusal(self, request: str, reason: str, now: float, **details: str) -> None:
        with self.store.transaction() as db:
            self.store.append_audit(
                db, "refused", {"request": request, "reason": reason, **details}, now
            )

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
        """Versions of `name`: all of them for a party (signed challenge); for a caller that
        knows one version's hash, that version and its ancestors (whose hashes it names anyway),
        never a later one."""
        history = self.store.history(name)
        if not history:
            raise NotFoundError(f"no session named {name}")
        if hash_ is not None:
            for i, r in enumerate(history):
                if hmac.compare_digest(r.hash, hash_):
                    return history[: i + 1]
            raise PolicyError(f"{hash_} is not a version of session {name}")
        if party is None or nonce is None or signature is None:
            raise PolicyError(
                f"reading session {name} needs one version's hash or a party's signed challenge"
            )
        latest = history[-1].session
        key = latest.parties.get(party)
        if key is None:
            raise PolicyError(f"{party} is not a party of session {name}")
        self.nonces.consume(nonce, now)
        if not verify_ed25519(parse_public_key(key), signature, read_challenge(name, nonce)):
            raise PolicyError(f"bad read challenge signature from {party} for session {name}")
        return history

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
        if record is None:
            raise NotFoundError(f"no session named {session_name}")
        if session_hash_ is not None and session_hash_ != record.hash:
            raise PolicyError(
                f"session {session_name} is now {record.hash}, not the expected {session_hash_}"
            )
        session = record.session
        service = session.service(service_name)
        if service is None:
            raise PolicyError(f"session {session_name} has no service {service_name}")
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
        config = resolve_config(
            record,
            service_name,
            (self.store.latest, self._value),
            token_key=self._token_key,
            measurement=admitted.workload,
            tee=verdict.tee.value,
            weaknesses=weaknesses,
        )
        capability = new_capability()
        update: dict[str, Any] = {"completion": capability}
        if released is not None:
            from seml._claims import RELEASED_VARIABLE

            update["environment"] = {**config.environment, RELEASED_VARIABLE: released}
        config = config.model_copy(update=update)
        sealed: bytes = SealedBox(PublicKey(public_key)).encrypt(config.model_dump_json().encode())
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
            self.store.append_audit(db, "attest.release", details, now)
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

    def _check_token(self, owner: str, volume: str, token: str) -> None:
        if not hmac.compare_digest(volume_token(self._token_key, owner, volume), token):
            raise PolicyError(f"no valid capability for volume {volume} of session {owner}")

    def volume_get(self, owner: str, volume: str, token: str) -> tuple[int, str | None]:
        self._check_token(owner, volume, token)
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
        self._check_token(owner, volume, token)
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
