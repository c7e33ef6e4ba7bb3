"""The sync manifest: what one push wrote, authenticated with a key derived from the crypt secret.

rclone's format authenticates each 64 KiB chunk but not the file as a whole: a file cut at a
chunk boundary, two files swapped, a file deleted or added, or an old tree restored all decrypt
without error. The manifest closes that gap. It lists every file (relative name, size,
plaintext SHA-256, the encrypted object's name and size) and carries a version that grows with
every push. It is serialised canonically, authenticated with HMAC-SHA256, and stored through the
crypt cipher like any file, under the reserved name `MANIFEST_NAME` (the one extra file an rclone
crypt remote over the same storage sees).

Pure: bytes and keys in, typed results or IntegrityError out.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from seml.crypt import Cipher
from seml.errors import IntegrityError

__all__ = [
    "MANIFEST_NAME",
    "FileEntry",
    "Manifest",
    "ManifestKeys",
    "open_manifest",
    "seal_manifest",
]

MANIFEST_NAME = ".seml-manifest"
FORMAT = "seml-sync-manifest/1"
# A nonce no random draw will ever produce in practice (2^-192); see ManifestKeys.from_cipher.
_KEY_NONCE = b"seml-manifest-key-nonce!"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One pushed file. `path` is the plaintext relative name with '/' separators."""

    path: str
    size: int
    sha256: str
    object: str
    object_size: int
    mtime: float = 0.0


@dataclass(frozen=True)
class Manifest:
    version: int
    key_id: str
    created: str
    files: tuple[FileEntry, ...] = field(default_factory=tuple)

    def by_path(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class ManifestKeys:
    """The manifest's MAC key and a public fingerprint of the secret (for the local state)."""

    mac_key: bytes = field(repr=False)
    key_id: str

    @classmethod
    def from_cipher(cls, cipher: Cipher) -> ManifestKeys:
        """Derive from the cipher's data key through its public interface.

        The XSalsa20 keystream at a reserved nonce is a pseudo-random function of the data key;
        HKDF-SHA256 with distinct labels turns it into the MAC key and the key fingerprint.
        Nothing derived here is ever written anywhere except the fingerprint.
        """
        out = io.BytesIO()
        cipher.encrypt_stream(io.BytesIO(bytes(64)), out, nonce=_KEY_NONCE)
        ikm = out.getvalue()
        key_id = _hkdf(ikm, b"seml sync key id v1")[:16].hex()
        return cls(_hkdf(ikm, b"seml sync manifest mac v1"), key_id)


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal_manifest(manifest: Manifest, keys: ManifestKeys) -> bytes:
    """Serialise and authenticate (the caller encrypts the result with the crypt cipher)."""
    body = {
        "format": FORMAT,
        "version": manifest.version,
        "key_id": manifest.key_id,
        "created": manifest.created,
        "files": [
            {
                "path": f.path,
                "size": f.size,
                "sha256": f.sha256,
                "object": f.object,
                "object_size": f.object_size,
                "mtime": f.mtime,
            }
            for f in sorted(manifest.files, key=lambda f: f.path)
        ],
    }
    mac = hmac.new(keys.mac_key, _canonical(body), hashlib.sha256).hexdigest()
    return _canonical({"manifest": body, "hmac_sha256": mac}) + b"\n"


def open_manifest(data: bytes, keys: ManifestKeys, *, where: str) -> Manifest:
    """Authenticate and parse; IntegrityError naming `where` if anything is off."""
    try:
        outer = json.loads(data)
        body = outer["manifest"]
        mac = outer["hmac_sha256"]
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{where}: manifest is not readable ({e})") from e
    if not isinstance(body, dict) or not isinstance(mac, str):
        raise IntegrityError(f"{where}: manifest is malformed")
    expected = hmac.new(keys.mac_key, _canonical(body), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        raise IntegrityError(
            f"{where}: manifest authentication failed (tampered, or written with another key)"
        )
    try:
        if body["format"] != FORMAT:
            raise IntegrityError(f"{where}: unknown manifest format {body['format']!r}")
        files = tuple(_entry(f) for f in body["files"])
        manifest = Manifest(
            version=_int(body["version"]),
            key_id=str(body["key_id"]),
            created=str(body["created"]),
            files=files,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(f"{where}: manifest is malformed ({e})") from e
    if manifest.key_id != keys.key_id:
        raise IntegrityError(f"{where}: manifest names another key ({manifest.key_id})")
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths) or len({f.object for f in files}) != len(files):
        raise IntegrityError(f"{where}: manifest lists a file twice")
    return manifest


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"not a non-negative integer: {v!r}")
    return v


def _entry(f: dict[str, Any]) -> FileEntry:
    sha = str(f["sha256"])
    if not _HEX64.fullmatch(sha):
        raise ValueError(f"bad digest for {f.get('path')!r}")
    return FileEntry(
        path=str(f["path"]),
        size=_int(f["size"]),
        sha256=sha,
        object=str(f["object"]),
        object_size=_int(f["object_size"]),
        mtime=float(f.get("mtime", 0.0)),
    )
