"""`CasClient`: talks to the service over HTTPS, trusting exactly one pinned certificate.

The client first fetches the server certificate without trusting it, compares its sha256
fingerprint with the pin, and then builds an SSL context whose only trust anchor is that
certificate: every later connection (keep-alive or not) is verified against it, so a swapped
certificate fails the handshake. Hostnames are not checked: the pin is the identity. The
requests go over the standard library's `socket` and `ssl` (`seml.cas._http`): a workload's
runtime does not pay for importing httpx, nor `http.client` with the `email` package.

A client can instead be given an httpx transport (``transport=``): requests then go wherever
that transport sends them and no certificate is checked. The tests use it to run the service's
app in the same process; it is never the way to reach a service over a network.
"""

from __future__ import annotations

import base64
import json as jsonlib
import os
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from nacl.public import PrivateKey, SealedBox

from seml.attest import EvidenceProvider, report_data_for
from seml.cas._http import HttpFailure, PinnedConnection
from seml.cas._protocol import (
    ServiceConfig,
    audit_challenge,
    cert_fingerprint,
    error_class,
    read_challenge,
)
from seml.errors import IntegrityError, NetworkError, UsageError

if TYPE_CHECKING:
    import httpx
    from pydantic import BaseModel

    from seml.cas._audit import AuditEntry
    from seml.cas._proposal_models import ProposalView, SessionStatus
    from seml.cas._receipt_models import ReceiptList, ReleaseStatus
    from seml.cas._results import ServiceInfo, SessionSummary, SessionVersion
    from seml.policy import ModelDecision, PartyKey, Session, SessionSignature, SignedDecision

__all__ = ["CasClient", "PinMismatchError", "client_from_env"]

_M = TypeVar("_M", bound="BaseModel")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class PinMismatchError(NetworkError):
    """The service presents another certificate than the pinned one: a trust failure of the
    connection (exit 7, like any TLS failure), to be fixed with the current pin."""


def _pinned_context(url: str, pin: str, timeout: float) -> ssl.SSLContext:
    """An SSL context that trusts exactly the pinned certificate (read from the service)."""
    context, first = _pinned(url, pin, timeout)
    first.close()
    return context


