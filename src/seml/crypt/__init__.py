"""rclone-compatible encryption: content, names, keys and rclone's config, byte for byte.

What SEML writes to storage, a user's own rclone crypt remote can read, and the other way round.
`Cipher` holds the keys of one crypt remote; `encrypt_tree` / `decrypt_tree` are the safe recipes
(decrypted files appear under their final names only once every chunk authenticated).
"""

from seml.crypt._cipher import Cipher, CryptOptions
from seml.crypt._config import default_rclone_config, load_rclone_config
from seml.crypt._keys import derive_keys, obscure, reveal
from seml.crypt._tree import decrypt_tree, encrypt_tree

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
