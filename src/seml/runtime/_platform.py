"""The simulated platform key: a machine's identity when there is no TEE to provide one.

On SGX/TDX hardware the CPU's provisioning identity (PPID) says which machine produced a quote.
In simulation, an Ed25519 key in a 0600 file stands in for it: `seml platform init` makes it,
`seml platform id` prints the id a session lists in a service's `platforms`, and `seml run`
signs its simulated evidence with it. It models the binding only: anyone who can read the file
can claim to be this platform.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from seml.attest import platform_id
from seml.errors import StorageError, UsageError

__all__ = ["default_platform_key", "init_platform_key", "load_platform_key", "platform_of"]

_HEADER = "seml-simulated-platform-key-v1"


def default_platform_key() -> Path:
    env = os.environ.get("SEML_PLATFORM_KEY")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "seml" / "platform.key"


def init_platform_key(path: Path) -> str:
    """Create a new platform key at `path` (0600, never overwritten); return its id."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes_raw()
    text = f"{_HEADER}\n{base64.b64encode(raw).decode()}\n"
    from seml._fs import write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create the platform key {path}: {e}") from e
    try:
        write_atomic(path, text, mode=0o600, overwrite=False)
    except FileExistsError:
        raise UsageError(f"a platform key already exists at {path}") from None
    public = key.public_key().public_bytes_raw()
    return platform_id(public)


def load_platform_key(path: Path) -> bytes:
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        raise UsageError(
            f"no platform key at {path}: create one with `seml platform init --platform-key "
            f"{path}` (or fix the path)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise StorageError(f"cannot read the platform key {path}: {e}") from e
    try:
        if len(lines) != 2 or lines[0] != _HEADER:
            raise ValueError("not a platform key file")
        raw = base64.b64decode(lines[1], validate=True)
        if len(raw) != 32:
            raise ValueError("wrong length")
    except (ValueError, binascii.Error) as e:
        raise UsageError(f"{path} is not a SEML platform key ({e})") from e
    return raw


def platform_of(path: Path) -> str:
    raw = load_platform_key(path)
    public = Ed25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    return platform_id(public)
