"""`seml receipt get/show/status/verify` and `seml model approve/reject`: a training run's
receipt, checked offline, and the data owners' release of the model it names."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml.cli._cas import AsJson, CasFingerprint, CasUrl
from seml.errors import IntegrityError, StorageError, UsageError

if TYPE_CHECKING:
    from seml.cas import CasClient
    from seml.cas._receipt_models import ReleaseStatus
    from seml.policy import PartyKey
    from seml.receipt import ReceiptCheck, SignedReceipt

__all__ = ["receipt_lines", "register"]

ReceiptFile = Annotated[Path, typer.Argument(help="A receipt (JSON, from `seml receipt get`).")]
Key = Annotated[Path, typer.Option("--key", help="Your party's private key (NAME.key).")]


def register(app: typer.Typer) -> None:
    receipt = typer.Typer(
        help="Training receipts: fetch one, read it, verify it offline, see its release.",
        no_args_is_help=True,
    )
    for name, fn in (("get", get), ("show", show), ("status", status), ("verify", verify)):
        receipt.command(name)(fn)
    app.add_typer(receipt, name="receipt")
    model = typer.Typer(
        help="Release a trained model: its owners approve or reject a receipt's model.",
        no_args_is_help=True,
    )
    model.command("approve")(approve)
    model.command("reject")(reject)
    app.add_typer(model, name="model")


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror or e}") from e


def load_receipt(path: Path) -> SignedReceipt:
    from pydantic import ValidationError

    from seml.receipt import SignedReceipt

    try:
        return SignedReceipt.model_validate_json(_read(path, "receipt"))
    except ValidationError as e:
        raise IntegrityError(f"{path}: not a seml receipt ({e.error_count()} errors)") from None


def receipt_lines(r: SignedReceipt) -> list[str]:
    """The receipt for people: SIMULATED first where it applies."""
    b = r.receipt
    lines = []
    if b.simulated:
        lines += ["*" * 78, b.notice, "*" * 78]
    lines += [
        f"receipt {r.id}",
        f"  issued {_when(b.issued)} by the attestation service {b.issuer}",
        f"  session {b.session.name} version {b.session.version} {b.session.hash}",
        f"    activated by {', '.join(sorted({s.party for s in b.session.signatures}))}",
    ]
    for p in b.private_sessions:
        lines.append(f"    data keys from {p.name} {p.hash} ({', '.join(p.secrets)})")
    lines.append("  services:")
    for s in b.services:
        evidence = "SIMULATED evidence" if s.simulated else f"{s.tee} evidence"
        lines.append(
            f"    {s.role:<8}{s.service}: {evidence}, measurement {s.measurement[:16]}..., "
            f"platform {s.platform or '-'}, attested {_when(s.attested)}, completed "
            f"{_when(s.completed)}"
        )
        if s.weaknesses:
            lines.append(f"            tolerated weaknesses: {', '.join(s.weaknesses)}")
    lines.append("  inputs:")
    for i in b.inputs:
        lines.append(
            f"    {i.party}: {i.remote} manifest v{i.manifest_version} {i.manifest_digest[:16]}..."
            f" ({i.files} file(s), {i.bytes} bytes)"
        )
    t = b.training
    lines.append(
        f"  training: code {t.measurement[:16]}..., specs "
        + ", ".join(f"{s.name} {s.sha256[:12]}..." for s in t.specs)
    )
    for task, metrics in sorted(t.metrics.items()):
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        lines.append(f"    {task}: {shown}")
    m = b.model
    lines.append(f"  model {m.digest}")
    lines.append(f"    pushed to {m.remote}, manifest v{m.manifest_version}")
    for f in m.files:
        lines.append(f"    {f.path}: sha256 {f.sha256} ({f.size} bytes)")
    if b.release.required:
        lines.append(
            f"  release: {b.release.secret} waits for approval by {b.release.rule} "
            "(`seml model approve`)"
        )
    else:
        lines.append("  release: none required (released at publish)")
    lines.append("  audit entries: " + ", ".join(f"{a.seq} {a.event}" for a in b.audit))
    return lines


def _status_lines(s: ReleaseStatus) -> list[str]:
    lines = [f"release: {s.state.value.upper()}: {s.summary}"]
    if s.required:
        lines.append(f"  rule: {s.rule}")
        for d in s.decisions:
            lines.append(f"  {d.party} {d.decision.value}d (key {d.key})")
        for need in s.needs:
            lines.append(f"  missing: {need}")
    return lines


def _client(cas_url: str | None, cas_fingerprint: str | None) -> CasClient:
    from seml.cas import client_from_env

    return client_from_env(cas_url, cas_fingerprint)


def get(
    session: Annotated[str, typer.Argument(help="The collaboration session's name.")],
    key: Key,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o", "--out", help="Where to write the latest receipt (default: SESSION.receipt.json)."
        ),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Write every receipt, as SESSION.receipt.N.json.")
    ] = False,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Fetch your session's latest receipt (or --all), as one of its parties.

    The read is a signed challenge; each receipt's signature is checked against the identity
    key of the service you pinned."""
    from seml._fs import write_atomic
    from seml.policy import load_private_key

    with _client(cas_url, cas_fingerprint) as client:
        answer = client.receipts(session, load_private_key(key))
    if not answer.receipts:
        raise UsageError(f"session {session} has no receipt yet: no run has published a model")
    chosen = list(enumerate(answer.receipts, 1)) if all_ else [(0, answer.receipts[-1])]
    written = []
    for n, entry in chosen:
        path = (
            Path(f"{session}.receipt.{n}.json") if all_ else out or Path(f"{session}.receipt.json")
        )
        write_atomic(path, entry.receipt.to_json())
        written.append((path, entry))
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "file": str(p),
                        "receipt": e.receipt.id,
                        "status": e.status.model_dump(mode="json"),
                    }
                    for p, e in written
                ],
                indent=2,
            )
        )
        return
    for path, entry in written:
        simulated = " (SIMULATED evidence)" if entry.receipt.receipt.simulated else ""
        typer.echo(f"{path}: receipt {entry.receipt.id}{simulated}")
        for line in _status_lines(entry.status):
            typer.echo(f"  {line}")


