"""`seml keys new NAME`: a party's Ed25519 identity (NAME.key 0600, NAME.pub)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml.errors import UsageError

if TYPE_CHECKING:
    from seml.policy import PartyKey

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
        Path,
        typer.Option("--dir", help="Directory for the key files (created 0700 if missing)."),
    ] = Path(),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
) -> None:
    """Create an Ed25519 key pair for a party; print its public key and fingerprint."""
    from seml.policy import public_key_text

    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"key name {name!r} must be a plain file name")
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    if not force and (private.exists() or public.exists()):
        raise UsageError(f"{private} or {public} exists (use --force to overwrite)")
    key = new_key(directory, name)
    typer.echo(f"private key: {private} (keep it secret)")
    typer.echo(f"public key:  {public_key_text(key.public)}")
    typer.echo(f"fingerprint: {key.fingerprint}")


def new_key(directory: Path, name: str) -> PartyKey:
    """Write DIRECTORY/NAME.key (0600) and NAME.pub, creating DIRECTORY (0700) if missing."""
    from seml._fs import write_atomic
    from seml.errors import StorageError
    from seml.policy import new_key_pair, public_key_text, write_private_key

    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create {directory}: {e.strerror or e}") from e
    key = new_key_pair()
    write_private_key(directory / f"{name}.key", key.pem())
    write_atomic(directory / f"{name}.pub", public_key_text(key.public) + "\n")
    return key
