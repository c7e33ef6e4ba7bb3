"""`ls`: the plaintext names and sizes of an encrypted remote."""

from __future__ import annotations

from dataclasses import dataclass, field

from seml.crypt import Cipher
from seml.errors import SemlError
from seml.store import ObjectStore
from seml.sync._common import read_manifest
from seml.sync._manifest import MANIFEST_NAME, ManifestKeys

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


def ls(store: ObjectStore, cipher: Cipher) -> Listing:
    """Decrypt the listing (names, sizes) and authenticate the manifest if there is one.

    Only names and sizes are checked against the manifest here; `pull` checks content."""
    keys = ManifestKeys.from_cipher(cipher)
    manifest_obj = cipher.encrypt_name(MANIFEST_NAME)
    objects = {o.name: o.size for o in store.list()}
    found = read_manifest(store, cipher, keys) if manifest_obj in objects else None
    listed = {(f.object, f.object_size) for f in found[0].files} if found else set()
    out = Listing(found[0].version if found else None)
    for name, size in sorted(objects.items()):
        if name == manifest_obj:
            continue
        try:
            path = cipher.decrypt_name(name)
            plain = cipher.decrypted_size(size)
        except SemlError:
            out.undecryptable.append(name)
            continue
        out.entries.append(ListingEntry(path, plain, (name, size) in listed if found else None))
    out.entries.sort(key=lambda e: e.path)
    return out