def show(
    file: ReceiptFile,
    with_status: Annotated[
        bool,
        typer.Option(
            "--status", help="Also ask the service where its release stands (needs --key)."
        ),
    ] = False,
    key: Annotated[
        Path | None, typer.Option("--key", help="Your party's key, for --status.")
    ] = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Print a receipt for people (this does not verify it: `seml receipt verify`)."""
    r = load_receipt(file)
    release = None
    if with_status:
        if key is None:
            raise UsageError("--status needs --key (a party's key reads the release status)")
        release = _release(r, key, cas_url, cas_fingerprint)
    if as_json:
        data = {"id": r.id, **r.model_dump(mode="json")}
        if release is not None:
            data["status"] = release.model_dump(mode="json")
        typer.echo(json.dumps(data, indent=2))
        return
    for line in receipt_lines(r):
        typer.echo(line)
    if release is not None:
        for line in _status_lines(release):
            typer.echo(line)


def _release(
    r: SignedReceipt, key: Path, cas_url: str | None, cas_fingerprint: str | None
) -> ReleaseStatus:
    from seml.policy import load_private_key

    with _client(cas_url, cas_fingerprint) as client:
        answer = client.receipts(r.receipt.session.name, load_private_key(key))
    for entry in answer.receipts:
        if entry.receipt.id == r.id:
            return entry.status
    raise IntegrityError(
        f"the attestation service holds no receipt {r.id} of session {r.receipt.session.name}"
    )


def status(
    file: ReceiptFile,
    key: Key,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Where the release of a receipt's model stands: approvals, rejections, what is missing."""
    s = _release(load_receipt(file), key, cas_url, cas_fingerprint)
    if as_json:
        typer.echo(json.dumps(s.model_dump(mode="json"), indent=2))
        return
    for line in _status_lines(s):
        typer.echo(line)


def _identity_key(text: str) -> bytes:
    """The service identity key: base64 (as `seml cas info` prints it) or a file holding it."""
    value = text
    path = Path(text)
    if not text.strip().endswith("=") and path.is_file():
        value = path.read_text().strip()
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise UsageError(
            "--cas-identity takes the service's identity key: base64 of 32 bytes, as `seml cas "
            "info` prints it (identity_key), or a file holding it"
        )
    return raw


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        raise StorageError(f"cannot read model file {path}: {e.strerror or e}") from e
    return h.hexdigest(), path.stat().st_size


def _pairs(items: list[str], option: str) -> list[tuple[str, Path]]:
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"{option} takes PARTY=FILE, got {item!r}")
        out.append((name, Path(value)))
    return out


def check_lines(result: ReceiptCheck) -> list[str]:
    marks = {"pass": "ok  ", "fail": "FAIL", "skipped": "skip"}
    return [f"  {marks[c.status.value]} {c.name}: {c.detail}" for c in result.checks]