def _pinned(url: str, pin: str, timeout: float) -> tuple[ssl.SSLContext, ssl.SSLSocket]:
    """The pinned context, and the connection the certificate was read on, for the first
    requests: one TLS handshake per client instead of two.

    That connection was made without chain verification (there is no CA to verify against),
    but the handshake itself proved the server holds the private key of the certificate it
    presented (TLS checks its signature over the handshake whatever the verification mode), and
    nothing is sent on it before that certificate's SHA-256 equals the pin."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"the attestation service URL must be https://HOST:PORT, got {url!r}")
    if not pin.startswith("sha256:") or len(pin) != 71:
        raise UsageError(f"--cas-fingerprint must be sha256:<64 hex>, got {pin!r}")
    # Only to read the certificate, which is then pinned; no CA store is loaded for it.
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        raw = socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout)
    except OSError as e:
        raise NetworkError(f"cannot reach the attestation service at {url}: {e}") from e
    try:
        tls = probe.wrap_socket(raw, server_hostname=parts.hostname)
    except (OSError, ssl.SSLError) as e:
        raw.close()
        raise NetworkError(f"cannot reach the attestation service at {url}: {e}") from e
    der = tls.getpeercert(binary_form=True)
    if der is None or cert_fingerprint(der) != pin.lower():
        tls.close()
        # A trust failure of the connection (network class, exit 7), like any TLS failure:
        # nothing was received from the service, so no data failed its integrity check.
        got = "none" if der is None else cert_fingerprint(der)
        raise PinMismatchError(
            f"the attestation service at {url} presents certificate {got}, not the pinned "
            f"{pin}: check --cas-fingerprint (or SEML_CAS_FINGERPRINT) against `seml cas info` "
            "on the service's machine"
        )
    context = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(der))
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    return context, tls


def _parse(model: type[_M], body: Any, what: str) -> _M:
    from pydantic import ValidationError

    try:
        return model.model_validate(body)
    except ValidationError as e:
        raise NetworkError(f"attestation service: unexpected answer to {what}: {e}") from e


class CasClient:
    """A pinned HTTPS client for one attestation service. Use as a context manager or close().

    `transport` replaces the pinned TLS connection (see the module's docstring): only for a
    transport you trust, such as the service's app in this process.
    """

    def __init__(
        self,
        url: str,
        fingerprint: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.fingerprint = fingerprint
        self._conn: PinnedConnection | httpx.Client
        if transport is not None:
            from seml.cas._httpx import httpx

            self._conn = httpx.Client(base_url=self.url, transport=transport, timeout=timeout)
        else:
            context, first = _pinned(self.url, fingerprint, timeout)
            self._conn = PinnedConnection(self.url, context, timeout, first=first)
        self._info: ServiceInfo | None = None

    def __enter__(self) -> CasClient:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def __repr__(self) -> str:
        return f"CasClient({self.url!r}, {self.fingerprint!r})"

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        status, data = self._send(method, path, json=json, params=params, headers=headers)
        try:
            body = jsonlib.loads(data)
        except ValueError:
            body = None
        if status >= 400:
            if isinstance(body, dict) and "message" in body:
                cls = error_class(body.get("error"))
                raise cls(f"attestation service refused: {body['message']}")
            raise NetworkError(f"attestation service {self.url}{path}: HTTP {status}")
        if not isinstance(body, dict):
            raise NetworkError(f"attestation service {self.url}{path}: answer is not JSON")
        return body

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[int, bytes]:
        """(status, body) from the pinned connection, or from the given transport."""
        if isinstance(self._conn, PinnedConnection):
            body = None if json is None else jsonlib.dumps(json, allow_nan=False).encode()
            try:
                return self._conn.request(method, path, body=body, params=params, headers=headers)
            except HttpFailure as e:
                raise NetworkError(f"attestation service {self.url}{path}: {e}") from e
        from seml.cas._httpx import httpx

        try:
            response = self._conn.request(method, path, json=json, params=params, headers=headers)
        except httpx.HTTPError as e:
            raise NetworkError(f"attestation service {self.url}{path}: {e}") from e
        return response.status_code, response.content

    # -- service ------------------------------------------------------------------------

    def info(self) -> ServiceInfo:
        """Who the service is: its audit-signing key, sealing key and certificate pin."""
        from seml.cas._results import ServiceInfo

        if self._info is None:
            self._info = _parse(ServiceInfo, self._call("GET", "/v1/info"), "info")
        return self._info

    def nonce(self) -> bytes:
        return base64.b64decode(self._call("POST", "/v1/nonce")["nonce"])

    # -- sessions -----------------------------------------------------------------------

    def seal_provided(self, session: Session, secret: str, value: bytes, key: PartyKey) -> str:
        """Seal a provided secret's value to this service, signed by its providing party (see
        `seml.cas._provided`). The result can travel through anyone's hands to `submit_session`."""
        box_key = base64.b64decode(self.info().box_key)
        from seml.cas._provided import seal_provided

        return _b64(seal_provided(box_key, session, secret, value, key))

    def submit_session(
        self,
        session: Session,
        signatures: list[SessionSignature],
        provided: Mapping[str, str] | None = None,
    ) -> SessionSummary:
        """Submit a session with its signatures and the sealed values of provided secrets
        (from `seal_provided`, keyed by secret name); the accepted version."""
        from seml.cas._results import SessionSummary

        body = self._call(
            "POST",
            "/v1/sessions",
            json={
                "document": session.document(),
                "signatures": [s.model_dump() for s in signatures],
                "provided": dict(provided or {}),
            },
        )
        return _parse(SessionSummary, body, "a session submission")

    def _challenge(
        self, name: str, party: tuple[str, PartyKey], challenge: Callable[[str, bytes], bytes]
    ) -> dict[str, str]:
        """The headers of a party's signed challenge over a fresh nonce of the service."""
        nonce = self.nonce()
        return {
            "X-Seml-Party": party[0],
            "X-Seml-Nonce": _b64(nonce),
            "X-Seml-Signature": _b64(party[1].sign(challenge(name, nonce))),
        }

    def _read(
        self, name: str, *, hash_: str | None, party: tuple[str, PartyKey] | None
    ) -> list[SessionVersion]:
        from seml.cas._results import SessionVersions

        if party is None:
            raise UsageError(
                f"reading session {name} needs a party's key (--key): a hash alone grants no access"
            )
        body = self._call(
            "GET",
            f"/v1/sessions/{quote(name, safe='')}",
            params={"hash": hash_} if hash_ is not None else None,
            headers=self._challenge(name, party, read_challenge),
        )
        versions = _parse(SessionVersions, body, f"a read of session {name}").versions
        if not versions or (hash_ is not None and versions[-1].hash != hash_):
            raise NetworkError(f"attestation service: no version of {name} in its answer")
        _check_history(name, versions)
        return versions

    def get_session(
        self, name: str, *, party: tuple[str, PartyKey] | None, hash_: str | None = None
    ) -> SessionVersion:
        """The latest version (document, hash, signatures), or the version with `hash_`, as a
        party of the session reads it (`party`: its name and key)."""
        return self._read(name, hash_=hash_, party=party)[-1]

    def history(
        self, name: str, *, party: tuple[str, PartyKey] | None, hash_: str | None = None
    ) -> list[SessionVersion]:
        """Every version up to the latest (or up to the one with `hash_`), oldest first."""
        return self._read(name, hash_=hash_, party=party)

    # -- proposals ----------------------------------------------------------------------

    def propose(
        self,
        session: Session,
        signature: SignedDecision,
        provided: Mapping[str, str] | None = None,
    ) -> ProposalView:
        """Propose a version with the proposer's signed approval and any sealed provided
        secrets (from `seal_provided`); the proposal as the service now holds it."""
        body = self._call(
            "POST",
            "/v1/proposals",
            json={
                "document": session.document(),
                "signature": signature.model_dump(mode="json"),
                "provided": dict(provided or {}),
            },
        )
        return self._proposal(body, "a proposal", session_hash_of=session)

    def decide(
        self, decision: SignedDecision, provided: Mapping[str, str] | None = None
    ) -> ProposalView:
        """Upload a signed approval, rejection or withdrawal of the proposal `decision.hash`."""
        body = self._call(
            "POST",
            f"/v1/proposals/{quote(decision.hash, safe='')}/decisions",
            json={"decision": decision.model_dump(mode="json"), "provided": dict(provided or {})},
        )
        return self._proposal(body, "a decision")

    def _proposal(
        self, body: Any, what: str, *, session_hash_of: Session | None = None
    ) -> ProposalView:
        from seml.cas._proposal_models import ProposalView
        from seml.policy import session_hash

        view = _parse(ProposalView, body, what)
        if session_hash(view.document) != view.hash or (
            session_hash_of is not None and session_hash(session_hash_of) != view.hash
        ):
            raise IntegrityError(f"attestation service: proposal {view.hash} does not match it")
        return view

    def session_status(self, subject: str, key: PartyKey) -> SessionStatus:
        """What party `key` sees of session `subject` (a name, or a proposal's or version's
        hash): the active version, its proposals, the sessions they import from."""
        from seml.cas._proposal_models import SessionStatus, proposals_challenge
        from seml.policy import session_hash

        nonce = self.nonce()
        body = self._call(
            "GET",
            f"/v1/proposals/{quote(subject, safe='')}",
            headers={
                "X-Seml-Key": _b64(key.public),
                "X-Seml-Nonce": _b64(nonce),
                "X-Seml-Signature": _b64(key.sign(proposals_challenge(subject, nonce))),
            },
        )
        status = _parse(SessionStatus, body, f"a status read of {subject}")
        documents = [(p.hash, p.document) for p in status.proposals]
        if status.active is not None:
            documents.append((status.active.hash, status.active.document))
        for h, document in documents:
            if session_hash(document) != h or document.name != status.name:
                raise IntegrityError(f"attestation service: {h} does not match its document")
        return status

    def my_sessions(self, key: PartyKey) -> list[str]:
        """Names of the sessions whose latest version or one of whose proposals lists `key`
        among its parties (a signed challenge proves the key; see `seml.cas._listing`)."""
        from seml.cas._protocol import listing_challenge

        nonce = self.nonce()
        body = self._call(
            "GET",
            "/v1/parties/sessions",
            headers={
                "X-Seml-Key": _b64(key.public),
                "X-Seml-Nonce": _b64(nonce),
                "X-Seml-Signature": _b64(key.sign(listing_challenge(nonce))),
            },
        )
        names = body.get("sessions")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise NetworkError("attestation service: unexpected answer to a session list")
        return list(names)

    # -- attestation --------------------------------------------------------------------

    def attest(
        self,
        session: str,
        service: str,
        provider: EvidenceProvider,
        *,
        session_hash: str | None = None,
        workload: str | None = None,
    ) -> ServiceConfig:
        """Nonce, evidence bound to a fresh X25519 key, secret release; decrypt and return.

        `workload` is the workload measurement `seml run` computed; it is bound into the report
        data too (what a confidential VM's evidence vouches for) and sent with the evidence.
        """
        key = PrivateKey.generate()
        public = bytes(key.public_key)
        nonce = self.nonce()
        evidence = provider.evidence(report_data_for(nonce, public, workload))
        if workload is not None:
            evidence = evidence.replace(workload=workload)
        body = self._call(
            "POST",
            "/v1/attest",
            json={
                "session": session,
                "service": service,
                "session_hash": session_hash,
                "nonce": _b64(nonce),
                "public_key": _b64(public),
                "evidence": evidence.to_json_dict(),
            },
        )
        try:
            plain = SealedBox(key).decrypt(base64.b64decode(body["sealed"]))
            return ServiceConfig.from_json(plain)
        except Exception as e:  # any failure here means a bad answer
            raise IntegrityError("the attestation service's answer does not decrypt") from e

    # -- completions, receipts, model releases -------------------------------------------

    def complete(
        self,
        config: ServiceConfig,
        *,
        volumes: list[dict[str, Any]],
        claims: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Post the completion report of the attestation that gave `config` (plain data: a
        workload's runtime loads no schema for it); the answer says the audit entry and any
        receipt it completed (`seml.cas._receipt_models.CompletionAnswer`)."""
        if config.completion is None:
            raise UsageError(f"service {config.service} got no completion capability")
        body = self._call(
            "POST",
            "/v1/completions",
            json={
                "capability": config.completion,
                "session": config.session,
                "session_hash": config.session_hash,
                "service": config.service,
                "volumes": volumes,
                "claims": dict(claims),
            },
        )
        return dict(body)

    def receipts(self, session: str, key: PartyKey) -> ReceiptList:
        """Every receipt of `session` with its release status, for party `key`; each receipt's
        signature is checked against the service's identity key (IntegrityError if not)."""
        from seml.cas._receipt_models import ReceiptList, receipts_challenge
        from seml.receipt import verify_receipt

        nonce = self.nonce()
        body = self._call(
            "GET",
            f"/v1/receipts/{quote(session, safe='')}",
            headers={
                "X-Seml-Key": _b64(key.public),
                "X-Seml-Nonce": _b64(nonce),
                "X-Seml-Signature": _b64(key.sign(receipts_challenge(session, nonce))),
            },
        )
        answer = _parse(ReceiptList, body, f"the receipts of {session}")
        identity = base64.b64decode(self.info().identity_key)
        for entry in answer.receipts:
            check = verify_receipt(entry.receipt.model_dump(mode="json"), identity)
            if not check.ok:
                raise IntegrityError(
                    f"attestation service: receipt {entry.receipt.id} does not verify: "
                    + "; ".join(check.problems)
                )
        return answer

    def decide_model(self, decision: ModelDecision) -> ReleaseStatus:
        """Upload an owner's signed approval or rejection of a receipt's model."""
        from seml.cas._receipt_models import ReleaseStatus

        body = self._call(
            "POST",
            f"/v1/models/{quote(decision.hash, safe='')}/decisions",
            json={"decision": decision.model_dump(mode="json")},
        )
        return _parse(ReleaseStatus, body, "a model decision")

    # -- volumes ------------------------------------------------------------------------

    def volume_version(self, owner: str, volume: str, token: str) -> tuple[int, str | None]:
        body = self._call(
            "GET",
            f"/v1/volumes/{quote(owner, safe='')}/{quote(volume, safe='')}",
            headers={"X-Seml-Volume-Token": token},
        )
        return int(body["version"]), body["tag"]

    def set_volume_version(
        self, owner: str, volume: str, token: str, *, expected: int, version: int, tag: str
    ) -> tuple[int, str]:
        """Compare-and-set the volume's version: refused unless `expected` is current and
        `version` is greater."""
        body = self._call(
            "POST",
            f"/v1/volumes/{quote(owner, safe='')}/{quote(volume, safe='')}",
            json={"expected": expected, "version": version, "tag": tag},
            headers={"X-Seml-Volume-Token": token},
        )
        return int(body["version"]), str(body["tag"])

    # -- audit --------------------------------------------------------------------------

    def audit(
        self,
        *,
        verify: bool = True,
        party: tuple[str, PartyKey] | None = None,
        sessions: Sequence[str] = (),
    ) -> list[AuditEntry]:
        """Every audit entry, in order. Each shows its content only if it names one of
        `sessions` and `party` (name, key) is a party of it; the others show their place in
        the chain only. With `verify`, check the chain, the signatures and every content shown
        (IntegrityError)."""
        from seml.cas._audit import verify_audit_chain

        if sessions and party is None:
            raise UsageError("reading a session's audit entries needs a party's key (--key)")
        key = base64.b64decode(self.info().identity_key)
        merged: dict[int, AuditEntry] = {}
        views: list[str | None] = [*sessions] if sessions else [None]
        for session in views:
            for e in self._audit_pages(key, session, party):
                seen = merged.get(e.seq)
                if seen is not None and seen.hash != e.hash:
                    raise IntegrityError(
                        f"the attestation service showed two different audit entries {e.seq}"
                    )
                if seen is None or e.revealed:
                    merged[e.seq] = e
        entries = [merged[s] for s in sorted(merged)]
        if verify:
            verify_audit_chain(entries, key)
        return entries

    def _audit_pages(
        self, key: bytes, session: str | None, party: tuple[str, PartyKey] | None
    ) -> list[AuditEntry]:
        from seml.cas._results import AuditPage

        entries: list[AuditEntry] = []
        after = 0
        while True:
            params: dict[str, Any] = {"after": after, "limit": 5000}
            headers = None
            if session is not None and party is not None:
                params["session"] = session
                headers = self._challenge(session, party, audit_challenge)
            body = self._call("GET", "/v1/audit", params=params, headers=headers)
            page = _parse(AuditPage, body, "an audit read")
            if base64.b64decode(page.identity_key) != key:
                raise IntegrityError("the audit log is signed by another key than the service's")
            if not page.entries:
                return entries
            entries += page.entries
            after = page.entries[-1].seq


def client_from_env(url: str | None, fingerprint: str | None) -> CasClient:
    """A client from explicit options, else SEML_CAS / SEML_CAS_FINGERPRINT."""
    url = url or os.environ.get("SEML_CAS")
    fingerprint = fingerprint or os.environ.get("SEML_CAS_FINGERPRINT")
    if not url or not fingerprint:
        raise UsageError(
            "no attestation service: pass --cas URL --cas-fingerprint sha256:... "
            "(or set SEML_CAS and SEML_CAS_FINGERPRINT)"
        )
    return CasClient(url, fingerprint)


def _check_history(name: str, versions: list[SessionVersion]) -> None:
    """What the service returns is checked, not trusted: each version matches its hash and
    names its predecessor, the first was signed by its creators and each update by the
    parties its predecessor requires (`check_creation`, `check_update`)."""
    from seml.errors import PolicyError
    from seml.policy import check_creation, check_update, session_hash

    previous: SessionVersion | None = None
    for v in versions:
        if v.name != name or session_hash(v.document) != v.hash:
            raise IntegrityError(
                f"attestation service: version {v.version} of {name} does not match its hash"
            )
        try:
            if previous is None:
                if v.version != 1:
                    raise IntegrityError(
                        f"attestation service: the history of {name} does not start at version 1"
                    )
                check_creation(v.document, v.signatures)
            elif v.version != previous.version + 1 or v.document.predecessor != previous.hash:
                raise IntegrityError(
                    f"attestation service: version {v.version} of {name} does not follow "
                    f"version {previous.version}"
                )
            else:
                check_update(previous.document, v.document, v.signatures)
        except PolicyError as e:
            raise IntegrityError(
                f"attestation service: version {v.version} of {name} is not signed as its "
                f"rules require ({e})"
            ) from None
        previous = v
