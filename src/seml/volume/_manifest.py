"""The volume's keys, clear header and authenticated manifest: pure, bytes in and out.

A volume key (32 bytes, from the attestation service) never touches data directly: HKDF with the
volume's random id as salt and distinct labels gives the content key, the two name keys and the
manifest key, so one key reused for two volumes still yields unrelated keys.

The clear header (``VOLUME``, JSON) says which generation directory holds the current version;
it is not trusted: every field of it is bound as associated data into the manifest's AES-256-GCM
seal, so changing it, or pairing it with another generation, fails authentication. The manifest
lists every file (path, size, SHA-256 of the plaintext, encrypted object name, mode), the
volume's name and id, and a version that only grows. Each entry also pins its object's random
rclone nonce: every chunk of an object is authenticated under the data key and that nonce, so a
matching nonce, authenticating chunks and the recorded size prove the content without hashing
it again (the SHA-256 is checked too by a full `verify`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from seml.errors import IntegrityError, UsageError

__all__ = [
    "GENERATION_RE",
    "HEADER_FORMAT",
    "KEY_SIZE",
    "Header",
    "Manifest",
    "VolumeFile",
    "VolumeKeys",
    "check_name",
    "check_relative_path",
    "derive_keys",
    "open_manifest",
    "seal_manifest",
]

KEY_SIZE = 32
HEADER_FORMAT = "seml-volume/1"
_MANIFEST_FORMAT = "seml-volume-manifest/1"
_MANIFEST_MAGIC = b"SEMLVMF1"
_NONCE_SIZE = 12
_ID = re.compile(r"[0-9a-f]{32}")
GENERATION_RE = re.compile(r"g[0-9]{12}-[0-9a-f]{8}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NONCE = re.compile(r"[0-9a-f]{48}")


@dataclass(frozen=True)
class VolumeKeys:
    """Keys derived from one volume key; repr never shows them."""

    data_key: bytes
    name_key: bytes
    name_tweak: bytes
    manifest_key: bytes

    def __repr__(self) -> str:
        return "VolumeKeys(<hidden>)"


def derive_keys(volume_key: bytes, volume_id: str) -> VolumeKeys:
    if len(volume_key) != KEY_SIZE:
        raise UsageError(f"a volume key must be {KEY_SIZE} bytes, got {len(volume_key)}")
    salt = bytes.fromhex(volume_id)

    def kdf(label: str, length: int) -> bytes:
        info = f"seml/volume/v1/{label}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(
            volume_key
        )

    return VolumeKeys(
        data_key=kdf("data", 32),
        name_key=kdf("name", 32),
        name_tweak=kdf("name-tweak", 16),
        manifest_key=kdf("manifest", 32),
    )


def check_name(name: str) -> str:
    if not name or len(name) > 255 or any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise UsageError(f"a volume name must be 1 to 255 printable characters, got {name!r}")
    return name


def check_relative_path(path: str) -> str:
    """A file's path inside the volume: relative, '/'-separated, no '.', '..' or empty parts."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or "\x00" in path
        or "\\" in path
    ):
        raise IntegrityError(f"unsafe path in volume: {path!r}")
    return path


@dataclass(frozen=True)
class Header:
    """The clear ``VOLUME`` file: untrusted until the manifest authenticates it."""

    volume_id: str
    version: int
    generation: str

    def to_bytes(self) -> bytes:
        document = {"format": HEADER_FORMAT, **asdict(self)}
        return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str) -> Header:
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("format") != HEADER_FORMAT:
                raise ValueError(f"not a {HEADER_FORMAT} header")
            header = cls(
                volume_id=doc["volume_id"], version=doc["version"], generation=doc["generation"]
            )
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{where}: unreadable volume header: {e}") from e
        if not (
            isinstance(header.volume_id, str)
            and _ID.fullmatch(header.volume_id)
            and type(header.version) is int
            and header.version >= 0
            and isinstance(header.generation, str)
            and GENERATION_RE.fullmatch(header.generation)
        ):
            raise IntegrityError(f"{where}: malformed volume header")
        return header

    def associated_data(self) -> bytes:
        return json.dumps({"format": _MANIFEST_FORMAT, **asdict(self)}, sort_keys=True).encode()


def generation_name(version: int, token: str) -> str:
    return f"g{version:012d}-{token}"


@dataclass(frozen=True)
class VolumeFile:
    """One file of a volume as the manifest records it."""

    path: str
    size: int
    sha256: str
    object: str
    nonce: str  # hex of the object's 24-byte rclone header nonce: binds this exact ciphertext
    mode: int = 0o644


@dataclass(frozen=True)
class Manifest:
    volume: str
    volume_id: str
    version: int
    generation: str
    files: tuple[VolumeFile, ...]

    @property
    def header(self) -> Header:
        return Header(volume_id=self.volume_id, version=self.version, generation=self.generation)


def seal_manifest(manifest: Manifest, keys: VolumeKeys) -> bytes:
    document = {
        "format": _MANIFEST_FORMAT,
        "volume": manifest.volume,
        "volume_id": manifest.volume_id,
        "version": manifest.version,
        "generation": manifest.generation,
        "files": [asdict(f) for f in manifest.files],
    }
    plain = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    nonce = os.urandom(_NONCE_SIZE)
    sealed = AESGCM(keys.manifest_key).encrypt(nonce, plain, manifest.header.associated_data())
    return _MANIFEST_MAGIC + nonce + sealed


def open_manifest(data: bytes, keys: VolumeKeys, header: Header, *, where: str) -> Manifest:
    """Authenticate and decode a manifest against the clear header it was sealed with."""
    start = len(_MANIFEST_MAGIC) + _NONCE_SIZE
    if not data.startswith(_MANIFEST_MAGIC) or len(data) < start + 16:
        raise IntegrityError(f"{where}: the manifest is missing or not a SEML volume manifest")
    try:
        plain = AESGCM(keys.manifest_key).decrypt(
            data[len(_MANIFEST_MAGIC) : start], data[start:], header.associated_data()
        )
    except InvalidTag:
        raise IntegrityError(
            f"{where}: the manifest does not authenticate: wrong volume key (another volume's?) "
            "or the manifest or header was tampered with"
        ) from None
    try:
        doc: dict[str, Any] = json.loads(plain)
        files = tuple(
            VolumeFile(
                path=check_relative_path(f["path"]),
                size=int(f["size"]),
                sha256=str(f["sha256"]),
                object=str(f["object"]),
                nonce=str(f["nonce"]),
                mode=int(f["mode"]),
            )
            for f in doc["files"]
        )
        manifest = Manifest(
            volume=str(doc["volume"]),
            volume_id=str(doc["volume_id"]),
            version=int(doc["version"]),
            generation=str(doc["generation"]),
            files=files,
        )
    except (ValueError, KeyError, TypeError) as e:
        # Authenticated yet malformed: written by an incompatible or broken writer.
        raise IntegrityError(f"{where}: authenticated manifest is malformed: {e}") from e
    if manifest.header != header or doc.get("format") != _MANIFEST_FORMAT:
        raise IntegrityError(f"{where}: the manifest does not match the volume header")
    if any(
        not _SHA256.fullmatch(f.sha256) or not _NONCE.fullmatch(f.nonce) or f.size < 0
        for f in files
    ):
        raise IntegrityError(f"{where}: authenticated manifest has a malformed file entry")
    return manifest
