"""Encrypted sync of files and folders with object storage (the Rclone SGX counterpart).

Objects are laid out exactly as an rclone crypt remote over the same storage lays them out, so
a user's own rclone lists, checks and reads them. Beyond rclone, each `push` writes an
authenticated, versioned manifest (`.seml-manifest`), and `pull` refuses anything that differs
from it: truncated, swapped, deleted or added files, and manifests older than one already seen.
"""

from seml.sync._common import SyncProgress
from seml.sync._ls import Listing, ListingEntry, ls
from seml.sync._manifest import MANIFEST_NAME, FileEntry, Manifest, ManifestKeys
from seml.sync._pull import PullResult, pull
from seml.sync._push import PushResult, push
from seml.sync._state import SyncState, default_state_dir

__all__ = [
    "MANIFEST_NAME",
    "FileEntry",
    "Listing",
    "ListingEntry",
    "Manifest",
    "ManifestKeys",
    "PullResult",
    "PushResult",
    "SyncProgress",
    "SyncState",
    "default_state_dir",
    "ls",
    "pull",
    "push",
]
