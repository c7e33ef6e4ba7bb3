"""The sync manifest: what one push wrote, authenticated with a key derived from the crypt secret.

rclone's format authenticates each 64 KiB chunk but not the file as a whole: a file cut at a
chunk boundary, two files swapped, a file deleted or added, or an old tree restored all decrypt
without error. The manifest closes that gap. It lists every file (relative name, size,
plaintext SHA-256, the encrypted object's name and size), names the remote it was pushed to
(so two trees under one password cannot be swapped) and carries a version that grows with
every push. It is serialised canonically, authenticated with HMAC-SHA256, and stored through the
crypt cipher like any file, under the reserved name `MANIFEST_NAME` (the one extra file an rclone
crypt remote over the same storage sees).

While a push runs, a second small authenticated record, the push marker (`MARKER_NAME`), says
that one started on top of which version; new contents of files the current manifest still
needs are uploaded under `STAGING_DIR` until the new manifest is written (see `sync._push`).

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
    "MARKER_NAME",
    "RESERVED",
    "STAGING_DIR",
    "FileEntry",
    "Manifest",
    "ManifestKeys",
    "PushMarker",
    "is_reserved",
    "open_manifest",
    "open_marker",
    "seal_manifest",
    "seal_marker",
]

MANIFEST_NAME = ".seml-manifest"
MARKER_NAME = ".seml-push"
STAGING_DIR = ".seml-staging"
RESERVED = (MANIFEST_NAME, MARKER_NAME, STAGING_DIR)
FORMAT = "seml-sync-manifest/2"
MARKER_FORMAT = "seml-sync-push/1"
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
    # Where the push uploaded this content while `object` still held the previous version's;
    # once the push finished, it was moved to `object` and no longer exists.
    staged: str | None = None


def is_reserved(path: str) -> bool:
    """Whether a plaintext path is one of sync's own (manifest, push marker, staged uploads)."""
    return path in RESERVED or path.startswith(STAGING_DIR + "/")


@dataclass(frozen=True)
class Manifest:
    version: int
    key_id: str
    created: str
    files: tuple[FileEntry, ...] = field(default_factory=tuple)
    remote: str = ""  # the URL it was pushed to (no endpoint): a moved tree is noticed

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


def _entry_body(f: FileEntry) -> dict[str, Any]:
    body: dict[str, Any] = {
        "path": f.path,
        "size": f.size,
        "sha256": f.sha256,
        "object": f.object,
        "object_size": f.object_size,
        "mtime": f.mtime,
    }
    if f.staged is not None:
        body["staged"] = f.staged
    return body


def _seal(kind: str, body: dict[str, Any], keys: ManifestKeys) -> bytes:
    mac = hmac.new(keys.mac_key, _canonical(body), hashlib.sha256).hexdigest()
    return _canonical({kind: body, "hmac_sha256": mac}) + b"\n"


def _open(kind: str, data: bytes, keys: ManifestKeys, where: str) -> dict[str, Any]:
    """The authenticated body of a sealed record of `kind` ("manifest" or "push")."""
    what = "manifest" if kind == "manifest" else "push marker"
    try:
        outer = json.loads(data)
        body = outer[kind]
        mac = outer["hmac_sha256"]
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{where}: {what} is not readable ({e})") from e
    if not isinstance(body, dict) or not isinstance(mac, str):
        raise IntegrityError(f"{where}: {what} is malformed")
    expected = hmac.new(keys.mac_key, _canonical(body), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        raise IntegrityError(
            f"{where}: {what} authentication failed (tampered, or written with another key)"
        )
    return body


def seal_manifest(manifest: Manifest, keys: ManifestKeys) -> bytes:
    """Serialise and authenticate (the caller encrypts the result with the crypt cipher)."""
    body = {
        "format": FORMAT,
        "version": manifest.version,
        "key_id": manifest.key_id,
        "created": manifest.created,
        "remote": manifest.remote,
        "files": [_entry_body(f) for f in sorted(manifest.files, key=lambda f: f.path)],
    }
    return _seal("manifest", body, keys)


def open_manifest(data: bytes, keys: ManifestKeys, *, where: str) -> Manifest:
    """Authenticate and parse; IntegrityError naming `where` if anything is off."""
    body = _open("manifest", data, keys, where)
    try:
        if body["format"] == "seml-sync-manifest/1":
            raise IntegrityError(
                f"{where}: manifest written by an older seml (format 1, which does not name "
                "its remote); push the tree again with this version"
            )
        if body["format"] != FORMAT:
            raise IntegrityError(f"{where}: unknown manifest format {body['format']!r}")
        files = tuple(_entry(f) for f in body["files"])
        manifest = Manifest(
            version=_int(body["version"]),
            key_id=str(body["key_id"]),
            created=str(body["created"]),
            files=files,
            remote=str(body["remote"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(f"{where}: manifest is malformed ({e})") from e
    if manifest.key_id != keys.key_id:
        raise IntegrityError(f"{where}: manifest names another key ({manifest.key_id})")
    paths = [f.path for f in files]
    objects = [f.object for f in files] + [f.staged for f in files if f.staged is not None]
    if len(set(paths)) != len(paths) or len(set(objects)) != len(objects):
        raise IntegrityError(f"{where}: manifest lists a file twice")
    return manifest


@dataclass(frozen=True)
class PushMarker:
    """A push in progress (or interrupted): who started it on top of which version."""

    push_id: str
    key_id: str
    remote: str
    base_version: int
    started: str


def seal_marker(marker: PushMarker, keys: ManifestKeys) -> bytes:
    body = {
        "format": MARKER_FORMAT,
        "push_id": marker.push_id,
        "key_id": marker.key_id,
        "remote": marker.remote,
        "base_version": marker.base_version,
        "started": marker.started,
    }
    return _seal("push", body, keys)


def open_marker(data: bytes, keys: ManifestKeys, *, where: str) -> PushMarker:
    body = _open("push", data, keys, where)
    try:
        if body["format"] != MARKER_FORMAT:
            raise IntegrityError(f"{where}: unknown push marker format {body['format']!r}")
        marker = PushMarker(
            push_id=str(body["push_id"]),
            key_id=str(body["key_id"]),
            remote=str(body["remote"]),
            base_version=_int(body["base_version"]),
            started=str(body["started"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(f"{where}: push marker is malformed ({e})") from e
    if marker.key_id != keys.key_id:
        raise IntegrityError(f"{where}: push marker names another key ({marker.key_id})")
    return marker


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
        staged=str(f["staged"]) if f.get("staged") is not None else None,
    )
