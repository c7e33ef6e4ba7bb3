"""Reading a crypt remote out of rclone's own config file, so users reuse what they have."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from seml.crypt._cipher import CryptOptions
from seml.crypt._keys import reveal
from seml.errors import UsageError

__all__ = ["default_rclone_config", "load_rclone_config"]

_TRUE = {"true", "1", "yes", "on", "t"}
_FALSE = {"false", "0", "no", "off", "f"}


def default_rclone_config() -> Path:
    """Where rclone looks for its config: $RCLONE_CONFIG, else ~/.config/rclone/rclone.conf."""
    env = os.environ.get("RCLONE_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rclone" / "rclone.conf"


def load_rclone_config(path: Path, remote: str) -> tuple[str, str, CryptOptions]:
    """Return (password, password2, options) of the crypt remote `remote` in rclone.conf `path`.

    Passwords are revealed from rclone's obscured form. UsageError when the file cannot be read,
    is encrypted, or has no such crypt section; messages never contain a password.
    """
    name = remote.removesuffix(":")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read rclone config {path}: {e}") from e
    if text.lstrip().startswith("RCLONE_ENCRYPT_V0:"):
        raise UsageError(
            f"rclone config {path} is encrypted (rclone config encryption); "
            "decrypt it with `rclone config show` into a private file first"
        )
    parser = configparser.RawConfigParser(strict=False, default_section="\0none")
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as e:
        raise UsageError(f"rclone config {path} is not valid: {e}") from e
    if not parser.has_section(name):
        raise UsageError(f"rclone config {path} has no remote [{name}]")
    section = parser[name]
    kind = section.get("type", "").strip()
    if kind != "crypt":
        raise UsageError(f"remote [{name}] in {path} is of type {kind or 'unset'!r}, not crypt")
    obscured = section.get("password", "").strip()
    if not obscured:
        raise UsageError(f"remote [{name}] in {path} has no password")
    try:
        password = reveal(obscured)
        password2 = reveal(section["password2"]) if section.get("password2", "").strip() else ""
    except UsageError as e:
        raise UsageError(f"remote [{name}] in {path}: {e}") from None
    directory = section.get("directory_name_encryption", "true").strip().lower()
    if directory not in _TRUE | _FALSE:
        raise UsageError(
            f"remote [{name}] in {path}: directory_name_encryption must be true or false"
        )
    encryption = section.get("filename_encryption", "standard").strip().lower()
    encoding = section.get("filename_encoding", "base32").strip().lower()
    try:
        options = CryptOptions(
            filename_encryption=encryption,  # type: ignore[arg-type]  # checked by CryptOptions
            filename_encoding=encoding,  # type: ignore[arg-type]
            directory_name_encryption=directory in _TRUE,
        )
    except UsageError as e:
        raise UsageError(f"remote [{name}] in {path}: {e}") from None
    return password, password2, options
