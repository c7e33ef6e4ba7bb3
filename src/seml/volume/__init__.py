"""Protected volumes: encrypted directories with an authenticated, versioned manifest.

Each file is encrypted on its own (rclone's content format, encrypted names) under keys derived
from the volume key; a manifest sealed with AES-256-GCM lists every file's size and SHA-256 and a
version that only grows, so a modified, truncated, added, deleted or swapped file is refused, and
the attestation service's latest version catches a restored old copy. Sealing is crash-safe.

A command sees a volume either unsealed into a `private_workspace` (tmpfs) or, for data larger
than memory, through a `FuseMount` that decrypts on read and seals on unmount.
"""

from typing import TYPE_CHECKING, Any

from seml.volume._inspect import VolumeInfo, inspect
from seml.volume._manifest import KEY_SIZE, VolumeFile
from seml.volume._volume import SealSource, Volume
from seml.volume._workspace import private_workspace, sweep_stale_workspaces

if TYPE_CHECKING:
    from seml.volume._fuse import fuse_available
    from seml.volume._mount import FuseMount


def __getattr__(name: str) -> Any:
    # The FUSE parts load a C binding; only `--mount fuse` needs them (keeps `seml run` fast).
    if name == "FuseMount":
        from seml.volume._mount import FuseMount

        return FuseMount
    if name == "fuse_available":
        from seml.volume._fuse import fuse_available

        return fuse_available
    raise AttributeError(f"module 'seml.volume' has no attribute {name!r}")


__all__ = [
    "KEY_SIZE",
    "FuseMount",
    "SealSource",
    "Volume",
    "VolumeFile",
    "VolumeInfo",
    "fuse_available",
    "inspect",
    "private_workspace",
    "sweep_stale_workspaces",
]
