"""Crypt options shared by every command that encrypts (`seml crypt`, `seml push`, `seml pull`).

Passwords come from an rclone.conf crypt section (`--rclone-config FILE --remote NAME`) or from
the environment (SEML_CRYPT_PASSWORD, SEML_CRYPT_PASSWORD2), never from argv where `ps` shows
them. Explicit name options override the config file's.
"""

from __future__ import annotations

import dataclasses
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from seml.errors import UsageError

if TYPE_CHECKING:
    from seml.crypt import Cipher

__all__ = [
    "PASSWORD2_ENV",
    "PASSWORD_ENV",
    "DirectoryNameEncryptionOpt",
    "FilenameEncoding",
    "FilenameEncodingOpt",
    "FilenameEncryption",
    "FilenameEncryptionOpt",
    "RcloneConfigOpt",
    "RemoteOpt",
    "build_cipher",
]


class FilenameEncryption(StrEnum):
    standard = "standard"
    obfuscate = "obfuscate"
    off = "off"


class FilenameEncoding(StrEnum):
    base32 = "base32"
    base64 = "base64"


PASSWORD_ENV = "SEML_CRYPT_PASSWORD"  # noqa: S105  (a variable name, not a password)
PASSWORD2_ENV = "SEML_CRYPT_PASSWORD2"

RcloneConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--rclone-config",
        help="rclone.conf to take the crypt remote from (default with --remote: rclone's own, "
        "$RCLONE_CONFIG or ~/.config/rclone/rclone.conf).",
        dir_okay=False,
        show_default=False,
    ),
]
RemoteOpt = Annotated[
    str | None,
    typer.Option(
        "--remote",
        help="Name of the crypt remote (section) in the rclone config, e.g. 'secret' or 'secret:'.",
        show_default=False,
    ),
]
FilenameEncryptionOpt = Annotated[
    FilenameEncryption | None,
    typer.Option(
        "--filename-encryption",
        help="How file names are encrypted, as rclone's filename_encryption "
        "(default: the config's, else standard).",
        show_default=False,
    ),
]
FilenameEncodingOpt = Annotated[
    FilenameEncoding | None,
    typer.Option(
        "--filename-encoding",
        help="Encoding of encrypted names in standard mode, as rclone's filename_encoding "
        "(default: the config's, else base32).",
        show_default=False,
    ),
]
DirectoryNameEncryptionOpt = Annotated[
    bool | None,
    typer.Option(
        "--directory-name-encryption/--no-directory-name-encryption",
        help="Encrypt directory names too, as rclone's directory_name_encryption "
        "(default: the config's, else on).",
        show_default=False,
    ),
]


def build_cipher(
    rclone_config: Path | None,
    remote: str | None,
    filename_encryption: str | None,
    filename_encoding: str | None,
    directory_name_encryption: bool | None,
) -> Cipher:
    """The cipher the options describe; UsageError when no password source is given."""
    from seml.crypt import Cipher, CryptOptions, default_rclone_config, load_rclone_config

    if rclone_config is not None or remote is not None:
        if remote is None:
            raise UsageError("--rclone-config needs --remote NAME (the crypt remote to use)")
        path = rclone_config if rclone_config is not None else default_rclone_config()
        password, password2, options = load_rclone_config(path, remote)
    else:
        password = os.environ.get(PASSWORD_ENV, "")
        if not password:
            raise UsageError(
                "no crypt password: give --rclone-config FILE --remote NAME, "
                f"or set {PASSWORD_ENV} (and optionally {PASSWORD2_ENV}) in the environment"
            )
        password2 = os.environ.get(PASSWORD2_ENV, "")
        options = CryptOptions()
    overrides: dict[str, Any] = {
        "filename_encryption": None if filename_encryption is None else str(filename_encryption),
        "filename_encoding": None if filename_encoding is None else str(filename_encoding),
        "directory_name_encryption": directory_name_encryption,
    }
    options = dataclasses.replace(options, **{k: v for k, v in overrides.items() if v is not None})
    return Cipher(password, password2, options)
