"""rclone-compatible encryption: content, names, keys and rclone's config, byte for byte.

What SEML writes to storage, a user's own rclone crypt remote can read, and the other way round.
`Cipher` holds the keys of one crypt remote; `encrypt_tree` / `decrypt_tree` are the safe recipes
(decrypted files appear under their final names only once every chunk authenticated).

Names are imported on first use (PEP 562): a protected volume, opened by every `seml run`, needs
only `Cipher`; rclone's config file (`configparser`) and the tree recipes load when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seml._lazy import lazy_exports

if TYPE_CHECKING:
    from seml.crypt._cipher import Cipher, CryptOptions
    from seml.crypt._config import default_rclone_config, load_rclone_config
    from seml.crypt._keys import derive_keys, obscure, reveal
    from seml.crypt._tree import decrypt_tree, encrypt_tree

_HOME = {
    "Cipher": "_cipher",
    "CryptOptions": "_cipher",
    "decrypt_tree": "_tree",
    "default_rclone_config": "_config",
    "derive_keys": "_keys",
    "encrypt_tree": "_tree",
    "load_rclone_config": "_config",
    "obscure": "_keys",
    "reveal": "_keys",
}

__all__ = [
    "Cipher",
    "CryptOptions",
    "decrypt_tree",
    "default_rclone_config",
    "derive_keys",
    "encrypt_tree",
    "load_rclone_config",
    "obscure",
    "reveal",
]


__getattr__, __dir__ = lazy_exports(globals(), _HOME)
