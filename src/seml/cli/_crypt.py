"""`seml crypt`: rclone-compatible encryption of trees and names, and password obscuring."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from seml.cli._cryptopts import (
    DirectoryNameEncryptionOpt,
    FilenameEncodingOpt,
    FilenameEncryptionOpt,
    RcloneConfigOpt,
    RemoteOpt,
    build_cipher,
)
from seml.errors import UsageError

__all__ = ["register"]

_SrcArg = Annotated[
    Path, typer.Argument(help="Source directory (or a single file).", show_default=False)
]
_DstArg = Annotated[
    Path, typer.Argument(help="Destination directory (created if missing).", show_default=False)
]
_QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print nothing on success and show no progress.")
]
_IgnoreTimesOpt = Annotated[
    bool,
    typer.Option(
        "--ignore-times",
        help="Process every file, even one whose destination has the same size and time.",
    ),
]
_NamesArg = Annotated[list[str], typer.Argument(help="Names or '/'-separated relative paths.")]
_DirOpt = Annotated[
    bool, typer.Option("--dir", help="Treat the names as directory paths, not file paths.")
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="crypt",
        help="rclone-compatible encryption (crypt remote format): trees, names, passwords.",
        no_args_is_help=True,
    )
    group.command("encrypt")(encrypt)
    group.command("decrypt")(decrypt)
    names = typer.Typer(
        name="names",
        help="Encode (encrypt) or decode (decrypt) single names as a crypt remote does.",
        no_args_is_help=True,
    )
    names.command("encode")(names_encode)
    names.command("decode")(names_decode)
    group.add_typer(names)
    group.command("obscure")(obscure_password)
    group.command("demo")(demo)
    app.add_typer(group)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


@contextmanager
def _progress(label: str, total: int, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """Rich progress (bytes, rate) on a terminal; nothing otherwise."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _run(
    action: str,
    src: Path,
    dst: Path,
    rclone_config: Path | None,
    remote: str | None,
    filename_encryption: str | None,
    filename_encoding: str | None,
    directory_name_encryption: bool | None,
    quiet: bool,
    ignore_times: bool,
) -> None:
    from seml.crypt import decrypt_tree, encrypt_tree
    from seml.crypt._tree import plan_decrypt, plan_encrypt

    cipher = build_cipher(
        rclone_config, remote, filename_encryption, filename_encoding, directory_name_encryption
    )
    plan = plan_encrypt(src, cipher) if action == "encrypt" else plan_decrypt(src, cipher)
    total = sum(item.size for item in plan)
    tree = encrypt_tree if action == "encrypt" else decrypt_tree
    with _progress(f"{action}ing", total, quiet) as progress:
        written = tree(src, dst, cipher, progress=progress, ignore_times=ignore_times)
    if not quiet:
        skipped = len(plan) - len(written)
        extra = f", {skipped} unchanged skipped" if skipped else ""
        typer.echo(
            f"{action}ed {len(written)} file(s), {_human(total)} read, from {src} into {dst}{extra}"
        )


def encrypt(
    src: _SrcArg,
    dst: _DstArg,
    rclone_config: RcloneConfigOpt = None,
    remote: RemoteOpt = None,
    filename_encryption: FilenameEncryptionOpt = None,
    filename_encoding: FilenameEncodingOpt = None,
    directory_name_encryption: DirectoryNameEncryptionOpt = None,
    ignore_times: _IgnoreTimesOpt = False,
    quiet: _QuietOpt = False,
) -> None:
    """Encrypt SRC into DST like `rclone copy SRC crypt:` over a local folder DST.

    Password: --rclone-config/--remote, or SEML_CRYPT_PASSWORD (+ SEML_CRYPT_PASSWORD2).
    """
    _run(
        "encrypt",
        src,
        dst,
        rclone_config,
        remote,
        filename_encryption,
        filename_encoding,
        directory_name_encryption,
        quiet,
        ignore_times,
    )


def decrypt(
    src: _SrcArg,
    dst: _DstArg,
    rclone_config: RcloneConfigOpt = None,
    remote: RemoteOpt = None,
    filename_encryption: FilenameEncryptionOpt = None,
    filename_encoding: FilenameEncodingOpt = None,
    directory_name_encryption: DirectoryNameEncryptionOpt = None,
    ignore_times: _IgnoreTimesOpt = False,
    quiet: _QuietOpt = False,
) -> None:
    """Decrypt SRC (a crypt remote's folder) into DST like `rclone copy crypt: DST`.

    Every file is authenticated completely before it appears under its name; the first file
    that fails stops the command with its name and the reason.
    """
    _run(
        "decrypt",
        src,
        dst,
        rclone_config,
        remote,
        filename_encryption,
        filename_encoding,
        directory_name_encryption,
        quiet,
        ignore_times,
    )


