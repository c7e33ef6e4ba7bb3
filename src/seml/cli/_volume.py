"""`seml volume`: create, inspect, verify, seal and unseal protected volumes."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml.errors import UsageError

if TYPE_CHECKING:
    from seml.volume import Volume

__all__ = ["register"]

_KEY_HELP = "File holding the 32-byte volume key (raw, hex or base64); never pass keys in argv."
KeyFile = Annotated[Path, typer.Option("--key-file", help=_KEY_HELP, dir_okay=False)]
OptionalKeyFile = Annotated[Path | None, typer.Option("--key-file", help=_KEY_HELP, dir_okay=False)]
Name = Annotated[str, typer.Option("--name", help="The volume's name (as the session names it).")]
OptionalName = Annotated[
    str | None, typer.Option("--name", help="The volume's name (required with --key-file).")
]
ExpectedVersion = Annotated[
    int | None,
    typer.Option(
        "--expected-version",
        help="Refuse the volume if older than this version (rollback protection).",
    ),
]
VolumeDir = Annotated[Path, typer.Argument(help="The protected volume's directory.")]


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="volume",
        help="Protected volumes: encrypted directories with an authenticated, versioned manifest.",
        no_args_is_help=True,
    )
    group.command("keygen")(keygen)
    group.command("create")(create)
    group.command("inspect")(inspect)
    group.command("verify")(verify)
    group.command("seal")(seal)
    group.command("unseal")(unseal)
    group.command("mount")(mount)
    app.add_typer(group)


def keygen(
    key_file: Annotated[Path, typer.Argument(help="Where to write a new random key (0600).")],
) -> None:
    """Write a new random 32-byte volume key (hex) to KEY_FILE; refuse to overwrite."""
    from seml._fs import write_atomic

    try:
        write_atomic(key_file, os.urandom(32).hex() + "\n", mode=0o600, overwrite=False)
    except FileExistsError:
        raise UsageError(f"{key_file} exists; refusing to overwrite a key") from None
    typer.echo(f"wrote a new volume key to {key_file} (mode 0600)")


def create(directory: VolumeDir, key_file: KeyFile, name: Name) -> None:
    """Create an empty protected volume (version 0) in DIRECTORY."""
    from seml.volume import Volume

    volume = Volume.create(directory, _read_key(key_file), name=name)
    typer.echo(f"created volume {volume.name!r} at {directory} (version {volume.version})")


def inspect(
    directory: VolumeDir,
    key_file: OptionalKeyFile = None,
    name: OptionalName = None,
    expected_version: ExpectedVersion = None,
) -> None:
    """Show a volume as JSON; with --key-file and --name, also its files, verified.

    Without a key only the clear header (version unauthenticated) and object sizes are shown.
    """
    from seml.volume import inspect as inspect_volume

    info = inspect_volume(directory).to_json_dict()
    if key_file is None:
        typer.echo(json.dumps(info, indent=2))
        return
    volume = _open(directory, key_file, name, expected_version)
    info["version"] = volume.version
    info["version_authenticated"] = True
    info["name"] = volume.name
    info["files"] = [
        {"path": f.path, "size": f.size, "sha256": f.sha256, "mode": oct(f.mode)}
        for f in volume.files()
    ]
    try:
        with _status(f"verifying volume {volume.name!r}"):
            volume.verify()
    except Exception as e:
        info["verified"] = False
        info["error"] = str(e)
        typer.echo(json.dumps(info, indent=2))
        raise
    info["verified"] = True
    typer.echo(json.dumps(info, indent=2))


def verify(
    directory: VolumeDir, key_file: KeyFile, name: Name, expected_version: ExpectedVersion = None
) -> None:
    """Verify every file of the volume against its authenticated manifest."""
    volume = _open(directory, key_file, name, expected_version)
    with _status(f"verifying volume {volume.name!r}"):
        volume.verify()
    files = volume.files()
    typer.echo(
        f"volume {volume.name!r} version {volume.version}: {len(files)} files, "
        f"{sum(f.size for f in files)} bytes, all verified"
    )


def seal(
    directory: VolumeDir,
    source: Annotated[Path, typer.Argument(help="Directory whose files become the new version.")],
    key_file: KeyFile,
    name: Name,
    expected_version: ExpectedVersion = None,
) -> None:
    """Replace the volume's contents with SOURCE's files as the next version (crash-safe)."""
    if not source.is_dir():
        raise UsageError(f"{source} is not a directory")
    volume = _open(directory, key_file, name, expected_version)
    with _status(f"sealing {source} into volume {volume.name!r}"):
        version = volume.seal(source)
    typer.echo(f"sealed volume {volume.name!r} as version {version}")


def unseal(
    directory: VolumeDir,
    target: Annotated[Path, typer.Argument(help="New or empty directory to decrypt into (0700).")],
    key_file: KeyFile,
    name: Name,
    expected_version: ExpectedVersion = None,
) -> None:
    """Verify and decrypt every file of the volume into TARGET (made 0700, like every folder
    in it; nothing is written through a symbolic link)."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} must be a new or empty directory")
    volume = _open(directory, key_file, name, expected_version)
    with _status(f"unsealing volume {volume.name!r}"):
        volume.unseal(target)
    typer.echo(f"unsealed volume {volume.name!r} version {volume.version} into {target}")


