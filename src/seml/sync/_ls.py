"""`ls`: the plaintext names and sizes of an encrypted remote."""

from __future__ import annotations

from dataclasses import dataclass, field

from seml.crypt import Cipher
from seml.errors import SemlError
from seml.store import ObjectStore
from seml.sync._common import read_manifest, read_marker
from seml.sync._manifest import MANIFEST_NAME, MARKER_NAME, ManifestKeys, PushMarker, is_reserved
from seml.sync._remote import check_remote

__all__ = ["Listing", "ListingEntry", "ls"]


@dataclass(frozen=True)
class ListingEntry:
    path: str
    size: int
    in_manifest: bool | None  # None when the remote has no manifest


@dataclass
class Listing:
    manifest_version: int | None
    entries: list[ListingEntry] = field(default_factory=list)
    undecryptable: list[str] = field(default_factory=list)
    push: PushMarker | None = None  # a push in progress or interrupted
    remote: str | None = None  # where the manifest says it was pushed


def ls(store: ObjectStore, cipher: Cipher) -> Listing:
    """Decrypt the listing (names, sizes) and authenticate the manifest if there is one.

    Only names and sizes are checked against the manifest here; `pull` checks content. A
    missing remote is a StorageError; one whose names do not decrypt, an IntegrityError."""
    keys = ManifestKeys.from_cipher(cipher)
    manifest_obj = cipher.encrypt_name(MANIFEST_NAME)
    objects = {o.name: o.size for o in store.list()}
    found = read_manifest(store, cipher, keys) if manifest_obj in objects else None
    marker_obj = cipher.encrypt_name(MARKER_NAME)
    marker = read_marker(store, cipher, keys) if marker_obj in objects else None
    if found is None and marker is None:
        check_remote(store, objects, cipher, allow_empty=True)
    out = Listing(found[0].version if found else None, push=marker)
    shown: set[str] = {manifest_obj, marker_obj}
    if found is not None:
        manifest = found[0]
        out.remote = manifest.remote
        for f in manifest.files:
            # A push that was cut short may not have moved a file's new content into place.
            source = f.staged if f.staged is not None and f.staged in objects else f.object
            shown |= {f.object, source}
            out.entries.append(ListingEntry(f.path, f.size, objects.get(source) == f.object_size))
    for name, size in sorted(objects.items()):
        if name in shown:
            continue
        try:
            path = cipher.decrypt_name(name)
            plain = cipher.decrypted_size(size)
        except SemlError:
            out.undecryptable.append(name)
            continue
        if not is_reserved(path):
            out.entries.append(ListingEntry(path, plain, False if found else None))
    out.entries.sort(key=lambda e: e.path)
    return out