def names_encode(
    names: _NamesArg,
    rclone_config: RcloneConfigOpt = None,
    remote: RemoteOpt = None,
    filename_encryption: FilenameEncryptionOpt = None,
    filename_encoding: FilenameEncodingOpt = None,
    directory_name_encryption: DirectoryNameEncryptionOpt = None,
    directory: _DirOpt = False,
) -> None:
    """Print the encrypted form of each name, one per line (like `rclone backend encode`)."""
    cipher = build_cipher(
        rclone_config, remote, filename_encryption, filename_encoding, directory_name_encryption
    )
    encode = cipher.encrypt_dir_name if directory else cipher.encrypt_name
    for name in names:
        typer.echo(encode(name))


def names_decode(
    names: _NamesArg,
    rclone_config: RcloneConfigOpt = None,
    remote: RemoteOpt = None,
    filename_encryption: FilenameEncryptionOpt = None,
    filename_encoding: FilenameEncodingOpt = None,
    directory_name_encryption: DirectoryNameEncryptionOpt = None,
    directory: _DirOpt = False,
) -> None:
    """Print the decrypted form of each name, one per line (like `rclone backend decode`).

    Fails (exit 3) at the first name that does not decode, naming it.
    """
    cipher = build_cipher(
        rclone_config, remote, filename_encryption, filename_encoding, directory_name_encryption
    )
    decode = cipher.decrypt_dir_name if directory else cipher.decrypt_name
    decoded = [decode(name) for name in names]
    for name in decoded:
        typer.echo(name)


def obscure_password() -> None:
    """Obscure a password for rclone.conf, like `rclone obscure -`, reading it from stdin.

    On a terminal the password is prompted for without echo; it is never taken from argv.
    """
    from seml.crypt import obscure

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password to obscure: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("no password given on stdin")
    typer.echo(obscure(password))


def demo(
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="Keep the demo's folders here (default: a temporary folder, removed after).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Encrypt a generated sample tree, show it, decrypt it back, verify, and tamper with it.

    Uses a random password; if rclone is installed, rclone itself checks the encrypted tree.
    """
    import secrets
    import tempfile

    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="seml-crypt-demo-") as tmp:
            _demo(Path(tmp), secrets.token_urlsafe(24))
    else:
        if workdir.exists() and any(workdir.iterdir()):
            raise UsageError(f"--workdir {workdir} must be empty or absent")
        workdir.mkdir(parents=True, exist_ok=True)
        _demo(workdir, secrets.token_urlsafe(24))


def _demo(root: Path, password: str) -> None:
    import os
    import shutil
    import subprocess

    from seml.crypt import Cipher, decrypt_tree, encrypt_tree, obscure
    from seml.crypt._sample import write_sample_tree
    from seml.errors import IntegrityError

    cipher = Cipher(password)
    plain, store, restored = root / "plain", root / "encrypted", root / "restored"
    files = write_sample_tree(plain)
    typer.echo(f"1. sample tree: {len(files)} files in {plain} (random password, not shown)")
    encrypt_tree(plain, store, cipher)
    typer.echo(f"2. encrypted into {store} (rclone crypt format, standard names):")
    for rel in sorted(files):
        enc = cipher.encrypt_name(rel)
        size = (store / enc).stat().st_size
        typer.echo(f"   {rel}  ->  {enc}  ({len(files[rel])} -> {size} bytes)")
    decrypt_tree(store, restored, cipher)
    same = all((restored / rel).read_bytes() == data for rel, data in files.items())
    if not same:
        raise IntegrityError("demo: the decrypted tree differs from the original")
    typer.echo(f"3. decrypted into {restored}: all {len(files)} files identical to the originals")
    if shutil.which("rclone"):
        conf = root / "rclone.conf"
        conf.write_text(
            f"[demo]\ntype = crypt\nremote = {store}\npassword = {obscure(password)}\n",
            encoding="utf-8",
        )
        conf.chmod(0o600)
        done = subprocess.run(
            ["rclone", "cryptcheck", str(plain), "demo:"],
            env={**os.environ, "RCLONE_CONFIG": str(conf)},
            capture_output=True,
            text=True,
            check=False,
        )
        verdict = "passed" if done.returncode == 0 else f"FAILED: {done.stderr.strip()}"
        typer.echo(f"4. real rclone cryptcheck of the encrypted tree: {verdict}")
        if done.returncode != 0:
            raise IntegrityError("demo: rclone cryptcheck failed")
    else:
        typer.echo("4. rclone not installed: skipped the rclone cross-check")
    victim = store / cipher.encrypt_name("data/train.csv")
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    tampered = root / "tampered"
    try:
        decrypt_tree(store, tampered, cipher)
    except IntegrityError as e:
        left = (tampered / "data" / "train.csv").exists()
        typer.echo(f"5. flipped one bit in {victim.name}; decrypt refused it:\n   {e}")
        typer.echo(f"   plaintext left under its name: {'YES (bug)' if left else 'no'}")
    else:
        raise IntegrityError("demo: a tampered file decrypted without error")
