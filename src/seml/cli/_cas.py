"""`seml cas init/serve/info/audit`: run and inspect the attestation service."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from seml.errors import UsageError

__all__ = ["CasFingerprint", "CasUrl", "key_option", "register"]

CasUrl = Annotated[
    str | None,
    typer.Option(
        "--cas",
        envvar="SEML_CAS",
        show_envvar=False,
        help="Attestation service URL, https://HOST:PORT; env SEML_CAS, else the profile's.",
    ),
]
CasFingerprint = Annotated[
    str | None,
    typer.Option(
        "--cas-fingerprint",
        envvar="SEML_CAS_FINGERPRINT",
        show_envvar=False,
        help="Pinned sha256:... fingerprint of the service certificate; env "
        "SEML_CAS_FINGERPRINT, else the profile's.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def key_option(help: str) -> Any:
    """`--key`: a party's private key; else $SEML_SIGNING_KEY, else the profile's signing key."""
    return typer.Option(
        "--key", envvar="SEML_SIGNING_KEY", show_envvar=False, help=f"{help}; else the profile's."
    )


def register(app: typer.Typer) -> None:
    cas = typer.Typer(
        help="The attestation service (CAS): sessions, evidence, secret release.",
        no_args_is_help=True,
    )
    cas.command("init")(init)
    cas.command("serve")(serve)
    cas.command("info")(info)
    cas.command("audit")(audit)
    app.add_typer(cas, name="cas")


def init(
    directory: Annotated[Path, typer.Argument(help="State directory to create (keys, database).")],
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Host name or IP in the certificate (repeatable)."),
    ] = None,
) -> None:
    """Create a service: master key, Ed25519 identity, self-signed TLS certificate."""
    from seml.cas import init_state_dir

    hosts = host or ["localhost", "127.0.0.1", "::1"]
    identity = init_state_dir(directory, hosts=hosts, now=dt.datetime.now(dt.UTC))
    typer.echo(f"initialised {directory}")
    typer.echo(f"fingerprint: {identity.fingerprint}")


def serve(
    directory: Annotated[
        Path,
        typer.Argument(
            help="State directory made by `seml cas init` (default: $SEML_CAS_STATE, else the "
            "operator profile's).",
            envvar="SEML_CAS_STATE",
            show_envvar=False,
        ),
    ],
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            envvar="SEML_CAS_LISTEN",
            show_envvar=False,
            help="HOST:PORT to listen on (port 0: any free port; 0.0.0.0 or [::]: every "
            "interface). Default: $SEML_CAS_LISTEN, else the profile's, else 127.0.0.1:8443.",
        ),
    ] = "127.0.0.1:8443",
    advertise: Annotated[
        str | None,
        typer.Option(
            "--advertise",
            envvar="SEML_CAS_ADVERTISE",
            show_envvar=False,
            help="The URL the parties use (https://HOST:PORT), printed first; default: the "
            "listen address, or each interface's address when listening on all of them.",
        ),
    ] = None,
    keys: Annotated[
        Path | None,
        typer.Option(
            "--keys",
            help="Folder with master.key and identity.key, e.g. a mounted Secret "
            "(default: DIRECTORY).",
        ),
    ] = None,
    tls: Annotated[
        Path | None,
        typer.Option(
            "--tls",
            help="Folder with tls.crt and tls.key, e.g. a mounted kubernetes.io/tls Secret "
            "(default: DIRECTORY).",
        ),
    ] = None,
) -> None:
    """Serve over HTTPS until interrupted (prints the URLs clients can use and the pin).

    GET /healthz answers 200 while the service can serve (for probes); it reveals nothing else.
    $SEML_CAS_CONNECTION_DEADLINE (seconds) lowers the time a connection may take to shake
    hands (10 s), to send a request's head (10 s) and to close after a refusal (5 s).
    """
    from seml.cas import serve as run
    from seml.cas._limits import DEADLINE_ENV, ConnectionDeadlines

    deadlines = ConnectionDeadlines.capped(os.environ.get(DEADLINE_ENV))
    run(directory, listen, keys=keys, tls=tls, advertise=advertise, deadlines=deadlines)


def info(
    directory: Annotated[
        Path | None, typer.Argument(help="A local state directory to describe.")
    ] = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Show the certificate fingerprint to pin and the service's public keys."""
    import base64

    from seml.cas import CasClient, load_identity

    if directory is not None:
        ident = load_identity(directory)
        data: dict[str, Any] = {
            "directory": str(directory),
            "fingerprint": ident.fingerprint,
            "identity_key": base64.b64encode(ident.identity_public).decode(),
            "box_key": base64.b64encode(bytes(ident.box_key.public_key)).decode(),
        }
    elif cas_url and cas_fingerprint:
        with CasClient(cas_url, cas_fingerprint) as client:
            data = {"url": cas_url, **client.info().model_dump()}
    else:
        raise UsageError("pass a state DIR, or --cas URL --cas-fingerprint sha256:...")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        for k, v in data.items():
            typer.echo(f"{k}: {v}")


def audit(
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="Check the hash chain and every signature; exit non-zero if broken."
        ),
    ] = False,
    session: Annotated[
        list[str] | None,
        typer.Option(
            "--session",
            help="Show the entries of this session (repeatable); needs --key of one of its "
            "parties.",
        ),
    ] = None,
    key: Annotated[
        Path | None,
        key_option("A party's private key: signs the service's challenge"),
    ] = None,
    party: Annotated[
        str | None, typer.Option("--party", help="Party name for --key (default: its file stem).")
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Read a local state directory (the operator: every entry in full)."
        ),
    ] = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    as_json: AsJson = False,
) -> None:
    """Print the audit log (who got what and when); with --verify, check it first.

    Over the network a party sees its sessions' entries (--session NAME --key FILE) and, like
    anyone, the rest of the chain without content; the operator reads it all with --dir.
    """
    from seml.cas import client_from_env, load_identity, verify_audit_chain

    if directory is not None:
        if session or key is not None:
            raise UsageError("--dir reads every entry: it takes no --session or --key")
        from seml.cas._state import StateStore

        ident = load_identity(directory)
        store = StateStore(ident.database, ident.sign)
        try:
            entries = store.audit(0, 1 << 62)
        finally:
            store.close()
        if verify:
            verify_audit_chain(entries, ident.identity_public)
    else:
        if bool(session) != (key is not None):
            raise UsageError(
                "--session and --key go together: a session's entries are shown to its parties"
            )
        reader = None
        if key is not None:
            from seml.policy import load_private_key

            reader = (party or key.stem, load_private_key(key))
        with client_from_env(cas_url, cas_fingerprint) as client:
            entries = client.audit(verify=verify, party=reader, sessions=session or ())
    shown = [e for e in entries if e.revealed]
    if as_json:
        typer.echo(json.dumps([e.model_dump() for e in entries], indent=2))
    else:
        for e in shown:
            if e.time is None or e.details is None:  # pragma: no cover - shown means revealed
                continue
            when = dt.datetime.fromtimestamp(e.time, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            details = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(e.details.items()))
            typer.echo(f"{e.seq:6d} {when} {e.event or '':16s} {details}")
    if len(shown) < len(entries):
        typer.echo(
            f"{len(entries) - len(shown)} of {len(entries)} entries are not shown: they concern "
            "sessions you did not name with --session (each session's parties read its "
            "entries; the operator reads all with --dir)",
            err=True,
        )
    if verify:
        typer.echo(
            f"audit log verified: {len(entries)} entries, chain and signatures intact"
            + (f", content of {len(shown)} checked" if shown else ""),
            err=True,
        )