def verify(
    file: ReceiptFile,
    cas_identity: Annotated[
        str,
        typer.Option(
            "--cas-identity",
            help="The service's identity key you pinned (base64, `seml cas info`'s identity_key,"
            " or a file holding it).",
        ),
    ],
    model: Annotated[
        list[Path] | None,
        typer.Option(
            "--model", help="A model file you hold: must be one the run trained (repeatable)."
        ),
    ] = None,
    session: Annotated[
        Path | None,
        typer.Option(
            "--session",
            help="The session file you approved: must be the one the run "
            "ran under, activated by its parties' signatures.",
        ),
    ] = None,
    predecessor: Annotated[
        Path | None,
        typer.Option(
            "--predecessor",
            help="When the session is an update: the version before it (`seml session show "
            "NAME --hash HASH`), whose update rule the activating signatures must meet.",
        ),
    ] = None,
    manifest: Annotated[
        list[str] | None,
        typer.Option(
            "--manifest",
            help="PARTY=FILE: that party's sync state (sync-versions.json in its SEML_STATE_DIR,"
            " written by its push): the run's input of PARTY must be a manifest it pushed "
            "(repeatable).",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Verify a receipt OFFLINE: signature, model, session, inputs. Exit 3 naming a mismatch.

    No service is needed: the signature is checked with the identity key you pinned, and the
    model files, the session file and the parties' manifest records are the ones you hold."""
    from seml.policy import parse_session
    from seml.receipt import LocalFile, ManifestSeen, parse_sync_state, verify_receipt

    identity = _identity_key(cas_identity)
    models = [LocalFile(str(p), *_sha256_file(p)) for p in model or []]
    doc = None
    if session is not None:
        doc = parse_session(_read(session, "session file"), source=str(session))
    before = None
    if predecessor is not None:
        if doc is None:
            raise UsageError("--predecessor needs --session (the update it precedes)")
        before = parse_session(_read(predecessor, "predecessor file"), source=str(predecessor))
    manifests: dict[str, list[ManifestSeen]] = {}
    for party, path in _pairs(manifest or [], "--manifest"):
        manifests.setdefault(party, []).extend(
            parse_sync_state(_read(path, "sync state"), source=str(path))
        )
    result = verify_receipt(
        _read(file, "receipt"),
        identity,
        models=models,
        session=doc,
        predecessor=before,
        manifests=manifests,
    )
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        if result.simulated:
            typer.echo(f"NOTE: {result.notice}")
        typer.echo(f"receipt {result.receipt or file}:")
        for line in check_lines(result):
            typer.echo(line)
    if not result.ok:
        raise IntegrityError(f"receipt {file} does not verify: " + "; ".join(result.problems))
    if not as_json:
        typer.echo(
            f"receipt {file} verified offline: {len(models)} model file(s), "
            f"{'the session' if doc else 'no session'}, {len(manifests)} party input(s) "
            "checked"
        )


def _party(r: SignedReceipt, key: PartyKey, party: str | None) -> str:
    if party is not None:
        return party
    mine = [p for p, fp in r.receipt.session.parties.items() if fp == key.fingerprint]
    if not mine:
        raise UsageError(
            f"key {key.fingerprint} is not the key of a party of session "
            f"{r.receipt.session.name} (as the receipt lists them); give --party"
        )
    return mine[0]


def _decide(
    file: Path,
    key: Path,
    party: str | None,
    decision: str,
    cas_url: str | None,
    cas_fingerprint: str | None,
    as_json: bool,
) -> None:
    from seml.policy import Decision, load_private_key, sign_model_decision
    from seml.receipt import verify_receipt

    r = load_receipt(file)
    k = load_private_key(key)
    who = _party(r, k, party)
    with _client(cas_url, cas_fingerprint) as client:
        # Sign only what the service you pinned vouched for.
        identity = base64.b64decode(client.info().identity_key)
        check = verify_receipt(_read(file, "receipt"), identity)
        if not check.ok:
            raise IntegrityError(
                f"receipt {file} does not verify against the service: " + "; ".join(check.problems)
            )
        signed = sign_model_decision(
            r.receipt.model.digest, r.receipt.session.name, who, k, Decision(decision)
        )
        s = client.decide_model(signed)
    if as_json:
        typer.echo(json.dumps(s.model_dump(mode="json"), indent=2))
        return
    typer.echo(f"{who} {decision}d model {r.receipt.model.digest} (receipt {r.id})")
    for line in _status_lines(s):
        typer.echo(line)


Party = Annotated[
    str | None,
    typer.Option("--party", help="Your party's name (default: the party whose key --key is)."),
]


def approve(
    file: ReceiptFile,
    key: Key,
    party: Party = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Approve the model a receipt names (read it first: `seml receipt show`): sign its digest
    and upload the decision. Final: an approval cannot be turned into a rejection."""
    _decide(file, key, party, "approve", cas_url, cas_fingerprint, as_json)


def reject(
    file: ReceiptFile,
    key: Key,
    party: Party = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Reject the model a receipt names: it stays refused to every model service. Final."""
    _decide(file, key, party, "reject", cas_url, cas_fingerprint, as_json)
