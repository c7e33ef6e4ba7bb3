"""`seml console`: this party's web console on a loopback port."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seml.cli._cas import CasFingerprint, CasUrl

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("console")(console)


def console(
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            help="Loopback HOST:PORT to serve on (port 0: any free port).",
        ),
    ] = "127.0.0.1:0",
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            envvar="SEML_SIGNING_KEY",
            show_envvar=False,
            help="Your party's private key (NAME.key); default: $SEML_SIGNING_KEY, else the "
            "profile's signing key.",
        ),
    ] = None,
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
    cas_identity: Annotated[
        str | None,
        typer.Option(
            "--cas-identity",
            help="The service's identity key you pinned (base64, `seml cas info`'s "
            "identity_key, or a file holding it): receipts are checked against it. Default: the "
            "key the service states over its pinned TLS connection.",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            envvar="SEML_STATE_DIR",
            show_envvar=False,
            help="This machine's sync state (its sync-versions.json records the manifests you "
            "pushed; receipts' inputs are checked against it); default: $SEML_STATE_DIR, else "
            "the profile's.",
        ),
    ] = None,
) -> None:
    """Serve this party's web console on this machine and print its URL (opens nothing).

    The URL carries an access token new at each start: whoever has it acts as your party, so
    keep it to yourself. Pages: your sessions and open proposals, the review of each with
    approve and reject (signed here, with your key), the receipts of your runs checked in place
    with model release, the audit entries about your sessions.
    """
    from seml.cas import client_from_env
    from seml.cli._machine import selected
    from seml.console import PartyDesk, bind_loopback, serve_console
    from seml.errors import UsageError
    from seml.policy import load_private_key

    if key is None:
        raise UsageError(
            "the console needs your party's signing key: --key NAME.key, SEML_SIGNING_KEY, or "
            "a party profile (seml init --role party)"
        )
    from seml.cli._receipt import _identity_key

    k = load_private_key(key)
    identity = _identity_key(cas_identity) if cas_identity is not None else None
    profile = selected().profile
    label = profile.party if profile is not None and profile.party else k.fingerprint[:19]
    sock, url_host = bind_loopback(listen)
    try:
        with client_from_env(cas_url, cas_fingerprint) as client:
            client.info()  # reach the service (and check its pin) before printing a URL
            desk = PartyDesk(client, k, label, identity=identity, state_dir=state_dir)
            serve_console(desk, sock, url_host, announce=typer.echo)
    finally:
        sock.close()
