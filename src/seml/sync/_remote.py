"""Telling a remote that is missing, empty or encrypted with another key from a seml tree."""

from __future__ import annotations

import itertools

from seml.crypt import Cipher
from seml.errors import IntegrityError, SemlError, StorageError
from seml.store import ObjectStore

__all__ = ["check_remote"]

_SAMPLE = 1000  # names tried before concluding that none decrypts


def check_remote(
    store: ObjectStore, listing: dict[str, int], cipher: Cipher, *, allow_empty: bool = False
) -> None:
    """Refuse a remote that does not exist or is empty (StorageError; an empty one is fine
    with `allow_empty`), and one none of whose object names decrypts under this key
    (IntegrityError: a wrong password or other name options, or not an encrypted remote)."""
    if not listing:
        if not store.exists():
            raise StorageError(f"{store.url}: no such folder or bucket (nothing was pushed there)")
        if allow_empty:
            return
        raise StorageError(f"{store.url}: empty, nothing was pushed there")
    tried = list(itertools.islice(listing, _SAMPLE))
    decrypted = sum(1 for name in tried if _decrypts(cipher, name))
    # A random name passes the padding and UTF-8 checks about once in 500: a wrong key still
    # "decrypts" a few names of a large tree, a right one nearly all.
    if decrypted * 10 >= len(tried) and decrypted:
        return
    raise IntegrityError(
        f"{store.url}: its {len(listing)} object names do not decrypt with this key: a wrong "
        "password or password2, other name options (--filename-encryption, "
        "--filename-encoding, --directory-name-encryption), or not an encrypted remote"
    )


def _decrypts(cipher: Cipher, name: str) -> bool:
    try:
        cipher.decrypt_name(name)
    except SemlError:
        return False
    return True
