"""`seml keys new NAME`: a party's Ed25519 identity (NAME.key 0600, NAME.pub)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seml.errors import UsageError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    keys = typer.Typer(
        help="Party identities (Ed25519 keys that sign sessions).", no_args_is_help=True
    )
    keys.command("new")(new)
    app.add_typer(keys, name="keys")


def new(
    name: Annotated[
        str, typer.Argument(help="Key name; writes NAME.key (private, 0600) and NAME.pub.")
    ],
    directory: Annotated[
        Path, typer.Option("--dir", help="Directory to write the key files to.")
    ] = Path(),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
) -> None:
    """Create an Ed25519 key pair for a party; print its public key and fingerprint."""
    from seml._fs import write_atomic
    from seml.policy import new_key_pair, public_key_text, write_private_key

    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"key name {name!r} must be a plain file name")
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    if not force and (private.exists() or public.exists()):
        raise UsageError(f"{private} or {public} exists (use --force to overwrite)")
    key = new_key_pair()
    write_private_key(private, key.pem())
    write_atomic(public, public_key_text(key.public) + "\n")
    typer.echo(f"private key: {private} (keep it secret)")
    typer.echo(f"public key:  {public_key_text(key.public)}")
    typer.echo(f"fingerprint: {key.fingerprint}")