def mount(
    directory: VolumeDir,
    mountpoint: Annotated[Path, typer.Argument(help="An empty directory to mount the volume on.")],
    key_file: KeyFile,
    name: Name,
    expected_version: ExpectedVersion = None,
    discard: Annotated[
        bool,
        typer.Option("--discard", help="On unmount, drop what was written instead of sealing."),
    ] = False,
) -> None:
    """Mount the volume with FUSE (decrypting on read) until unmounted, then seal it.

    Runs in the foreground: unmount with `fusermount3 -u MOUNTPOINT` or Ctrl-C.

    What was written is sealed as the next version (unless --discard).
    """
    from seml.volume._fuse import serve

    if not mountpoint.is_dir() or any(mountpoint.iterdir()):
        raise UsageError(f"{mountpoint} must be an existing empty directory")
    volume = _open(directory, key_file, name, expected_version)
    ready = f"volume {volume.name!r} v{volume.version} mounted at {mountpoint}"
    fs = serve(volume, mountpoint, on_ready=lambda: typer.echo(ready, err=True))
    try:
        if discard:
            typer.echo(f"unmounted; volume {volume.name!r} stays at version {volume.version}")
        else:
            with _status(f"sealing volume {volume.name!r}"):
                version = volume.seal_sources(fs.sources())
            typer.echo(f"unmounted; sealed volume {volume.name!r} as version {version}")
    finally:
        fs.close()


def _open(
    directory: Path, key_file: Path, name: str | None, expected_version: int | None
) -> Volume:
    from seml.volume import Volume

    if name is None:
        raise UsageError("--name is required with --key-file")
    return Volume.open(directory, _read_key(key_file), name=name, expected_version=expected_version)


def _read_key(path: Path) -> bytes:
    """32 raw bytes, or their hex or base64 text form."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read key file {path}: {e.strerror or e}") from e
    if len(data) == 32:
        return data
    text = data.strip()
    with contextlib.suppress(ValueError):
        key = bytes.fromhex(text.decode("ascii"))
        if len(key) == 32:
            return key
    with contextlib.suppress(binascii.Error, ValueError):
        key = base64.b64decode(text, validate=True)
        if len(key) == 32:
            return key
    raise UsageError(f"key file {path} does not hold a 32-byte key (raw, hex or base64)")


@contextlib.contextmanager
def _status(message: str) -> Iterator[None]:
    """A spinner on a terminal; nothing when output is piped."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield
