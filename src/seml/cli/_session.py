"""`seml session check/sign/submit/show/history`: agree on sessions, hand them to the service.

The lifecycle held by the service (propose, approve, reject, withdraw, status) is in
`_proposals`; making the next version and reviewing one, in `_update`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml._fs import write_atomic
from seml.cli._cas import AsJson, CasFingerprint, CasUrl, key_option
from seml.errors import UsageError

if TYPE_CHECKING:
    from seml.cas._results import SessionVersion
    from seml.policy import PartyKey, Session

__all__ = ["register"]

SessionFile = Annotated[Path, typer.Argument(help="Session YAML file.", dir_okay=False)]
SessionName = Annotated[str, typer.Argument(help="Session name.")]
ReadHash = Annotated[
    str | None,
    typer.Option("--hash", help="Show this version (and, for history, its ancestors) only."),
]
ReadKey = Annotated[
    Path | None,
    key_option(
        "A party's private key (signs the service's challenge): only the session's parties read it"
    ),
]
ReadParty = Annotated[
    str | None, typer.Option("--party", help="Party name for --key (default: the key file stem).")
]


def register(app: typer.Typer) -> None:
    session = typer.Typer(
        help="Session documents: check, review, propose, approve, update, read back.",
        no_args_is_help=True,
    )
    for name, fn in (
        ("check", check),
        ("sign", sign),
        ("submit", submit),
        ("seal-secret", seal_secret),
        ("show", show),
        ("history", history),
    ):
        session.command(name)(fn)
    from seml.cli import _proposals, _update

    _proposals.add_commands(session)
    _update.add_commands(session)
    app.add_typer(session, name="session")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from e


def _load_session(path: Path) -> Session:
    from seml.policy import parse_session

    return parse_session(_read(path), source=str(path))


def check(file: SessionFile, as_json: AsJson = False) -> None:
    """Validate a session; print its canonical hash (what parties sign)."""
    from seml.policy import session_hash

    s = _load_session(file)
    if as_json:
        typer.echo(json.dumps({"hash": session_hash(s), "document": s.document()}, indent=2))
        return
    typer.echo(f"session {s.name}: valid")
    typer.echo(f"hash: {session_hash(s)}")
    typer.echo(f"predecessor: {s.predecessor or '(none: first version)'}")
    typer.echo(f"parties: {', '.join(s.parties)}")
    typer.echo(f"must approve creation: {s.approval.create.describe()}")
    typer.echo(f"must approve updates: {s.approval.update.describe()}")
    typer.echo(f"services: {', '.join(x.name for x in s.services) or '(none)'}")
    if "simulation" in s.security.tolerate:
        typer.echo("note: tolerates SIMULATED evidence (no hardware protection)")
    from seml.policy import describe_requirements

    for service in s.services:
        typer.echo(f"service {service.name} accepts evidence:")
        for line in describe_requirements(service, s.security):
            typer.echo(f"  - {line}")


def sign(
    file: SessionFile,
    key: Annotated[
        Path,
        key_option("The party's private key (NAME.key)"),
    ],
    party: Annotated[
        str | None,
        typer.Option("--party", help="Party name (default: the party whose key matches)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Signature file (default: FILE-stem.PARTY.sig)."),
    ] = None,
) -> None:
    """Write a detached signature over the session's canonical hash."""
    from seml.policy import load_private_key, parse_public_key, sign_session

    s = _load_session(file)
    k = load_private_key(key)
    if party is None:
        party = next((p for p, pk in s.parties.items() if parse_public_key(pk) == k.public), None)
        if party is None:
            raise UsageError(f"key {key} ({k.fingerprint}) is not a party of session {s.name}")
    signature = sign_session(s, party, k)
    out = output or file.with_name(f"{file.stem}.{party}.sig")
    write_atomic(out, signature.to_json())
    typer.echo(f"{party} signed {signature.hash}: {out}")


def _pairs(items: list[str] | None, option: str) -> list[tuple[str, Path]]:
    out = []
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"{option} wants NAME=PATH, got {item!r}")
        out.append((name, Path(path)))
    return out


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {what} from {path}: {e.strerror}") from e


SecretFile = Annotated[
    list[str] | None,
    typer.Option(
        "--secret-file",
        help="NAME=PATH: the value of provided secret NAME, read from PATH, sealed to the "
        "service and signed with --provider-key (repeatable).",
    ),
]
ProviderKey = Annotated[
    Path | None,
    typer.Option("--provider-key", help="Private key of the party providing --secret-file values."),
]


