"""`seml push`, `seml pull`, `seml ls`: encrypted sync with object storage."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from seml.cli._cryptopts import (
    DirectoryNameEncryptionOpt,
    FilenameEncodingOpt,
    FilenameEncryptionOpt,
    RcloneConfigOpt,
    RemoteOpt,
    build_cipher,
)

if TYPE_CHECKING:
    from seml.crypt import Cipher
    from seml.store import ObjectStore

__all__ = ["register"]

S3EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--s3-endpoint",
        envvar="SEML_S3_ENDPOINT",
        help="S3 endpoint URL for s3:// remotes (default: $SEML_S3_ENDPOINT, else the "
        "profile's, else AWS). Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
        "or AWS_PROFILE.",
        show_default=False,
        show_envvar=False,
    ),
]
S3TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--s3-timeout",
        min=0.1,
        help="Seconds one S3 request may take in all, retries included, before the command "
        "fails naming the endpoint (default: $SEML_S3_TIMEOUT, else 60).",
        show_default=False,
    ),
]
TransfersOpt = Annotated[
    int,
    typer.Option("--transfers", min=1, max=64, help="Files transferred in parallel."),
]
StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="SEML_STATE_DIR",
        help="Where the last seen manifest versions and push journals live "
        "(default: $SEML_STATE_DIR, else the profile's, else ~/.local/state/seml).",
        file_okay=False,
        show_default=False,
        show_envvar=False,
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print nothing but warnings and errors.")
]


def _cipher(
    rclone_config: Path | None,
    remote: str | None,
    filename_encryption: Any,
    filename_encoding: Any,
    directory_name_encryption: bool | None,
) -> Cipher:
    return build_cipher(
        rclone_config,
        remote,
        filename_encryption.value if filename_encryption is not None else None,
        filename_encoding.value if filename_encoding is not None else None,
        directory_name_encryption,
    )


def _store(url: str, s3_endpoint: str | None, s3_timeout: float | None) -> ObjectStore:
    from seml.store import open_store, s3_config_from_env

    if not url.startswith("s3://"):
        return open_store(url)
    return open_store(url, s3=s3_config_from_env(s3_endpoint, timeout=s3_timeout))


class _PlainProgress:
    """One line per file and a summary; what a log or a pipe wants."""

    def __init__(self, quiet: bool) -> None:
        self._quiet = quiet
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._action = ""
        self._total = 0
        self._done = 0

    def _print(self, msg: str) -> None:
        with self._lock:
            print(msg, file=sys.stderr, flush=True)

    def start(self, action: str, files: int, total_bytes: int) -> None:
        self._action, self._total, self._start = action, total_bytes, time.monotonic()
        if not self._quiet:
            self._print(f"{action}: {files} files, {_human(total_bytes)}")

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self._done += nbytes

    def file_done(self, path: str, status: str) -> None:
        if not self._quiet:
            self._print(f"{status}: {path}")

    def warn(self, message: str) -> None:
        self._print(f"seml: warning: {message}")

    def finish(self) -> None:
        if not self._quiet:
            secs = max(time.monotonic() - self._start, 1e-6)
            self._print(
                f"{self._action}: {_human(self._done)} in {secs:.1f}s "
                f"({_human(int(self._done / secs))}/s)"
            )


class _RichProgress(_PlainProgress):
    """A Rich bar with bytes, rate and ETA, for a terminal."""

    def __init__(self, console: Any = None) -> None:
        super().__init__(quiet=False)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._console = console if console is not None else Console(stderr=True)
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
        )
        self._task: Any = None

    def _print(self, msg: str) -> None:
        self._console.print(msg, markup=False, highlight=False)

    def start(self, action: str, files: int, total_bytes: int) -> None:
        self._action, self._start = action, time.monotonic()
        self._bar.start()
        self._task = self._bar.add_task(f"{action} {files} files", total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, nbytes)
        super().advance(nbytes)

    def file_done(self, path: str, status: str) -> None:
        pass

    def finish(self) -> None:
        if self._task is not None:
            self._bar.stop()
            self._task = None
        super().finish()


def _progress(quiet: bool) -> _PlainProgress:
    if not quiet and sys.stderr.isatty():
        return _RichProgress()
    return _PlainProgress(quiet)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def register(app: typer.Typer) -> None:
    @app.command("push")
    def push_cmd(
        src: Annotated[Path, typer.Argument(help="Local file or folder to push.")],
        remote: Annotated[
            str, typer.Argument(help="file:///path, s3://bucket/prefix, or a local path.")
        ],
        s3_endpoint: S3EndpointOpt = None,
        s3_timeout: S3TimeoutOpt = None,
        transfers: TransfersOpt = 4,
        state_dir: StateDirOpt = None,
        quiet: QuietOpt = False,
        rclone_config: RcloneConfigOpt = None,
        crypt_remote: RemoteOpt = None,
        filename_encryption: FilenameEncryptionOpt = None,
        filename_encoding: FilenameEncodingOpt = None,
        directory_name_encryption: DirectoryNameEncryptionOpt = None,
    ) -> None:
        """Encrypt SRC into REMOTE as an rclone crypt remote would, plus a signed manifest.

        REMOTE ends up holding exactly SRC: unchanged files are not uploaded again (an
        interrupted push resumes), files gone from SRC are deleted. rclone sees one extra
        file, .seml-manifest. The version REMOTE held stays whole until the new one is.
        """
        from seml.sync import push

        store = _store(remote, s3_endpoint, s3_timeout)
        cipher = _cipher(
            rclone_config,
            crypt_remote,
            filename_encryption,
            filename_encoding,
            directory_name_encryption,
        )
        r = push(
            src,
            store,
            cipher,
            transfers=transfers,
            progress=_progress(quiet),
            state_dir=state_dir,
        )
        from seml._claims import add_claims, claims_file

        # Under `seml run`: what was pushed goes into the completion report (a receipt's model).
        add_claims(
            claims_file(),
            pushed={
                "remote": remote,
                "manifest_version": r.version,
                "manifest_digest": r.digest,
                "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in r.files],
            },
        )
        if not quiet:
            typer.echo(
                f"pushed {src} to {store.url}: {len(r.uploaded)} uploaded, "
                f"{len(r.skipped)} unchanged, {len(r.deleted)} deleted; "
                f"manifest version {r.version}"
            )

    @app.command("pull")
    def pull_cmd(
        remote: Annotated[
            str, typer.Argument(help="file:///path, s3://bucket/prefix, or a local path.")
        ],
        dst: Annotated[
            Path, typer.Argument(help="Local folder to pull into: new or empty (made 0700).")
        ],
        s3_endpoint: S3EndpointOpt = None,
        s3_timeout: S3TimeoutOpt = None,
        transfers: TransfersOpt = 4,
        min_version: Annotated[
            int | None,
            typer.Option(
                "--min-version",
                min=1,
                help="Refuse a manifest older than this version.",
                show_default=False,
            ),
        ] = None,
        no_manifest: Annotated[
            bool,
            typer.Option(
                "--no-manifest",
                help="Pull a tree rclone wrote, without a manifest: chunks are authenticated "
                "but truncation, swaps, deletions and rollbacks are NOT detected.",
            ),
        ] = False,
        mirror: Annotated[
            bool,
            typer.Option(
                "--mirror",
                help="Make a non-empty DST exactly the remote, like rclone sync: local files "
                "are overwritten and those the remote does not have are deleted (after "
                "everything was verified).",
            ),
        ] = False,
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run", help="Verify the manifest and show what would change; write nothing."
            ),
        ] = False,
        pushed_to: Annotated[
            str | None,
            typer.Option(
                "--pushed-to",
                help="Accept a tree whose manifest says it was pushed to this URL (a tree you "
                "moved or copied yourself).",
                show_default=False,
            ),
        ] = None,
        state_dir: StateDirOpt = None,
        quiet: QuietOpt = False,
        rclone_config: RcloneConfigOpt = None,
        crypt_remote: RemoteOpt = None,
        filename_encryption: FilenameEncryptionOpt = None,
        filename_encoding: FilenameEncodingOpt = None,
        directory_name_encryption: DirectoryNameEncryptionOpt = None,
    ) -> None:
        """Fetch, decrypt and verify REMOTE into the folder DST.

        Every file is checked against the remote's manifest (names, sizes, SHA-256, version,
        the remote it was pushed to) before any is written under its final name; anything else
        is refused. DST must be new or empty unless --mirror; nothing is ever written through
        a symbolic link, and DST and its folders are 0700.
        """
        from seml.sync import pull

        store = _store(remote, s3_endpoint, s3_timeout)
        cipher = _cipher(
            rclone_config,
            crypt_remote,
            filename_encryption,
            filename_encoding,
            directory_name_encryption,
        )
        import os

        from seml._claims import RELEASED_VARIABLE
        from seml.errors import IntegrityError

        # A model service gated by a release rule is told, by the attestation service, which
        # manifest its owners approved: anything else in storage is refused.
        released = os.environ.get(RELEASED_VARIABLE) or None
        try:
            r = pull(
                store,
                dst,
                cipher,
                transfers=transfers,
                min_version=min_version,
                state_dir=state_dir,
                no_manifest=no_manifest,
                mirror=mirror,
                dry_run=dry_run,
                pushed_to=pushed_to,
                progress=_progress(quiet or dry_run),
                expect_digest=released,
            )
        except IntegrityError as e:
            if released is None or "is not the expected manifest" not in str(e):
                raise
            raise IntegrityError(
                f"{e}: the model in storage is not the one its owners approved"
            ) from None
        how = f"verified against manifest version {r.version}" if r.verified else "UNVERIFIED"
        if dry_run:
            replaced = set(r.replaced)
            for path in r.files:
                typer.echo(f"{'replace' if path in replaced else 'write'}: {path}")
            for path in r.deleted:
                typer.echo(f"delete: {path}")
            typer.echo(
                f"dry run, nothing written: would write {len(r.files)} files "
                f"({_human(r.bytes)}; {len(r.replaced)} replacing local files) and delete "
                f"{len(r.deleted)} local entries in {dst}; manifest {how.split(' ', 2)[-1]}"
                if r.verified
                else f"dry run, nothing written: would write {len(r.files)} UNVERIFIED files "
                f"and delete {len(r.deleted)} local entries in {dst}"
            )
        elif not quiet:
            extra = f", {len(r.deleted)} local entries deleted" if r.deleted else ""
            typer.echo(f"pulled {len(r.files)} files ({_human(r.bytes)}) into {dst}, {how}{extra}")

    @app.command("ls")
    def ls_cmd(
        remote: Annotated[
            str, typer.Argument(help="file:///path, s3://bucket/prefix, or a local path.")
        ],
        s3_endpoint: S3EndpointOpt = None,
        s3_timeout: S3TimeoutOpt = None,
        rclone_config: RcloneConfigOpt = None,
        crypt_remote: RemoteOpt = None,
        filename_encryption: FilenameEncryptionOpt = None,
        filename_encoding: FilenameEncodingOpt = None,
        directory_name_encryption: DirectoryNameEncryptionOpt = None,
    ) -> None:
        """List the decrypted names and sizes in REMOTE (like `rclone ls` on a crypt remote).

        A file marked '!' is not what the manifest lists (added, missing or resized behind its
        back). Exits 6 when REMOTE does not exist, 3 when its names do not decrypt with this key.
        """
        from seml.sync import ls

        store = _store(remote, s3_endpoint, s3_timeout)
        cipher = _cipher(
            rclone_config,
            crypt_remote,
            filename_encryption,
            filename_encoding,
            directory_name_encryption,
        )
        listing = ls(store, cipher)
        for e in listing.entries:
            mark = "!" if e.in_manifest is False else " "
            typer.echo(f"{e.size:>12} {mark} {e.path}")
        if listing.manifest_version is not None:
            typer.echo(f"(manifest version {listing.manifest_version})", err=True)
            if listing.remote != store.url:
                typer.echo(
                    f"seml: warning: the manifest says this tree was pushed to {listing.remote}",
                    err=True,
                )
        elif listing.entries:
            typer.echo("(no manifest: written by rclone or another tool)", err=True)
        else:
            typer.echo("(empty)", err=True)
        if listing.push is not None:
            typer.echo(
                f"seml: warning: a push started at {listing.push.started} was interrupted or is "
                "still running; run it again to finish it",
                err=True,
            )
        for name in listing.undecryptable:
            typer.echo(f"seml: warning: {name}: not encrypted with this key", err=True)