def submit(
    file: SessionFile,
    signature: Annotated[
        list[Path] | None,
        typer.Option("--signature", "-s", help="Detached signature file (repeatable)."),
    ] = None,
    secret_file: SecretFile = None,
    provider_key: ProviderKey = None,
    sealed: Annotated[
        list[str] | None,
        typer.Option(
            "--sealed",
            help="NAME=PATH: a provided secret already sealed by its party with "
            "`seml session seal-secret` (repeatable).",
        ),
    ] = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
) -> None:
    """Send a session and its signatures to the service (creation or update)."""
    from seml.cas import client_from_env
    from seml.policy import SessionSignature, load_private_key

    s = _load_session(file)
    sigs = [SessionSignature.from_json(_read(p), source=str(p)) for p in signature or []]
    values = [(n, _read_bytes(p, f"secret {n}")) for n, p in _pairs(secret_file, "--secret-file")]
    if values and provider_key is None:
        raise UsageError("--secret-file needs --provider-key (the providing party signs values)")
    provided = {
        n: _read_bytes(p, f"sealed secret {n}").decode(errors="replace").strip()
        for n, p in _pairs(sealed, "--sealed")
    }
    with client_from_env(cas_url, cas_fingerprint) as client:
        if values and provider_key is not None:
            key = load_private_key(provider_key)
            provided.update({n: client.seal_provided(s, n, v, key) for n, v in values})
        result = client.submit_session(s, sigs, provided)
    typer.echo(f"accepted {result.name} version {result.version}: {result.hash}")


def seal_secret(
    file: SessionFile,
    name: Annotated[str, typer.Argument(help="The provided secret's name in the session.")],
    value_file: Annotated[
        Path,
        typer.Option("--value-file", help="File holding the value (never on the command line)."),
    ],
    key: Annotated[
        Path,
        key_option("The providing party's private key"),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the sealed value.")
    ],
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
) -> None:
    """Seal a provided secret to the service and sign it, for whoever submits the session."""
    from seml.cas import client_from_env
    from seml.policy import load_private_key

    s = _load_session(file)
    value = _read_bytes(value_file, f"secret {name}")
    with client_from_env(cas_url, cas_fingerprint) as client:
        blob = client.seal_provided(s, name, value, load_private_key(key))
    write_atomic(output, blob + "\n")
    typer.echo(f"sealed {name} for {s.name} to the service: {output}")


def _versions(
    name: str,
    hash_: str | None,
    key: Path | None,
    party: str | None,
    cas_url: str | None,
    cas_fingerprint: str | None,
) -> list[SessionVersion]:
    from seml.cas import client_from_env
    from seml.policy import load_private_key

    if key is None:
        raise UsageError(
            f"reading session {name} needs --key: the private key of one of its parties"
        )
    reader: tuple[str, PartyKey] = (party or key.stem, load_private_key(key))
    with client_from_env(cas_url, cas_fingerprint) as client:
        return client.history(name, hash_=hash_, party=reader)


def show(
    name: SessionName,
    hash_: ReadHash = None,
    key: ReadKey = None,
    party: ReadParty = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Print a session as accepted (the latest version, or the one with --hash)."""
    import yaml

    v = _versions(name, hash_, key, party, cas_url, cas_fingerprint)[-1]
    if as_json:
        typer.echo(json.dumps(v.to_json(), indent=2))
        return
    signers = ", ".join(v.signers)
    typer.echo(f"# {v.name} version {v.version} {v.hash} signed by {signers}")
    typer.echo(yaml.safe_dump(v.document.document(), sort_keys=False), nl=False)


def history(
    name: SessionName,
    hash_: ReadHash = None,
    key: ReadKey = None,
    party: ReadParty = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """List every accepted version of a session, oldest first."""
    versions = _versions(name, hash_, key, party, cas_url, cas_fingerprint)
    if as_json:
        typer.echo(json.dumps([x.to_json(document=False) for x in versions], indent=2))
        return
    for x in versions:
        when = dt.datetime.fromtimestamp(x.accepted, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        typer.echo(f"{x.version:4d} {when} {x.hash} signed by {', '.join(x.signers)}")
